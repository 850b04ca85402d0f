"""Can the hard constraints hold at all? Decided before any sampling, exactly where it can be.

Bounds, linear rules and equalities (with the schema's bounds and integer columns) are a
mixed-integer linear feasibility problem (scipy's HiGHS). Category and label sets intersect
column by column. An implication "if A then B" is a choice between "not A" and "B", so the
check walks the branches (depth first, at most :data:`MAX_BRANCHES` feasibility problems).
User functions and classifiers cannot be decided this way: they count as satisfiable, and
only sampling finds out (its budget error says so).

When the set is infeasible, :func:`check_feasible` names a small subset of constraints that
already conflict (each one needed: drop any and the rest can hold).

Example:
    >>> from trustgen.data.schema import TabularSchema, NumericColumn
    >>> from trustgen.constraints.language import ConstraintSet, Range
    >>> space = Space(TabularSchema([NumericColumn("x", 0, 10)]))
    >>> check_feasible(ConstraintSet([Range("x", high=1), Range("x", low=2)]).compile(space), space)
    Traceback (most recent call last):
    ...
    trustgen.errors.ConstraintError: the hard constraints cannot all hold: x <= 1; x >= 2 (no value satisfies them together)
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from trustgen.constraints.atoms import (
    Atom, BoxAtom, CategoryAtom, ImpliesAtom, LabelAtom, LearnedAtom, LinearAtom,
)
from trustgen.constraints.space import Space
from trustgen.errors import ConstraintError

MAX_BRANCHES = 2000
STRICT = 1e-7  # "not (a . u <= b)" is solved as a . u >= b + STRICT * scale


class Undecided(Exception):
    """Too many branches to walk."""


def check_feasible(atoms: list[Atom], space: Space) -> str:
    """Raise ConstraintError when the hard ``atoms`` cannot all hold; else say how far it was
    decided (``"decided"``, or why not entirely)."""
    hard = [a for a in atoms if a.hard]
    try:
        if _feasible(hard, space):
            learned = any(_has_learned(a) for a in hard)
            return "decided, except user functions and classifiers" if learned else "decided"
    except Undecided:
        return f"not decided (more than {MAX_BRANCHES} branches of implications)"
    core = list(hard)
    for a in list(core):  # deletion filter: keep only the constraints the conflict needs
        rest = [b for b in core if b is not a]
        try:
            if not _feasible(rest, space):
                core = rest
        except Undecided:
            pass
    names = "; ".join(dict.fromkeys(a.name for a in core))
    raise ConstraintError(f"the hard constraints cannot all hold: {names} (no value satisfies them together)")


def _has_learned(atom) -> bool:
    if isinstance(atom, ImpliesAtom):
        return any(_has_learned(a) for a in atom.when + atom.then)
    return isinstance(atom, LearnedAtom)


def _feasible(atoms: list[Atom], space: Space) -> bool:
    budget = [MAX_BRANCHES]
    choices = [_alternatives(a) for a in atoms]
    return _search(choices, 0, [], space, budget)


def _search(choices, i, pieces, space, budget) -> bool:
    if i == len(choices):
        return True
    for alt in choices[i]:
        budget[0] -= 1
        if budget[0] < 0:
            raise Undecided
        trial = pieces + alt
        if _conjunction_feasible(trial, space) and _search(choices, i + 1, trial, space, budget):
            return True
    return False


def _alternatives(atom) -> list[list[Atom]]:
    """Ways ``atom`` can hold, each a conjunction of convex pieces."""
    if isinstance(atom, ImpliesAtom):
        return _negations(atom.when) + _conjunctions(atom.then)
    if isinstance(atom, LearnedAtom):
        return [[]]
    return [[atom]]


def _conjunctions(atoms) -> list[list[Atom]]:
    out = []
    for combo in itertools.product(*[_alternatives(a) for a in atoms]):
        out.append([p for part in combo for p in part])
        if len(out) > MAX_BRANCHES:
            raise Undecided
    return out


def _negations(atoms) -> list[list[Atom]]:
    """Ways the conjunction of ``atoms`` can fail: one of them fails."""
    out = []
    for a in atoms:
        if isinstance(a, LinearAtom):
            d = STRICT * (1 + abs(a.b) + float(np.abs(a.a).sum()))
            out.append([LinearAtom("not " + a.name, True, -a.a, -a.b - d, "<=")])
            if a.op == "==":
                out.append([LinearAtom("not " + a.name, True, a.a, a.b - d, "<=")])
        elif isinstance(a, BoxAtom):
            for j, c in enumerate(a.coords):
                d = STRICT * (1 + max(abs(a.low[j]) if np.isfinite(a.low[j]) else 0, abs(a.high[j])
                                      if np.isfinite(a.high[j]) else 0))
                if np.isfinite(a.low[j]):
                    out.append([BoxAtom("not " + a.name, True, np.array([c]), np.array([-np.inf]),
                                        np.array([a.low[j] - d]))])
                if np.isfinite(a.high[j]):
                    out.append([BoxAtom("not " + a.name, True, np.array([c]), np.array([a.high[j] + d]),
                                        np.array([np.inf]))])
        elif isinstance(a, CategoryAtom):
            rest = tuple(i for i in range(a.size) if i not in a.allowed)
            if rest:
                out.append([CategoryAtom("not " + a.name, True, a.column, a.start, a.size, rest)])
        elif isinstance(a, LabelAtom):
            out.append([LabelAtom("not " + a.name, True, ("not",) + tuple(a.allowed))])
        elif isinstance(a, ImpliesAtom):
            for then_fails in _negations(a.then):
                for when in _conjunctions(a.when):
                    out.append(when + then_fails)
        else:
            out.append([])  # a learned rule may fail: assume it can
        if len(out) > MAX_BRANCHES:
            raise Undecided
    return out


def _conjunction_feasible(pieces: list[Atom], space: Space) -> bool:
    cats: dict[int, set] = {}
    labels = set(range(max(space.schema.n_classes, 1)))
    linear, boxes = [], []
    for p in pieces:
        if isinstance(p, CategoryAtom):
            cats[p.start] = cats.get(p.start, set(range(p.size))) & set(p.allowed)
            if not cats[p.start]:
                return False
        elif isinstance(p, LabelAtom):
            labels = labels - set(p.allowed[1:]) if p.allowed[:1] == ("not",) else labels & set(p.allowed)
            if not labels:
                return False
        elif isinstance(p, LinearAtom):
            linear.append(p)
        elif isinstance(p, BoxAtom):
            boxes.append(p)
    if not linear and not boxes:
        return True
    return _numbers_feasible(linear, boxes, space)


def _numbers_feasible(linear, boxes, space: Space) -> bool:
    from scipy.optimize import Bounds, LinearConstraint, milp

    lo, hi = space.low.copy(), space.high.copy()
    for b in boxes:
        lo[b.coords] = np.maximum(lo[b.coords], b.low)
        hi[b.coords] = np.minimum(hi[b.coords], b.high)
    if np.any(lo > hi + 1e-12):
        return False
    if not linear:
        return not (space.integer & (np.floor(hi) < np.ceil(lo))).any()
    a = np.array([p.a for p in linear])
    ub = np.array([p.b + p.tol if p.op == "==" else p.b for p in linear])  # "<=" exactly, as the check
    lb = np.array([p.b - p.tol if p.op == "==" else -np.inf for p in linear])
    res = milp(np.zeros(space.dim), constraints=LinearConstraint(a, lb, ub),
               bounds=Bounds(lo, np.maximum(lo, hi)), integrality=space.integer.astype(int))
    return res.status == 0


def forced(atoms: list[Atom], space: Space) -> list[Atom]:
    """Rules the hard ``atoms`` imply that projection would not see: for "if A then B" where B
    cannot hold together with the unconditional rules, every feasible sample has "not A"
    (added when "not A" is one convex piece, e.g. A a one-sided bound). Projection then moves
    samples out of A instead of into an impossible B."""
    hard = [a for a in atoms if a.hard]
    plain = [a for a in hard if not isinstance(a, (ImpliesAtom, LearnedAtom))]
    out = []
    try:
        for a in (a for a in hard if isinstance(a, ImpliesAtom)):
            negs = _negations(a.when)
            # (label negations stay here: the labels are drawn, not projected)
            if len(negs) == 1 and negs[0] and not any(isinstance(p, LabelAtom) for p in negs[0]) \
                    and not _feasible(plain + out + a.then, space):
                out += [replace(p, name=f"{p.name} (forced by: {a.name})") for p in negs[0]]
    except Undecided:
        pass
    return out
