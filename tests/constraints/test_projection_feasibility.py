"""Projection (the Euclidean projection onto half-spaces, hyperplanes and boxes, in the encoded
space) and the feasibility check (infeasible sets are refused before any sampling, naming a
minimal conflicting subset)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sampling"))
from tiny_runs import make_run  # noqa: E402

from trustgen.constraints.atoms import all_hold  # noqa: E402
from trustgen.constraints.feasibility import check_feasible  # noqa: E402
from trustgen.constraints.language import (  # noqa: E402
    Allowed, ConstraintSet, Equals, Implies, Linear, Range,
)
from trustgen.constraints.projection import project, to_encoded  # noqa: E402
from trustgen.constraints.space import Space  # noqa: E402
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema  # noqa: E402
from trustgen.errors import ConstraintError  # noqa: E402
from trustgen.sampling.constrained import ConstrainedSampler  # noqa: E402

# x and y on different scales: the projection is Euclidean in the encoded space
# (x_enc = x / 10, y_enc = (y - 2) / 2), which is where the expected answers are computed
PLANE = TabularSchema([NumericColumn("x", -10, 10), NumericColumn("y", -2, 6)])
SQUARE = TabularSchema([NumericColumn("x", -10, 10), NumericColumn("y", -10, 10)])  # one scale


def _encoded_rows(space: Space, rules) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rules and the schema box as ``G x <= h`` (inequalities) and ``E x == f`` in encoded
    coordinates, computed here from the rules' definitions (not with trustgen's atoms)."""
    names = list(space.numeric)
    off, scl = space.offset, space.scale
    g, h, e, f = [], [], [], []
    for r in rules:
        if isinstance(r, Linear):
            a = np.array([float(r.terms.get(n, 0.0)) for n in names])
            row, rhs = a * scl, r.bound - a @ off
            if r.op == "==":
                e.append(row), f.append(rhs)
            else:
                sign = 1.0 if r.op == "<=" else -1.0
                g.append(sign * row), h.append(sign * rhs)
        elif isinstance(r, Range):
            i = names.index(r.column)
            unit = np.eye(len(names))[i]
            if r.high is not None:
                g.append(unit), h.append((r.high - off[i]) / scl[i])
            if r.low is not None:
                g.append(-unit), h.append(-(r.low - off[i]) / scl[i])
    for i in range(len(names)):  # the schema's bounds: [-1, 1] encoded
        unit = np.eye(len(names))[i]
        g += [unit, -unit]
        h += [1.0, 1.0]
    return np.array(g), np.array(h), np.array(e).reshape(-1, len(names)), np.array(f)


def _brute_force_2d(p, g, h):
    """Exact Euclidean projection of ``p`` onto the polygon ``g x <= h``: the nearest feasible
    point among ``p``, its projections onto each edge line, and the lines' intersections."""
    cands = [p]
    for gi, hi in zip(g, h):
        cands.append(p - (gi @ p - hi) / (gi @ gi) * gi)
    for (gi, hi), (gj, hj) in itertools.combinations(zip(g, h), 2):
        m = np.array([gi, gj])
        if abs(np.linalg.det(m)) > 1e-12:
            cands.append(np.linalg.solve(m, [hi, hj]))
    feasible = [c for c in cands if (g @ c <= h + 1e-12).all()]
    return min(feasible, key=lambda c: float(np.sum((c - p) ** 2)))


def _qp(p, g, h, e, f):
    """Euclidean projection by scipy's SLSQP (a small QP), for more than 2 dimensions."""
    cons = [{"type": "ineq", "fun": lambda x: h - g @ x, "jac": lambda x: -g}]
    if len(e):
        cons.append({"type": "eq", "fun": lambda x: e @ x - f, "jac": lambda x: e})
    res = minimize(lambda x: 0.5 * np.sum((x - p) ** 2), np.clip(p, -1, 1), jac=lambda x: x - p,
                   constraints=cons, method="SLSQP", options={"ftol": 1e-15, "maxiter": 500})
    assert res.success, res.message
    return res.x


def _project(space, rules, x_enc: np.ndarray, *, one_by_one: bool = False) -> np.ndarray:
    """trustgen's projection of the rows of ``x_enc`` (as one batch, or each row alone)."""
    if one_by_one:
        return np.vstack([_project(space, rules, row[None]) for row in x_enc])
    atoms = ConstraintSet(rules).compile(space)
    out = project(to_encoded(atoms, space), torch.as_tensor(x_enc, dtype=torch.float64), None)
    u = space.to_units(out)
    assert bool(all_hold(atoms, u, None).all()), "a projected point breaks a rule"
    return out.numpy()


TOL = 1e-6  # encoded units; the projection aims ~1e-9 inside each rule, far below this

WEDGE = [Linear({"y": 1}, "<=", 0), Linear({"y": 1, "x": -1}, "<=", 0)]  # its corner: x = y = 0
CASES_2D = {
    "one half-space": (PLANE, [Linear({"x": 1, "y": 1}, "<=", 2)]),
    "a wedge": (PLANE, WEDGE),
    "a wedge on one scale": (SQUARE, WEDGE),
    "a triangle and a range": (PLANE, [Linear({"x": 1, "y": 2}, "<=", 4), Linear({"x": 1, "y": -1}, ">=", -3),
                                       Range("x", high=3)]),
    "a thin band": (PLANE, [Linear({"x": 1, "y": 1}, "<=", 1), Linear({"x": 1, "y": 1}, ">=", 0.5),
                            Range("y", low=-1)]),
}


@pytest.mark.parametrize("one_by_one", [False, True], ids=["batch", "each point alone"])
@pytest.mark.parametrize("name", list(CASES_2D))
def test_projection_in_2d_is_the_euclidean_projection(name, one_by_one):
    """Against an exact brute force (2-D polygon), for 40 fixed points (numpy seed 0) around the
    feasible set, outside and inside it, projected as one batch and one point at a time (a
    sample's projection must not depend on the others in its batch)."""
    schema, rules = CASES_2D[name]
    space = Space(schema)
    g, h, _, _ = _encoded_rows(space, rules)
    pts = np.random.default_rng(0).uniform(-1.5, 1.5, size=(40, 2))
    # and a few beyond the wedge's corner (x = y = 0), whose projection is the corner
    corner = space.from_units(torch.zeros(1, 2, dtype=torch.float64)).numpy()
    pts = np.vstack([pts, corner + [[-0.1, 0.2], [-0.5, 0.8], [-0.9, 0.9]]])
    got = _project(space, rules, pts, one_by_one=one_by_one)
    want = np.array([_brute_force_2d(p, g, h) for p in pts])
    err = np.abs(got - want).max(1)
    assert err.max() <= TOL, (f"{name}: worst point {pts[err.argmax()].tolist()} projected to "
                              f"{got[err.argmax()].tolist()}, the projection is {want[err.argmax()].tolist()} "
                              f"(off by {err.max():.2e}; {int((err > TOL).sum())} of {len(pts)} points off)")


def test_projection_in_3d_with_an_equality_is_the_euclidean_projection():
    """Against scipy's SLSQP on half-spaces, a hyperplane and boxes (20 points, numpy seed 1,
    each projected alone)."""
    schema = TabularSchema([NumericColumn("p", 0, 1), NumericColumn("q", 0, 2), NumericColumn("r", -1, 1)])
    space = Space(schema)
    rules = [Linear({"p": 1, "q": 1, "r": 1}, "==", 1), Linear({"p": 1, "q": -1}, "<=", 0.2),
             Range("r", low=-0.5), Linear({"q": 2, "r": 1}, "<=", 1.5)]
    g, h, e, f = _encoded_rows(space, rules)
    pts = np.random.default_rng(1).uniform(-2, 2, size=(20, 3))
    got = _project(space, rules, pts, one_by_one=True)
    want = np.array([_qp(p, g, h, e, f) for p in pts])
    assert (np.abs(e @ want.T - f[:, None]) < 1e-9).all() and (g @ want.T <= h[:, None] + 1e-9).all()
    err = np.abs(got - want).max(1)
    assert err.max() <= TOL, (f"worst point {pts[err.argmax()].tolist()} projected to {got[err.argmax()].tolist()}, "
                              f"the projection is {want[err.argmax()].tolist()} (off by {err.max():.2e}; "
                              f"{int((err > TOL).sum())} of {len(pts)} points off)")


def test_projection_onto_a_hyperplane_and_a_box_alone_is_exact():
    space = Space(PLANE)
    pts = np.random.default_rng(2).uniform(-3, 3, size=(30, 2))
    got = _project(space, [Range("x", -5, 5), Range("y", low=0)], pts)  # a box: clipping
    lo, hi = np.array([-0.5, (0 - 2) / 4]), np.array([0.5, 1.0])
    assert np.abs(got - np.clip(pts, lo, hi)).max() <= 1e-8
    # a hyperplane inside the box: x - (a.x - b) a, a the unit normal in encoded units
    rule = Linear({"x": 0.1, "y": 0.2}, "==", 0.5)  # encoded (x = 10 x_e, y = 2 + 4 y_e): x_e + 0.8 y_e == 0.1
    a, b = np.array([1.0, 0.8]), 0.1
    pts = np.random.default_rng(3).uniform(-0.3, 0.3, size=(30, 2))
    want = pts - ((pts @ a - b) / (a @ a))[:, None] * a
    assert np.abs(want).max() < 1  # the answers are inside the schema box: the plane alone decides
    assert np.abs(_project(space, [rule], pts) - want).max() <= 1e-9


def test_projection_leaves_points_that_satisfy_everything_where_they_are():
    schema, rules = CASES_2D["a triangle and a range"]
    space = Space(schema)
    g, h, _, _ = _encoded_rows(space, rules)
    pts = np.random.default_rng(4).uniform(-1, 1, size=(200, 2))
    inside = pts[(g @ pts.T <= h[:, None] - 1e-6).all(0)]
    assert len(inside) > 10
    assert np.array_equal(_project(space, rules, inside), inside)


# ---------------------------------------------------------------------------------------------
# infeasible sets: refused by the ConstrainedSampler's constructor, naming the conflict
SCHEMA = TabularSchema([NumericColumn("a", 0, 10), NumericColumn("b", 0, 10), NumericColumn("k", 0, 20, integer=True),
                        CategoricalColumn("c", ("x", "y", "z")), CategoricalColumn("label", ("no", "yes"))],
                       label="label")

# (name, conflicting constraints (the minimal subset to be named), bystanders that play no part)
INFEASIBLE = [
    ("contradictory ranges", [Range("a", high=1), Range("a", low=2)], [Range("b", low=1), Allowed("c", ("x",))]),
    ("a range outside the schema", [Range("a", low=11)], [Range("b", high=3)]),
    ("a linear rule excluding the schema box", [Linear({"a": 1, "b": 1}, ">=", 25)], [Equals("c", "y")]),
    ("two parallel half-planes", [Linear({"a": 1, "b": -1}, ">=", 3), Linear({"a": 1, "b": -1}, "<=", 2)],
     [Range("k", low=3)]),
    ("a linear rule against two ranges", [Linear({"a": 1, "b": 1}, "<=", 3), Range("a", low=2), Range("b", low=2)],
     [Range("a", high=9), Allowed("label", ("yes",))]),
    ("an equality outside the bounds", [Equals("a", 15)], [Range("b", low=1)]),
    ("a linear equality outside the box", [Linear({"a": 1, "b": 2}, "==", 31)], [Range("k", high=5)]),
    ("an equality against a range", [Equals("b", 4.0), Range("b", low=5)], [Range("a", low=5)]),
    ("an allowed set against equals on another category", [Allowed("c", ("x", "y")), Equals("c", "z")],
     [Range("a", low=2)]),
    ("label sets that do not meet", [Allowed("label", ("yes",)), Equals("label", "no")], [Allowed("c", ("x", "y"))]),
    ("an implication chain that comes back contradicting its start",
     [Equals("c", "x"), Implies(Equals("c", "x"), Range("a", low=6)), Implies(Range("a", low=5), Equals("c", "y"))],
     [Range("b", high=9), Implies(Equals("c", "z"), Range("a", high=1))]),
    ("implications that force each other into the impossible",
     [Implies(Range("a", low=0), Range("b", low=8)), Implies(Range("b", low=7), Range("a", high=-1))],
     [Range("k", low=1)]),
    ("an integer column with range (2.2, 2.8)", [Range("k", 2.2, 2.8)], [Range("a", 2.2, 2.8)]),
    ("an integer column with a half-integer equality", [Linear({"k": 2}, "==", 5)], [Linear({"a": 2}, "==", 5)]),
]


def _named(message: str) -> set:
    head = "the hard constraints cannot all hold: "
    assert message.startswith(head) and message.endswith(" (no value satisfies them together)"), message
    return set(message[len(head):-len(" (no value satisfies them together)")].split("; "))


@pytest.mark.parametrize("name, conflict, bystanders", INFEASIBLE, ids=[c[0] for c in INFEASIBLE])
def test_infeasible_sets_are_refused_before_sampling_naming_the_conflict(name, conflict, bystanders):
    run = make_run("gan", SCHEMA)
    calls = []
    real = run.model.generate
    run.model.generate = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    for order in (bystanders[:1] + conflict + bystanders[1:], list(reversed(conflict)) + bystanders):
        with pytest.raises(ConstraintError) as e:
            ConstrainedSampler(run, order, method="rejection")
        assert _named(str(e.value)) == {c.describe() for c in conflict}, (name, str(e.value))
    assert not calls, "the model was run before the set was refused"
    # each named constraint is needed: without any one of them (and with the bystanders) it can hold
    for i in range(len(conflict)):
        rest = conflict[:i] + conflict[i + 1:] + bystanders
        space = Space(SCHEMA)
        assert check_feasible(ConstraintSet(rest).compile(space), space).startswith("decided")


def test_soft_constraints_never_make_a_set_infeasible():
    run = make_run("gan", SCHEMA)
    rules = [Range("a", high=1), Range("a", low=2, hard=False), Equals("c", "z", hard=False), Allowed("c", ("x",))]
    batch = ConstrainedSampler(run, rules, method="projection").sample(6, seed=0)
    assert (batch.data["a"] <= 1).all() and (batch.data["c"] == "x").all()
    assert set(batch.constraint_report.soft) == {"a >= 2", "c == 'z'"}


def test_a_feasible_set_touching_the_schema_bounds_is_not_refused():
    space = Space(SCHEMA)
    for rules in ([Range("a", low=10)], [Range("k", 2.0, 2.0)], [Linear({"a": 1, "b": 1}, ">=", 20)],
                  [Range("k", 2.2, 3.0)], [Linear({"k": 2}, "==", 6)],
                  [Implies(Range("a", low=0), Range("b", low=8)), Implies(Range("b", low=9), Range("a", high=0))]):
        assert check_feasible(ConstraintSet(rules).compile(space), space).startswith("decided"), rules
