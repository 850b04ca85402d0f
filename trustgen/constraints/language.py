"""The constraint language: rules in the data's own units, composable, and saved as JSON.

=================  ==========================================================  =============
kind               meaning                                                      projection
=================  ==========================================================  =============
``range``          ``low <= column <= high`` (images: every pixel of a region)  exact
``linear``         ``sum_j a_j * column_j  <=, >= or ==  bound``                exact
``pixel_mass``     mean (or sum) of a region's pixels in ``[low, high]``        exact
``allowed``        a categorical column (or the label) takes one of a set        exact
``equals``         a column takes one value (conditioning)                       exact
``implies``        if one constraint holds, another must (``if`` / ``then``)     of ``then``
``classifier``     a user classifier's probability of ``target`` >= threshold    gradient
``function``       a user's differentiable ``g(x) <= 0``                         gradient
=================  ==========================================================  =============

Every constraint is ``hard`` (default; every returned sample satisfies it, always) or soft
(``"hard": false``: sampling is steered towards it and reports how often it holds).
``classifier`` and ``function`` take a user module: a Python callable, or in JSON the path of
a saved module, relative to the JSON file: an exported program (``.pt2``, ``torch.export.save``
with a dynamic batch dimension) or a TorchScript file (``torch.jit.save``; deprecated by torch
but still read). It receives the samples in units (tables: ``[n, D]``, numbers in their units
and categories one-hot, in schema order; images: ``[n, C, H, W]``) and must be differentiable
for gradient steps. A saved module is code: load only files you trust.

Example:
    >>> rules = ConstraintSet([Range("dose", low=0, high=5),
    ...                        Linear({"discharge": 1, "admission": -1}, ">=", 0)])
    >>> ConstraintSet.from_dict(rules.to_dict()) == rules
    True
"""

from __future__ import annotations

import abc
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from trustgen.constraints.atoms import (
    Atom, BoxAtom, CategoryAtom, ImpliesAtom, LabelAtom, LearnedAtom, LinearAtom, tolerance,
)
from trustgen.constraints.space import PIXELS, Region, Space
from trustgen.errors import ConfigError

OPS = ("<=", ">=", "==")


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def _optional(v, what: str) -> float | None:
    return None if v is None else _number(v, what)


class Constraint(abc.ABC):
    """Base of every constraint: ``compile`` binds it to a schema's :class:`Space`."""

    hard: bool = True
    kind: str = ""

    @abc.abstractmethod
    def compile(self, space: Space) -> list[Atom]:
        """The atoms that must all hold."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The rule in words (reports and errors)."""

    @abc.abstractmethod
    def to_dict(self) -> dict:
        """The JSON object of the rule."""

    def _base(self) -> dict:
        return {"kind": self.kind} if self.hard else {"kind": self.kind, "hard": False}

    def _bounds_dict(self, d: dict) -> dict:
        """``d`` with the ``low``/``high``/``region`` this constraint sets (range, pixel_mass)."""
        d.update({k: getattr(self, k) for k in ("low", "high") if getattr(self, k) is not None})
        if self.region is not None:
            d["region"] = self.region.to_dict()
        return d


def _bounds_text(name: str, low, high) -> str:
    if low is not None and high is not None:
        return f"{low:g} <= {name} <= {high:g}"
    return f"{name} >= {low:g}" if low is not None else f"{name} <= {high:g}"


@dataclass(frozen=True)
class Range(Constraint):
    """``low <= column <= high`` (either may be None). For images, ``column="pixels"`` and an
    optional ``region``: every pixel of the region."""

    column: str
    low: float | None = None
    high: float | None = None
    region: Region | None = None
    hard: bool = True
    kind = "range"

    def __post_init__(self):
        lo, hi = _optional(self.low, "range low"), _optional(self.high, "range high")
        if lo is None and hi is None:
            raise ConfigError(f"range on {self.column!r}: give low, high or both")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"range on {self.column!r}: low {lo:g} > high {hi:g}: no value satisfies it")

    def describe(self):
        where = f"{self.column}[{self.region.to_dict()}]" if self.region else self.column
        return _bounds_text(where, self.low, self.high)

    def compile(self, space):
        if space.image:
            if self.column != PIXELS:
                raise ConfigError(f"an image schema has one column, {PIXELS!r}; got a range on {self.column!r}")
            coords = space.pixels(self.region)
        else:
            if self.region is not None:
                raise ConfigError("a region applies to image schemas only")
            coords = np.array([space.coordinate(self.column)])
        lo = -np.inf if self.low is None else float(self.low)
        hi = np.inf if self.high is None else float(self.high)
        if space.integer[coords].all():  # whole numbers: the bounds a whole number can meet
            # (an empty result, e.g. [2.2, 2.8], is left to the feasibility check: inside an "if" it is
            # merely never true)
            lo, hi = math.ceil(lo) if np.isfinite(lo) else lo, math.floor(hi) if np.isfinite(hi) else hi
        mag = max(abs(lo) if np.isfinite(lo) else 0.0, abs(hi) if np.isfinite(hi) else 0.0)
        if lo == hi and len(coords) == 1:  # a value: an equality (a float can only equal it to a tolerance)
            a = np.zeros(space.dim)
            a[coords[0]] = 1.0
            return [LinearAtom(self.describe(), self.hard, a, lo, "==",
                               tolerance(np.ones(1), mag, np.zeros(1), equality=True, float32=space.image))]
        tol = tolerance(np.ones(1), mag, np.zeros(1), float32=space.image)
        if lo == hi:  # pixels equal to a value: to within the float32 slack, as an equality
            lo, hi = lo - tol, hi + tol
        return [BoxAtom(self.describe(), self.hard, coords, np.full(len(coords), lo), np.full(len(coords), hi), tol)]

    def to_dict(self):
        return self._bounds_dict({**self._base(), "column": self.column})


@dataclass(frozen=True)
class Linear(Constraint):
    """``sum_j terms[j] * column_j  op  bound`` over numeric columns (``op``: <=, >=, ==)."""

    terms: dict
    op: str
    bound: float
    hard: bool = True
    kind = "linear"

    def __post_init__(self):
        if not isinstance(self.terms, dict) or not self.terms:
            raise ConfigError("a linear constraint needs terms: {column: coefficient, ...}")
        for c, a in self.terms.items():
            _number(a, f"the coefficient of {c!r}")
        if self.op not in OPS:
            raise ConfigError(f"linear op must be one of {list(OPS)}, got {self.op!r}")
        _number(self.bound, "the linear bound")
        if all(a == 0 for a in self.terms.values()):
            raise ConfigError("a linear constraint with every coefficient 0 says nothing about the samples")

    def __hash__(self):
        return hash((tuple(sorted(self.terms.items())), self.op, self.bound, self.hard))

    def describe(self):
        lhs = " + ".join(f"{a:g}*{c}" for c, a in self.terms.items())
        return f"{lhs} {self.op} {self.bound:g}"

    def compile(self, space):
        a = np.zeros(space.dim)
        for c, coef in self.terms.items():
            a[space.coordinate(c)] += float(coef)
        b = float(self.bound)
        if self.op == ">=":
            a, b = -a, -b
        mag = np.maximum(np.abs(np.nan_to_num(space.low, neginf=0.0)), np.abs(np.nan_to_num(space.high, posinf=0.0)))
        return [LinearAtom(self.describe(), self.hard, a, b, "==" if self.op == "==" else "<=",
                           tolerance(a, b, mag, equality=self.op == "=="))]

    def to_dict(self):
        return {**self._base(), "terms": dict(self.terms), "op": self.op, "bound": self.bound}


@dataclass(frozen=True)
class PixelMass(Constraint):
    """The ``statistic`` (``"mean"`` or ``"sum"``) of a region's pixel values in ``[low, high]``."""

    low: float | None = None
    high: float | None = None
    region: Region | None = None
    statistic: str = "mean"
    hard: bool = True
    kind = "pixel_mass"

    def __post_init__(self):
        if self.statistic not in ("mean", "sum"):
            raise ConfigError(f"pixel_mass statistic must be 'mean' or 'sum', got {self.statistic!r}")
        Range(PIXELS, self.low, self.high)  # the same checks of the bounds

    def describe(self):
        where = f"[{self.region.to_dict()}]" if self.region else ""
        return _bounds_text(f"{self.statistic}(pixels{where})", self.low, self.high)

    def compile(self, space):
        coords = space.pixels(self.region)
        a = np.zeros(space.dim)
        a[coords] = 1.0 / len(coords) if self.statistic == "mean" else 1.0
        mag = np.maximum(np.abs(space.low), np.abs(space.high))
        where = f"[{self.region.to_dict()}]" if self.region else ""
        name = f"{self.statistic}(pixels{where})"
        if self.low is not None and self.high is not None and self.low == self.high:
            return [LinearAtom(self.describe(), self.hard, a, float(self.low), "==",
                               tolerance(a, self.low, mag, float32=True))]
        parts = []  # one atom per side, each named for its side (the report counts them apart)
        if self.high is not None:
            parts.append(LinearAtom(_bounds_text(name, None, self.high), self.hard, a, float(self.high), "<=",
                                    tolerance(a, self.high, mag, float32=True)))
        if self.low is not None:
            parts.append(LinearAtom(_bounds_text(name, self.low, None), self.hard, -a, -float(self.low), "<=",
                                    tolerance(a, self.low, mag, float32=True)))
        return parts

    def to_dict(self):
        return self._bounds_dict({**self._base(), "statistic": self.statistic})


@dataclass(frozen=True)
class Allowed(Constraint):
    """A categorical column (or the label) takes one of ``categories``."""

    column: str
    categories: tuple
    hard: bool = True
    kind = "allowed"

    def __post_init__(self):
        if isinstance(self.categories, (str, bytes)) or not isinstance(self.categories, (list, tuple)) \
                or not self.categories:
            raise ConfigError(f"allowed on {self.column!r}: categories must be a non-empty list")
        object.__setattr__(self, "categories", tuple(self.categories))

    def describe(self):
        return f"{self.column} in {list(self.categories)}"

    def compile(self, space):
        if space.is_label(self.column):
            return [LabelAtom(self.describe(), self.hard, tuple(space.label_indices(self.categories)))]
        start, cats = space.category_block(self.column)
        return [CategoryAtom(self.describe(), self.hard, self.column, start, len(cats),
                             tuple(space.category_indices(self.column, self.categories)))]

    def to_dict(self):
        return {**self._base(), "column": self.column, "categories": list(self.categories)}


@dataclass(frozen=True)
class Equals(Constraint):
    """``column == value``: conditioning on a value (a number or a category)."""

    column: str
    value: Any
    hard: bool = True
    kind = "equals"

    def describe(self):
        return f"{self.column} == {self.value!r}"

    def _as(self, space) -> Constraint:
        if not space.image and self.column in space.numeric:
            v = _number(self.value, f"the value of {self.column!r}")
            return Range(self.column, v, v, hard=self.hard)
        return Allowed(self.column, (self.value,), hard=self.hard)

    def compile(self, space):
        atoms = self._as(space).compile(space)
        for atom in atoms:
            atom.name = self.describe()
        return atoms

    def to_dict(self):
        return {**self._base(), "column": self.column, "value": self.value}


@dataclass(frozen=True)
class Implies(Constraint):
    """If ``when`` holds (JSON: ``"if"``), ``then`` must hold."""

    when: Constraint
    then: Constraint
    hard: bool = True
    kind = "implies"

    def __post_init__(self):
        for part in (self.when, self.then):
            if not isinstance(part, Constraint):
                raise ConfigError(f"implies takes constraints, got {type(part).__name__}")

    def describe(self):
        return f"if {self.when.describe()} then {self.then.describe()}"

    def compile(self, space):
        return [ImpliesAtom(self.describe(), self.hard, self.when.compile(space), self.then.compile(space))]

    def to_dict(self):
        return {**self._base(), "if": self.when.to_dict(), "then": self.then.to_dict()}


@dataclass(frozen=True, eq=False)
class Classifier(Constraint):
    """A user classifier's probability of class ``target`` is at least ``threshold``.

    ``model`` maps samples in units to logits ``[n, classes]`` (softmax applied here);
    ``path``: its saved module, ``.pt2`` or TorchScript (what ``to_dict`` writes). Soft by default: guidance."""

    model: Callable
    target: int
    threshold: float
    hard: bool = False
    path: str | None = None
    kind = "classifier"

    def __post_init__(self):
        if not callable(self.model):
            raise ConfigError("classifier: model must be callable (a torch module)")
        if isinstance(self.target, bool) or not isinstance(self.target, int) or self.target < 0:
            raise ConfigError(f"classifier target must be a class index >= 0, got {self.target!r}")
        t = _number(self.threshold, "classifier threshold")
        if not 0 < t < 1:
            raise ConfigError(f"classifier threshold must be in (0, 1), got {t}")

    def describe(self):
        return f"p(class {self.target}) >= {self.threshold:g}"

    def compile(self, space):
        model, target, t = self.model, self.target, float(self.threshold)

        def score(u):
            return t - torch.softmax(model(u), -1)[:, target]

        return [LearnedAtom(self.describe(), self.hard, score, space.schema.shape if space.image else (), 0.0)]

    def to_dict(self):
        if self.path is None:
            raise ConfigError("to save a classifier constraint, give path= (its model saved with torch.export.save)")
        return {**self._base(), "module": self.path, "target": self.target, "threshold": self.threshold}


@dataclass(frozen=True, eq=False)
class Function(Constraint):
    """``fn(x) <= 0`` for a user's differentiable ``fn`` (one number per sample)."""

    fn: Callable
    name: str = "g"
    hard: bool = True
    path: str | None = None
    kind = "function"

    def __post_init__(self):
        if not callable(self.fn):
            raise ConfigError("function: fn must be callable")

    def describe(self):
        return f"{self.name}(x) <= 0"

    def compile(self, space):
        return [LearnedAtom(self.describe(), self.hard, self.fn, space.schema.shape if space.image else (), 0.0)]

    def to_dict(self):
        if self.path is None:
            raise ConfigError("to save a function constraint, give path= (its module saved with torch.export.save)")
        return {**self._base(), "module": self.path, "name": self.name}


@dataclass(frozen=True)
class ConstraintSet:
    """Constraints that must hold together."""

    constraints: tuple = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "constraints", tuple(self.constraints))
        for c in self.constraints:
            if not isinstance(c, Constraint):
                raise ConfigError(f"a ConstraintSet holds constraints, got {type(c).__name__}")

    def compile(self, space: Space) -> list[Atom]:
        return [a for c in self.constraints for a in c.compile(space)]

    def to_dict(self) -> dict:
        return {"constraints": [c.to_dict() for c in self.constraints]}

    @classmethod
    def from_dict(cls, d: Any, base: Path | None = None) -> "ConstraintSet":
        """From the JSON format (``{"constraints": [...]}`` or a bare list); module paths are
        resolved against ``base`` (the JSON file's directory)."""
        items = d.get("constraints") if isinstance(d, dict) else d
        if isinstance(d, dict) and set(d) - {"constraints"}:
            raise ConfigError(f"unknown keys {sorted(set(d) - {'constraints'})} in the constraints file "
                              "(expected {\"constraints\": [...]})")
        if not isinstance(items, list):
            raise ConfigError("a constraints file holds {\"constraints\": [...]} (a list of constraint objects)")
        return cls(tuple(constraint_from_dict(c, f"constraint {i + 1}", base) for i, c in enumerate(items)))


_FIELDS = {
    "range": ({"column"}, {"low", "high", "region"}),
    "linear": ({"terms", "op", "bound"}, set()),
    "pixel_mass": (set(), {"low", "high", "region", "statistic"}),
    "allowed": ({"column", "categories"}, set()),
    "equals": ({"column", "value"}, set()),
    "implies": ({"if", "then"}, set()),
    "classifier": ({"module", "target", "threshold"}, set()),
    "function": ({"module"}, {"name"}),
}


def constraint_from_dict(d: Any, where: str = "constraint", base: Path | None = None) -> Constraint:
    """One constraint from its JSON object (see docs/constraints.md)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: a constraint is a JSON object with a 'kind', got {type(d).__name__}")
    kind = d.get("kind")
    if kind not in _FIELDS:
        raise ConfigError(f"{where}: unknown kind {kind!r} (known: {sorted(_FIELDS)})")
    required, optional = _FIELDS[kind]
    allowed = required | optional | {"kind", "hard"}
    if set(d) - allowed:
        raise ConfigError(f"{where} ({kind}): unknown keys {sorted(set(d) - allowed)} (allowed: {sorted(allowed)})")
    if required - set(d):
        raise ConfigError(f"{where} ({kind}): missing {sorted(required - set(d))}")
    hard = d.get("hard", kind not in ("classifier",))
    if not isinstance(hard, bool):
        raise ConfigError(f"{where}: 'hard' must be true or false, got {hard!r}")
    region = _region(d["region"], where) if d.get("region") is not None else None
    try:
        if kind == "range":
            return Range(_text(d["column"], where), d.get("low"), d.get("high"), region, hard)
        if kind == "linear":
            if not isinstance(d["terms"], dict):
                raise ConfigError("terms must be an object {column: coefficient}")
            return Linear(dict(d["terms"]), d["op"], d["bound"], hard)
        if kind == "pixel_mass":
            return PixelMass(d.get("low"), d.get("high"), region, d.get("statistic", "mean"), hard)
        if kind == "allowed":
            return Allowed(_text(d["column"], where), d["categories"], hard)
        if kind == "equals":
            return Equals(_text(d["column"], where), d["value"], hard)
        if kind == "implies":
            return Implies(constraint_from_dict(d["if"], f"{where} 'if'", base),
                           constraint_from_dict(d["then"], f"{where} 'then'", base), hard)
        module, path = _module(d["module"], where, base)
        if kind == "classifier":
            return Classifier(module, d["target"], d["threshold"], hard, path)
        return Function(module, _text(d.get("name", "g"), where), hard, path)
    except ConfigError as e:
        if str(e).startswith(where):
            raise
        raise ConfigError(f"{where} ({kind}): {e}") from None


def _text(v, where) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{where}: a column name must be a non-empty string, got {v!r}")
    return v


def _region(d, where) -> Region:
    keys = {"top", "bottom", "left", "right", "channels"}
    if not isinstance(d, dict) or set(d) - keys:
        raise ConfigError(f"{where}: region must be an object with keys from {sorted(keys)}")
    for k in keys - {"channels"}:
        v = d.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise ConfigError(f"{where}: region {k} must be an integer, got {v!r}")
    ch = d.get("channels")
    if ch is not None and not isinstance(ch, list):
        raise ConfigError(f"{where}: region channels must be a list of channel indices")
    return Region(d.get("top", 0), d.get("bottom"), d.get("left", 0), d.get("right"),
                  None if ch is None else tuple(ch))


def _module(path, where, base) -> tuple[Callable, str]:
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: module must be the path of a saved module (.pt2 from torch.export, or TorchScript)")
    full = Path(path) if base is None or Path(path).is_absolute() else Path(base) / path
    kind = "exported program (torch.export)" if full.suffix == ".pt2" else "TorchScript module"
    try:
        if full.suffix == ".pt2":
            module = torch.export.load(str(full)).module()
        else:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; files made with it still load
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(full), map_location="cpu")
            module.eval()
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file; one line says which file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where}: cannot load the {kind} {path!r}: {first[:200]}") from None
    return module, path


def load_constraints(path: str | Path) -> ConstraintSet:
    """Read a constraints JSON file (see docs/constraints.md)."""
    from trustgen.io import read_json

    data = read_json(Path(path), "constraints file", ConfigError,
                     'a JSON object {"constraints": [...]}, see docs/constraints.md')
    return ConstraintSet.from_dict(data, base=Path(path).parent)
