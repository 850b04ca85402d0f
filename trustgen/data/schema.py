"""Schemas: the public domain of the data, declared up front.

A schema says what values a record *may* take: bounds for numbers, the category list of a
categorical column, the shape and value range of an image. Encoders are built from the schema
alone, never from statistics of the private rows, because a min, max or set of unique values
computed on private data is itself a release that differential privacy does not cover.

Example:
    >>> s = TabularSchema([NumericColumn("age", 18, 100, integer=True),
    ...                    CategoricalColumn("sex", ("f", "m"))], label="sex")
    >>> s.label_column.categories
    ('f', 'm')
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, Union

from trustgen.errors import SchemaError
from trustgen.io import atomic_write_text, read_json
from trustgen.json_fields import Fields, did_you_mean
from trustgen.limits import MAX_CATEGORIES, MAX_IMAGE_ENTRIES

Source = Literal["declared", "data-derived", "dp"]
SOURCES: tuple[str, ...] = ("declared", "data-derived", "dp")

#: Relative slack when checking that a DP schema's per-mechanism shares add up to at most its
#: epsilon: equal shares ``E / k`` summed in floating point can exceed ``E`` by a rounding error.
SPEND_RTOL = 1e-9


def _usable_range(low: float, high: float) -> bool:
    """Finite bounds, low < high, and a span whose size and reciprocal are finite: the encoders
    divide by it (-1e308..1e308 would scale every value to NaN)."""
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        return False
    span = high - low
    return math.isfinite(span) and math.isfinite(1.0 / span)


@dataclass(frozen=True)
class NumericColumn:
    """A number in ``[low, high]``; ``integer=True`` for counts and other whole numbers."""

    name: str
    low: float
    high: float
    integer: bool = False

    def __post_init__(self) -> None:
        if not _usable_range(self.low, self.high):
            raise SchemaError(
                f"column {self.name!r}: bounds must be finite with low < high (and a span a float can hold), got "
                f"[{self.low}, {self.high}]. Declare the public range the value can take."
            )
        if self.integer:
            if max(abs(self.low), abs(self.high)) > MAX_EXACT_INTEGER:
                raise SchemaError(f"column {self.name!r}: an integer column's bounds must lie within +-2^53 (whole "
                                  f"numbers a float holds exactly), got [{self.low}, {self.high}]; make it numeric")
            if math.ceil(self.low) > math.floor(self.high):
                raise SchemaError(f"column {self.name!r}: no whole number lies in [{self.low}, {self.high}]")

    @property
    def whole_bounds(self) -> tuple[int, int]:
        """An integer column's smallest and largest whole values, ``ceil(low)`` and ``floor(high)``."""
        return math.ceil(self.low), math.floor(self.high)


#: The largest magnitude an integer column's bounds may have: every whole number up to it is a
#: float64 exactly, and it converts to int64 (beyond, decoded values wrapped to -2^63).
MAX_EXACT_INTEGER = 2.0 ** 53


@dataclass(frozen=True)
class CategoricalColumn:
    """One of a fixed, public list of categories (strings or integers)."""

    name: str
    categories: tuple

    def __post_init__(self) -> None:
        cats = tuple(self.categories)
        object.__setattr__(self, "categories", cats)
        if len(cats) < 2:
            raise SchemaError(
                f"column {self.name!r}: a categorical column needs at least 2 categories, "
                f"got {list(cats)}. A constant column carries no information: drop it."
            )
        if len(cats) > MAX_CATEGORIES:
            raise SchemaError(f"column {self.name!r} declares {len(cats):,} categories; trustgen encodes at most "
                              f"{MAX_CATEGORIES:,} per column (one-hot): group rare ones, or make it numeric")
        keys = [category_key(c) for c in cats]
        if len(set(keys)) != len(keys):
            raise SchemaError(f"column {self.name!r}: duplicate categories in {list(cats)[:20]}")

    def index_of(self) -> dict[str, int]:
        """Map from the normalised key of each category to its position."""
        return category_index(self.categories)


Column = Union[NumericColumn, CategoricalColumn]


@dataclass(frozen=True)
class DomainSpend:
    """The privacy spend of a schema estimated with pure epsilon-DP (``source="dp"``).

    Written by :func:`trustgen.privacy.dp_domains.infer_dp_schema`; training on the schema adds
    ``epsilon`` to the run's ``preprocessing_epsilon``. ``mechanisms`` holds one JSON object per
    query: at least ``column``, ``mechanism`` and its ``epsilon`` share (the shares add up to at
    most ``epsilon``: basic composition). ``fixed_seed`` marks a schema whose noise came from a
    caller's seed (tests only: whoever knows the seed can undo the noise).
    """

    epsilon: float
    mechanisms: tuple = ()
    fixed_seed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mechanisms", tuple(dict(m) for m in self.mechanisms))
        if isinstance(self.epsilon, bool) or not isinstance(self.epsilon, (int, float)) or not (
                math.isfinite(self.epsilon) and self.epsilon > 0):
            raise SchemaError(f"a DP schema's epsilon must be a finite number > 0, got {self.epsilon!r}")
        spent = 0.0
        for m in self.mechanisms:
            share = m.get("epsilon")
            if not isinstance(m.get("column"), str) or not isinstance(m.get("mechanism"), str) or isinstance(
                    share, bool) or not isinstance(share, (int, float)) or not (math.isfinite(share) and share >= 0):
                raise SchemaError(f"a DP schema mechanism needs a column, a mechanism and an epsilon >= 0, got {m}")
            spent += share
        if spent > self.epsilon * (1 + SPEND_RTOL):
            raise SchemaError(f"a DP schema's mechanisms spend epsilon {spent:g}, more than its recorded "
                              f"epsilon {self.epsilon:g}: the file is inconsistent")

    def to_dict(self) -> dict:
        return {"epsilon": self.epsilon, "mechanisms": [dict(m) for m in self.mechanisms],
                "fixed_seed": self.fixed_seed}


def check_source(source: str, dp: DomainSpend | None) -> None:
    """``source`` must be known, and a DP spend record goes with ``source="dp"`` and only with it
    (an unknown source could otherwise pass for a declared one, and a "dp" schema must say
    what it spent)."""
    if source not in SOURCES:
        raise SchemaError(f"unknown schema source {source!r} (known: {', '.join(SOURCES)})")
    if (source == "dp") != (dp is not None):
        raise SchemaError('a schema has a "dp" spend record if and only if its source is "dp"')


def category_key(value: Any) -> str:
    """Normalise a category value so ``1``, ``1.0`` and ``"1"`` match the same category."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        return category_key(value.item())
    return str(value)


def category_index(categories: Sequence[Any] | None) -> dict[str, int]:
    """The label-index map: normalised key (:func:`category_key`) of each category -> its position.

    Use it for a column's categories or a schema's ``classes`` (``{}`` for None: no label).

    Example:
        >>> category_index((0, "b", 2.0))
        {'0': 0, 'b': 1, '2': 2}
    """
    return {category_key(c): i for i, c in enumerate(categories or ())}


@dataclass
class TabularSchema:
    """Columns of a table and, optionally, the label column models condition on.

    Args:
        columns: every column, in the order of the data (the label included).
        label: name of a categorical column to condition on, or None for unconditional models.
        source: ``"declared"`` when a person wrote the bounds from public knowledge;
            ``"data-derived"`` when :func:`trustgen.data.loaders.infer_schema` drafted it from the
            data (then it leaks information about the private rows and a run records a caveat);
            ``"dp"`` when :func:`trustgen.privacy.dp_domains.infer_dp_schema` estimated it with
            pure epsilon-DP (its spend is in ``dp``).
        dp: the :class:`DomainSpend` of a ``"dp"`` schema; None otherwise.
    """

    columns: list
    label: str | None = None
    source: Source = "declared"
    dp: DomainSpend | None = None
    kind: Literal["tabular"] = field(default="tabular", init=False)

    def __post_init__(self) -> None:
        check_source(self.source, self.dp)
        self.columns = list(self.columns)
        if not self.columns:
            raise SchemaError("a tabular schema needs at least one column")
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SchemaError(f"duplicate column names in schema: {duplicates} are declared more than once "
                              "(declare each column once)")
        if self.label is not None:
            if self.label not in names:
                guess = did_you_mean(str(self.label), names)
                raise SchemaError(
                    f"label column {self.label!r} is not among the schema's columns {names}"
                    + (f"; did you mean {guess!r}?" if guess else "")
                )
            if not isinstance(self.column(self.label), CategoricalColumn):
                raise SchemaError(
                    f"label column {self.label!r} must be categorical (models condition on a "
                    "class); declare it as CategoricalColumn with its classes."
                )
        if len(self.feature_columns) == 0:
            raise SchemaError("the schema has no feature column besides the label")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"no column {name!r} in schema (known: {[c.name for c in self.columns]})")

    @property
    def label_column(self) -> CategoricalColumn | None:
        return None if self.label is None else self.column(self.label)  # type: ignore[return-value]

    @property
    def feature_columns(self) -> list:
        return [c for c in self.columns if c.name != self.label]

    @property
    def classes(self) -> tuple | None:
        lc = self.label_column
        return None if lc is None else lc.categories

    @property
    def n_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)

    def to_dict(self) -> dict:
        cols = []
        for c in self.columns:
            d = asdict(c)
            if isinstance(c, CategoricalColumn):
                d["type"] = "categorical"
                d["categories"] = list(c.categories)
            else:
                d["type"] = "integer" if c.integer else "numeric"
                d.pop("integer")
            cols.append(d)
        out = {"kind": "tabular", "source": self.source, "label": self.label, "columns": cols}
        if self.dp is not None:  # absent otherwise, so other schemas keep their exact old form
            out["dp"] = self.dp.to_dict()
        return out


@dataclass
class ImageSchema:
    """Images of a fixed shape ``channels x height x width`` with values in ``[low, high]``.

    Args:
        classes: names of the label classes (labels are integers ``0..len(classes)-1``), or None.
    """

    channels: int
    height: int
    width: int
    low: float = 0.0
    high: float = 1.0
    classes: tuple | None = None
    source: Source = "declared"
    kind: Literal["image"] = field(default="image", init=False)

    def __post_init__(self) -> None:
        check_source(self.source, None)  # an image's shape and value range are format facts: no DP estimate
        for name in ("channels", "height", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise SchemaError(f"image {name} must be a positive integer, got {v!r}")
        if self.channels * self.height * self.width > MAX_IMAGE_ENTRIES:
            raise SchemaError(f"images of {self.channels} x {self.height} x {self.width} values are larger than "
                              f"trustgen takes ({MAX_IMAGE_ENTRIES:,} values per image)")
        if not _usable_range(self.low, self.high):
            raise SchemaError(f"image value range must be finite with low < high (and a span a float can hold), "
                              f"got [{self.low}, {self.high}]")
        if self.classes is not None:
            self.classes = tuple(self.classes)
            if len(self.classes) < 2:
                raise SchemaError("an image label needs at least 2 classes")
            if len(self.classes) > MAX_CATEGORIES:
                raise SchemaError(f"the image schema declares {len(self.classes):,} classes; at most "
                                  f"{MAX_CATEGORIES:,}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def n_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)

    @property
    def label(self) -> str | None:
        return None if self.classes is None else "label"

    def to_dict(self) -> dict:
        return {
            "kind": "image", "source": self.source, "channels": self.channels,
            "height": self.height, "width": self.width, "low": self.low, "high": self.high,
            "classes": None if self.classes is None else list(self.classes),
        }


Schema = Union[TabularSchema, ImageSchema]


#: The keys each object of a schema file may have; any other key is a typo or a mistake.
TABULAR_KEYS = ("kind", "source", "label", "columns", "dp")
IMAGE_KEYS = ("kind", "source", "channels", "height", "width", "low", "high", "classes")
COLUMN_KEYS = {"numeric": ("name", "type", "low", "high"), "integer": ("name", "type", "low", "high"),
               "categorical": ("name", "type", "categories")}
DP_KEYS = ("epsilon", "mechanisms", "fixed_seed")
#: Keys people write for a column by analogy with other tools or the Python API, and what to write.
COLUMN_HINTS = {"integer": 'for whole numbers write "type": "integer"',
                "min": 'the bounds are "low" and "high"', "max": 'the bounds are "low" and "high"'}


def schema_from_dict(d: Any) -> Schema:
    """Rebuild a schema from :meth:`to_dict` output (or a hand-written file).

    Every field is read with its JSON type and every object refuses keys it does not know (a
    misspelt ``"lable"`` would otherwise train an unconditional model), each error naming the
    field and, for a typo, the key that was likely meant.
    """
    top = Fields(d, "the schema", SchemaError)
    kind = top.get("kind", "string", None)
    if kind is None:
        raise SchemaError('the schema has no "kind": add "kind": "tabular" or "kind": "image"')
    source = top.get("source", "string", "declared")
    if kind == "image":
        top.only(IMAGE_KEYS)
        classes = top.get("classes", "list", None, nullable=True, items="scalar")
        return ImageSchema(top.get("channels", "integer"), top.get("height", "integer"), top.get("width", "integer"),
                           top.get("low", "number"), top.get("high", "number"),
                           None if classes is None else tuple(classes), source)
    if kind == "tabular":
        top.only(TABULAR_KEYS)
        cols = [_column_from_dict(c, i) for i, c in enumerate(top.get("columns", "list"))]
        label = top.get("label", "string", None, nullable=True)
        dp = top.get("dp", "object", None, nullable=True)
        if dp is not None:
            f = Fields(dp, 'the schema\'s "dp" block', SchemaError)
            f.only(DP_KEYS)
            # epsilon as written: DomainSpend checks it is a finite number > 0, range included
            dp = DomainSpend(f.obj.get("epsilon"), tuple(f.get("mechanisms", "list", [], items="object")),
                             f.get("fixed_seed", "boolean", False))
        return TabularSchema(cols, label, source, dp)
    raise SchemaError(f"unknown schema kind {kind!r} (known: tabular, image)")


def _column_from_dict(c: Any, i: int) -> Column:
    f = Fields(c, f"column {i + 1} of the schema", SchemaError)
    name = f.get("name", "string")
    f.where = f"column {name!r} of the schema"
    t = f.get("type", "string")
    if t not in COLUMN_KEYS:
        raise SchemaError(f"{f.where}: unknown type {t!r} (known: {', '.join(COLUMN_KEYS)})")
    f.only(COLUMN_KEYS[t], COLUMN_HINTS)
    if t == "categorical":
        return CategoricalColumn(name, tuple(f.get("categories", "list", items="scalar")))
    return NumericColumn(name, f.get("low", "number"), f.get("high", "number"), t == "integer")


SCHEMA_FILE_HINT = "give the schema's JSON file (`trustgen schema infer DATA` drafts one)"


def save_schema(schema: Schema, path: str | Path) -> None:
    """Write ``schema`` as JSON (atomically: a crash never leaves half a file)."""
    atomic_write_text(Path(path), json.dumps(schema.to_dict(), indent=2) + "\n")


def load_schema(path: str | Path) -> Schema:
    """Read a schema JSON file written by :func:`save_schema` or by hand."""
    return schema_from_dict(read_json(path, "schema file", SchemaError, SCHEMA_FILE_HINT, expect=dict))


def check_names(names: Sequence[str], schema: TabularSchema) -> None:
    """Raise if the data's columns differ from the schema's (label missing, extra, unknown)."""
    have, want = list(names), [c.name for c in schema.columns]
    missing = [n for n in want if n not in have]
    extra = [n for n in have if n not in want]
    if schema.label is not None and schema.label in missing:
        raise SchemaError(
            f"label column {schema.label!r} is missing from the data (columns: {have}). "
            "Add it, or use a schema with another label (or label null for unconditional models)."
        )
    if missing or extra:
        raise SchemaError(
            f"data columns do not match the schema: missing {missing}, not in schema {extra}. "
            "Every column must be declared; drop the extra ones or add them to the schema."
        )
