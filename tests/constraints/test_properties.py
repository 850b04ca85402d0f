"""Property tests: random FEASIBLE constraint sets, every method, every family.

Each example draws a small tabular schema (a few numeric columns, some of them integer, one or
two categorical columns, sometimes a label) and a point ``v*`` inside it, then builds
constraints that ``v*`` satisfies: ranges containing it, linear inequalities
``a . v <= a . v* + slack`` (and ``>=``), occasionally an equality through it (over
continuous columns), ``equals`` on its category or a continuous value, allowed sets holding
its categories (and label), and implications (whose ``then`` holds at ``v*`` whenever their
``if`` does). So every set is feasible by construction. Continuous coordinates of ``v*`` are
strictly inside their bounds and margins and slacks are >= 0.01, so every set keeps an
interior around ``v*`` (on its equalities); sets without one (a single feasible point) are
tested on their own in tests/sampling/test_constrained.py.

For each family (tiny untrained VAE, GAN, diffusion model) and each method, every returned
sample is checked here, independently of trustgen's own check: each constraint is recomputed
on the returned DataFrame with plain numpy/pandas, in the data's units (inequalities and
bounds exactly, equalities to within 1e-6 relative), and so are the schema's bounds.
Rejection and guidance may fail only with the sampling-budget ConstraintError (the
documented way of returning nothing: rejection cannot hit an equality, guidance takes
gradient steps only); projection and auto must succeed. No method may return a violating
sample.

Reproducibility: hypothesis runs with ``derandomize=True`` (the examples are a fixed function
of the test, not of a random seed) and ``deadline=None`` (timings vary on a shared machine);
the sampler is seeded from the example, so a failure reproduces exactly on rerun.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sampling"))
from tiny_runs import make_run  # noqa: E402

from trustgen.constraints.feasibility import check_feasible  # noqa: E402
from trustgen.constraints.language import (  # noqa: E402
    Allowed, ConstraintSet, Equals, Implies, Linear, Range,
)
from trustgen.constraints.space import Space  # noqa: E402
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema  # noqa: E402
from trustgen.errors import ConfigError, ConstraintError  # noqa: E402
from trustgen.sampling.constrained import ConstrainedSampler  # noqa: E402

N = 8  # samples per call
EQ_RTOL = 1e-6  # equalities: |a.v - b| <= EQ_RTOL * (1 + |b| + sum |a_j v_j|)
# Budgets (samples drawn in all, the pilot of 100 plain draws included). Rejection is cheap per
# draw, so generous; guidance on a VAE/GAN runs a latent search per draw, so it gets less.
BUDGET = {"rejection": 4000, "projection": 2000, "guidance": 300, "auto": 2000}
METHODS = ("rejection", "projection", "guidance", "auto")


# ---------------------------------------------------------------------------------------------
# the independent check: plain numpy / pandas on the returned DataFrame
def holds(c, df: pd.DataFrame) -> np.ndarray:
    """Per row: does constraint ``c`` hold on ``df`` (data units)? Written from the language's
    definitions, not with trustgen's atoms."""
    if isinstance(c, Range):
        v = df[c.column].to_numpy(dtype=np.float64)
        ok = np.ones(len(df), dtype=bool)
        if c.low is not None:
            ok &= v >= c.low
        if c.high is not None:
            ok &= v <= c.high
        return ok
    if isinstance(c, Linear):
        terms = [coef * df[col].to_numpy(dtype=np.float64) for col, coef in c.terms.items()]
        lhs = np.sum(terms, axis=0)
        if c.op == "<=":
            return lhs <= c.bound
        if c.op == ">=":
            return lhs >= c.bound
        scale = 1.0 + abs(c.bound) + np.sum(np.abs(terms), axis=0)
        return np.abs(lhs - c.bound) <= EQ_RTOL * scale
    if isinstance(c, Allowed):
        return df[c.column].astype(str).isin([str(v) for v in c.categories]).to_numpy()
    if isinstance(c, Equals):
        if isinstance(c.value, str):
            return df[c.column].astype(str).to_numpy() == c.value
        v = df[c.column].to_numpy(dtype=np.float64)
        return np.abs(v - c.value) <= EQ_RTOL * (1.0 + abs(c.value))
    if isinstance(c, Implies):
        return ~holds(c.when, df) | holds(c.then, df)
    raise AssertionError(f"no independent check for {c!r}")


def holds_at_point(c, point: dict) -> bool:
    return bool(holds(c, pd.DataFrame({k: [v] for k, v in point.items()}))[0])


def check_in_schema(schema: TabularSchema, df: pd.DataFrame) -> None:
    assert list(df.columns) == [c.name for c in schema.columns]
    for col in schema.columns:
        if isinstance(col, NumericColumn):
            v = df[col.name].to_numpy(dtype=np.float64)
            assert np.isfinite(v).all() and (v >= col.low).all() and (v <= col.high).all(), col.name
            if col.integer:
                assert (v == np.round(v)).all(), col.name
        else:
            assert df[col.name].astype(str).isin([str(k) for k in col.categories]).all(), col.name


# ---------------------------------------------------------------------------------------------
# strategies
@st.composite
def schemas_and_points(draw):
    cols, point = [], {}
    for i in range(draw(st.integers(2, 4))):
        integer = draw(st.booleans()) if i else False  # the first numeric column is continuous
        low = draw(st.integers(-20, 20))
        high = low + draw(st.integers(2, 40))
        cols.append(NumericColumn(f"n{i}", float(low), float(high), integer))
        # continuous values strictly inside their bounds (sets around the point keep an interior)
        point[f"n{i}"] = (draw(st.integers(low, high)) if integer else
                          low + (high - low) * draw(st.floats(0.05, 0.95)))
    for i in range(draw(st.integers(1, 2))):
        cats = tuple(f"k{i}{j}" for j in range(draw(st.integers(2, 4))))
        cols.append(CategoricalColumn(f"c{i}", cats))
        point[f"c{i}"] = draw(st.sampled_from(cats))
    label = None
    if draw(st.booleans()):
        cols.append(CategoricalColumn("label", ("no", "yes")))
        point["label"] = draw(st.sampled_from(("no", "yes")))
        label = "label"
    return TabularSchema(cols, label=label), point


def _numeric(schema):
    return [c for c in schema.feature_columns if isinstance(c, NumericColumn)]


def _categorical(schema):
    return [c for c in schema.feature_columns if isinstance(c, CategoricalColumn)]


@st.composite
def simple_constraint(draw, schema, point, *, around: bool):
    """A range or an allowed set; ``around``: one that holds at ``point``."""
    if draw(st.booleans()):
        col = draw(st.sampled_from(_numeric(schema)))
        v = float(point[col.name]) if around else draw(st.floats(col.low, col.high))
        margin = st.one_of(st.none(), st.floats(0.01, (col.high - col.low) / 2))
        below, above = draw(margin), draw(margin)
        if below is None and above is None:
            above = 0.01
        return Range(col.name, None if below is None else v - below, None if above is None else v + above)
    col = draw(st.sampled_from(_categorical(schema)))
    must = [point[col.name]] if around else []
    extra = draw(st.lists(st.sampled_from(col.categories), max_size=len(col.categories)))
    return Allowed(col.name, tuple(dict.fromkeys(must + extra or [col.categories[0]])))


@st.composite
def feasible_sets(draw):
    schema, point = draw(schemas_and_points())
    nums = _numeric(schema)
    cont = [c for c in nums if not c.integer]
    out = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["range", "linear", "allowed", "implies", "implies", "equality", "equals",
                                     "label"]))
        if kind in ("range", "allowed"):
            out.append(draw(simple_constraint(schema, point, around=True)))
        elif kind == "linear":
            cols = draw(st.lists(st.sampled_from(nums), min_size=1, max_size=len(nums), unique_by=lambda c: c.name))
            terms = {c.name: draw(st.sampled_from([-3, -2, -1, -0.5, 0.5, 1, 2, 3])) for c in cols}
            at = sum(a * float(point[k]) for k, a in terms.items())
            slack = draw(st.sampled_from([0.01, 0.5, draw(st.floats(0.01, 20))]))
            if draw(st.booleans()):
                out.append(Linear(terms, "<=", at + slack))
            else:
                out.append(Linear(terms, ">=", at - slack))
            # float rounding of a.v* must not make v* itself infeasible: check it exactly
            if not holds_at_point(out[-1], point):
                out.pop()
        elif kind == "equality" and cont and draw(st.integers(0, 2)) == 0:  # occasionally
            cols = draw(st.lists(st.sampled_from(cont), min_size=1, max_size=len(cont), unique_by=lambda c: c.name))
            terms = {c.name: draw(st.sampled_from([-2, -1, 0.5, 1, 3])) for c in cols}
            out.append(Linear(terms, "==", sum(a * float(point[k]) for k, a in terms.items())))
        elif kind == "equals":  # conditioning on a category, or on a continuous value
            col = draw(st.sampled_from(_categorical(schema) + cont))
            out.append(Equals(col.name, point[col.name]))
        elif kind == "label" and schema.label:
            extra = draw(st.lists(st.sampled_from(("no", "yes")), max_size=2))
            out.append(Allowed("label", tuple(dict.fromkeys([point["label"]] + extra))))
        elif kind == "implies":
            when = draw(simple_constraint(schema, point, around=False))
            then = draw(simple_constraint(schema, point, around=holds_at_point(when, point)))
            out.append(Implies(when, then))
    if schema.label and draw(st.booleans()):
        extra = draw(st.lists(st.sampled_from(("no", "yes")), max_size=2))
        out.append(Allowed("label", tuple(dict.fromkeys([point["label"]] + extra))))
    if not out:
        out.append(draw(simple_constraint(schema, point, around=True)))
    for c in out:  # the construction's promise, checked
        assert holds_at_point(c, point), c
    return schema, point, ConstraintSet(out)


# ---------------------------------------------------------------------------------------------
def _continuous_equality(schema, cs) -> bool:
    """A top-level equality (linear ==, or equals on a number) over a continuous column."""
    cont = {c.name for c in _numeric(schema) if not c.integer}
    for c in cs.constraints:
        if isinstance(c, Linear) and c.op == "==" and set(c.terms) & cont:
            return True
        if isinstance(c, Equals) and c.column in cont:
            return True
    return False


def _sample_and_check(family, schema, cs, method, seed):
    run = make_run(family, schema)
    if method == "rejection" and _continuous_equality(schema, cs):
        # an equality on a continuous value never holds by chance: rejection is refused up front
        with pytest.raises(ConfigError, match="rejection cannot meet"):
            ConstrainedSampler(run, cs, method=method, budget=BUDGET[method])
        return None
    sampler = ConstrainedSampler(run, cs, method=method, budget=BUDGET[method])
    try:
        batch = sampler.sample(N, seed=seed)
    except ConstraintError as e:  # the budget is the only acceptable way to fail on a feasible set
        assert "budget" in str(e), f"{family}/{method}: a feasible set failed with: {e}"
        # projection (and auto, which falls back to it) is exact for these rules: the sets here
        # keep an interior around v*, so it must not run out of budget
        assert method not in ("projection", "auto"), f"{family}/{method} ran out of budget on a feasible set: {e}"
        return None
    df = batch.data
    assert len(df) == N
    check_in_schema(schema, df)
    for c in cs.constraints:
        ok = holds(c, df)
        assert ok.all(), (f"{family}/{method}: {c.describe()} broken by rows {np.flatnonzero(~ok).tolist()}:\n"
                          f"{df[~ok]}")
    if schema.label:  # the labels array and the label column agree
        assert (df["label"].to_numpy() == np.array(schema.classes, dtype=object)[batch.labels]).all()
    r = batch.constraint_report
    assert r.returned == N and r.draws >= N and 0.0 <= r.satisfied_before_repair <= 1.0
    return batch


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
# derandomize=True: the same examples on every run (reproducible); deadline=None: shared machine.
@settings(derandomize=True, max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=feasible_sets(), seed=st.integers(0, 2 ** 31 - 1))
def test_every_returned_sample_satisfies_every_hard_constraint(family, case, seed):
    schema, point, cs = case
    space = Space(schema)
    check_feasible(cs.compile(space), space)  # feasible by construction: must not raise
    for method in METHODS:
        _sample_and_check(family, schema, cs, method, seed)


def test_the_independent_check_rejects_what_the_plain_model_draws():
    """The check above can fail: on plain (unconstrained) draws it finds the violations."""
    from trustgen.sampling import Sampler

    schema = TabularSchema([NumericColumn("n0", 0, 10), NumericColumn("n1", -5, 5, integer=True),
                            CategoricalColumn("c0", ("k00", "k01", "k02")), CategoricalColumn("label", ("no", "yes"))],
                           label="label")
    df = Sampler(make_run("vae", schema)).sample(200, seed=0).data
    for c in [Range("n0", high=5), Linear({"n0": 1, "n1": 1}, "<=", 6), Linear({"n0": 1, "n1": -1}, "==", 3),
              Allowed("c0", ("k01",)), Equals("label", "yes"), Implies(Equals("c0", "k00"), Range("n1", low=2))]:
        ok = holds(c, df)
        assert 0 < ok.sum() < len(df) or c.kind == "linear" and c.op == "==" and not ok.any(), c
    check_in_schema(schema, df)


# derandomize=True: reproducible examples. The feasibility check alone, on many more sets.
@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=feasible_sets())
def test_feasible_sets_are_decided_feasible(case):
    schema, point, cs = case
    space = Space(schema)
    assert check_feasible(cs.compile(space), space).startswith("decided")
