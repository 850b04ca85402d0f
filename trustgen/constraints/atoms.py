"""Compiled constraints: what the language's objects become once bound to a schema's space.

Each atom acts on samples in data units ``u`` (float ``[n, dim]``, see :class:`Space`) and their
labels ``y``: :meth:`Atom.holds` is the exact check (inequalities and bounds exactly; an
equality to within ``tol``, a float rounding of its terms), :meth:`Atom.violation` a
non-negative, differentiable measure that is 0 where the atom holds (what gradient search and
guidance descend). Linear atoms and boxes are also the
pieces the projection and the feasibility check work with.

Example:
    >>> a = LinearAtom("x <= 1", True, np.array([1.0]), 1.0, "<=")
    >>> a.holds(torch.tensor([[0.5], [2.0]], dtype=torch.float64), None).tolist()
    [True, False]
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

#: Relative margin of an inequality: projections aim this far inside it, so rounding cannot
#: push a projected sample out (the check itself is exact).
RTOL = 1e-9
#: An equality's slack: float64 rounding of a sum of a few terms, with room to spare.
RTOL_EQUALITY = 1e-12
#: Images are stored as float32 (.npz): margins and an equality's slack at its resolution.
RTOL_FLOAT32 = 1e-6


def tolerance(a: np.ndarray, b: float, magnitude: np.ndarray, equality: bool = False, float32: bool = False,
              ) -> float:
    """Float slack of ``a . u <= b`` (or ``==``) for ``|u| <= magnitude`` (``float32``: values
    stored in single precision)."""
    rtol = RTOL_FLOAT32 if float32 else RTOL_EQUALITY if equality else RTOL
    return rtol * (1.0 + abs(b) + float(np.abs(a) @ magnitude))


@dataclass
class Atom(abc.ABC):
    """One compiled rule. ``name`` says it in words (for reports and errors)."""

    name: str
    hard: bool

    @abc.abstractmethod
    def holds(self, u: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Per sample: does the rule hold (exactly)?"""

    @abc.abstractmethod
    def violation(self, u: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Per sample: how far from holding (>= 0, 0 where it holds; differentiable)."""


@dataclass
class LinearAtom(Atom):
    """``a . u <= b`` or ``a . u == b`` (``op``), ``a`` over the units vector."""

    a: np.ndarray = None
    b: float = 0.0
    op: str = "<="
    tol: float = 0.0

    def _residual(self, u):
        return u @ torch.as_tensor(self.a, dtype=u.dtype, device=u.device) - self.b

    def holds(self, u, y):
        r = self._residual(u)
        return r.abs() <= self.tol if self.op == "==" else r <= 0

    def violation(self, u, y):
        r = self._residual(u)
        return r.abs() if self.op == "==" else torch.relu(r)


@dataclass
class BoxAtom(Atom):
    """``low <= u[coords] <= high`` coordinate-wise (arrays over ``coords``; entries may be
    infinite)."""

    coords: np.ndarray = None
    low: np.ndarray = None
    high: np.ndarray = None
    tol: float = 0.0

    def _bounds(self, u):
        return (torch.as_tensor(self.low, dtype=u.dtype, device=u.device),
                torch.as_tensor(self.high, dtype=u.dtype, device=u.device))

    def holds(self, u, y):
        v = u[:, self.coords]
        lo, hi = self._bounds(u)
        return ((v >= lo) & (v <= hi)).all(1)

    def violation(self, u, y):
        v = u[:, self.coords]
        lo, hi = self._bounds(u)
        return (torch.relu(lo - v) + torch.relu(v - hi)).sum(1)


@dataclass
class CategoryAtom(Atom):
    """The category of the one-hot block ``u[start:start+size]`` is one of ``allowed`` (indices).
    On soft probabilities: violation is the probability mass outside the allowed set."""

    column: str = ""
    start: int = 0
    size: int = 0
    allowed: tuple = ()

    def mask(self, device=None) -> torch.Tensor:
        m = torch.zeros(self.size, dtype=torch.bool, device=device)
        m[list(self.allowed)] = True
        return m

    def holds(self, u, y):
        return self.mask(u.device)[u[:, self.start:self.start + self.size].argmax(1)]

    def violation(self, u, y):
        block = u[:, self.start:self.start + self.size]
        return (block * (~self.mask(u.device)).to(block)).clamp(min=0).sum(1)


@dataclass
class LabelAtom(Atom):
    """The sample's class is one of ``allowed`` (labels are drawn, not generated: conditioning)."""

    allowed: tuple = ()

    def holds(self, u, y):
        if y is None:
            return torch.zeros(u.shape[0], dtype=torch.bool, device=u.device)
        return torch.isin(y.to(u.device), torch.as_tensor(self.allowed, device=u.device))

    def violation(self, u, y):
        return (~self.holds(u, y)).to(u.dtype)


@dataclass
class LearnedAtom(Atom):
    """``score(u) <= 0`` for a differentiable ``score`` (a user function ``g``, or
    ``threshold - p(target)`` for a user classifier). ``shape`` reshapes ``u`` for the user's
    module (images: ``[n, C, H, W]``)."""

    score: Callable[[torch.Tensor], torch.Tensor] = None
    shape: tuple = ()
    tol: float = 0.0

    def scores(self, u):
        """The user score per sample (the rule holds where it is <= 0)."""
        from trustgen.errors import ConfigError

        try:
            out = torch.as_tensor(self.score(u.reshape((u.shape[0],) + self.shape) if self.shape else u))
        except Exception as e:  # noqa: BLE001 - the user's code: whatever it raises, one line naming the rule
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ConfigError(f"constraint {self.name}: the user's module failed on samples of shape "
                              f"{tuple(u.shape)}: {first}") from None
        if out.shape != (u.shape[0],):
            raise ConfigError(f"constraint {self.name}: the user's function must return one number per sample "
                              f"(shape [{u.shape[0]}]), got {tuple(out.shape)}")
        return out.to(u)

    def holds(self, u, y):
        s = self.scores(u)
        return torch.isfinite(s) & (s <= self.tol)

    def violation(self, u, y):
        return torch.relu(self.scores(u))


@dataclass
class ImpliesAtom(Atom):
    """Where every ``when`` atom holds, every ``then`` atom must hold."""

    when: list = field(default_factory=list)
    then: list = field(default_factory=list)

    def active(self, u, y) -> torch.Tensor:
        on = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
        for a in self.when:
            on &= a.holds(u, y)
        return on

    def holds(self, u, y):
        ok = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
        for a in self.then:
            ok &= a.holds(u, y)
        return ~self.active(u, y) | ok

    def violation(self, u, y):
        v = sum(a.violation(u, y) for a in self.then)
        return self.active(u, y).to(u.dtype) * v


def all_hold(atoms, u, y) -> torch.Tensor:
    """AND of ``holds`` over ``atoms`` (True for none)."""
    ok = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
    for a in atoms:
        ok &= a.holds(u, y)
    return ok
