"""ConstrainedSampler: every returned sample satisfies every hard constraint (checked here on the
decoded data with numpy, not with the library's own check), the budget, the report, auto's
choice, group sampling and label constraints.

Statistical tests say their seeds and their false-failure rate: the chance that they fail
although the sampler does what it promises. Their seeds are fixed, so each run is the same."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tiny_runs import IMAGES, TABLE, make_run
from trustgen.constraints.language import Allowed, Equals, Linear, PixelMass, Range
from trustgen.constraints.space import Region
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import ConstraintError
from trustgen.sampling import Sampler
from trustgen.sampling.constrained import ConstrainedSampler

SHARES = TabularSchema([NumericColumn("p", 0, 1), NumericColumn("q", 0, 1), NumericColumn("r", 0, 1),
                        NumericColumn("k", 0, 20, integer=True), CategoricalColumn("c", ("x", "y", "z")),
                        CategoricalColumn("label", ("no", "yes"))], label="label")


def _col(batch, name) -> np.ndarray:
    return batch.data[name].to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# equalities, integers
def test_shares_summing_to_one_hold_to_1e_9_after_projection(family):
    run = make_run(family, SHARES)
    plain = Sampler(run).sample(50, seed=0).data
    assert (np.abs(plain["p"] + plain["q"] + plain["r"] - 1) > 1e-3).any()  # the model alone does not
    rules = [Linear({"p": 1, "q": 1, "r": 1}, "==", 1), Range("p", low=0.1)]
    batch = ConstrainedSampler(run, rules, method="projection").sample(40, seed=1)
    p, q, r = _col(batch, "p"), _col(batch, "q"), _col(batch, "r")
    total = np.abs(p + q + r - 1.0)
    assert total.max() <= 1e-9, f"{family}: |p + q + r - 1| up to {total.max():.3e} ({int((total > 1e-9).sum())} of 40)"
    assert (p >= 0.1).all() and (np.minimum.reduce([p, q, r]) >= 0).all() and (np.maximum.reduce([p, q, r]) <= 1).all()


def test_an_integer_column_lands_on_the_one_whole_number_of_its_range(family):
    """k in [2.2, 3.8] means k == 3. Projection is exact for ranges, so (after the pilot of 100
    plain draws) it needs no more draws than samples; the budget leaves room for 100 more."""
    run = make_run(family, SHARES)
    sampler = ConstrainedSampler(run, [Range("k", 2.2, 3.8), Equals("c", "z")], method="projection", budget=220)
    batch = sampler.sample(20, seed=2)
    assert (batch.data["k"].to_numpy() == 3).all() and (batch.data["c"] == "z").all()
    assert batch.data["k"].dtype.kind == "i"


def test_a_feasible_set_that_is_a_single_point_is_found_by_projection():
    """n0 = 10 (its lower bound), n1 = 11.0176...: three inequalities meet there and only there.
    Feasible (the check says so), and projection is exact for linear rules, so it must find it
    (no tolerance is needed: the point itself satisfies every rule exactly)."""
    schema = TabularSchema([NumericColumn("n0", 10, 33), NumericColumn("n1", -8, 29)])
    n1 = 10 + 1.0176026140781644
    rules = [Linear({"n0": -1, "n1": 1}, ">=", n1 - 10), Linear({"n1": -3}, ">=", -3 * n1),
             Linear({"n0": 3, "n1": -2}, "<=", 30 - 2 * n1)]
    assert -10 + n1 >= n1 - 10 and -3 * n1 >= -3 * n1 and 30 - 2 * n1 <= 30 - 2 * n1  # the point holds
    sampler = ConstrainedSampler(make_run("gan", schema), rules, method="projection", budget=110)
    batch = sampler.sample(4, seed=0)
    n0, m1 = _col(batch, "n0"), _col(batch, "n1")
    assert (-n0 + m1 >= n1 - 10).all() and (-3 * m1 >= -3 * n1).all() and (3 * n0 - 2 * m1 <= 30 - 2 * n1).all()


# ---------------------------------------------------------------------------------------------
# images
def test_pixel_mass_and_a_label_with_projection(family):
    run = make_run(family, IMAGES)
    plain = Sampler(run).sample(20, seed=0).data.x
    bound = 3.0
    assert (plain.reshape(20, -1).mean(1) > bound).any()  # the model alone does not
    batch = ConstrainedSampler(run, [PixelMass(high=bound), Allowed("label", [3])], method="projection").sample(
        16, seed=1)
    x = np.asarray(batch.data.x, dtype=np.float64)
    assert x.shape == (16, 1, 8, 8)
    means = x.reshape(16, -1).mean(1)
    assert (means <= bound).all(), f"{family}: means above {bound}: {means[means > bound].tolist()}"  # exactly
    assert (x >= 0).all() and (x <= 16).all()
    assert (batch.labels == 3).all() and (np.asarray(batch.data.y) == 3).all()


def test_a_range_on_a_region_of_pixels(family):
    run = make_run(family, IMAGES)
    region = Region(top=2, bottom=6, left=1, right=5)
    batch = ConstrainedSampler(run, [Range("pixels", high=2.5, region=region),
                                     PixelMass(low=6.0, region=Region(0, 2, 0, 8), statistic="mean")],
                               method="projection").sample(12, seed=3)
    x = np.asarray(batch.data.x, dtype=np.float64)
    assert (x[:, :, 2:6, 1:5] <= 2.5).all()
    assert (x[:, :, :2, :].reshape(12, -1).mean(1) >= 6.0).all()
    outside = np.ones((8, 8), dtype=bool)
    outside[2:6, 1:5] = False
    assert (x[:, 0][:, outside] > 2.5).any()  # the rest of the image is free


# ---------------------------------------------------------------------------------------------
# the budget
def test_rejection_out_of_budget_raises_and_returns_nothing(family):
    run = make_run(family, TABLE)
    sampler = ConstrainedSampler(run, [Range("a", 5.0, 5.0001)], method="rejection", budget=300)  # feasible
    with pytest.raises(ConstraintError) as e:
        sampler.sample(10, seed=0)
    msg = str(e.value)
    assert "budget" in msg and "300 draws" in msg, msg


# ---------------------------------------------------------------------------------------------
# the report
@pytest.mark.parametrize("method", ["rejection", "projection", "guidance", "auto"])
def test_the_report_says_how_samples_were_made(method):
    run = make_run("vae", TABLE)
    batch = ConstrainedSampler(run, [Range("a", high=6), Allowed("c", ("x", "y"))], method=method).sample(
        20, seed=4)
    assert (_col(batch, "a") <= 6).all() and batch.data["c"].isin(["x", "y"]).all()
    r = batch.constraint_report
    assert r.method in ("rejection", "projection", "guidance") and (method == "auto" or r.method == method)
    assert r.returned == 20 and r.draws >= r.returned
    assert 0.0 <= r.satisfied_before_repair <= 1.0 and 0.0 <= r.satisfied_after_decode_before_repair <= 1.0
    assert set(r.per_constraint_before_repair) == {"a <= 6", "c in ['x', 'y']"}
    assert r.hard == ("a <= 6", "c in ['x', 'y']") and r.soft == ()
    assert all(0.0 <= v <= 1.0 for v in r.per_constraint_before_repair.values())
    assert (r.satisfied_after_steering is None) == (r.method == "rejection")
    d = r.to_dict()
    assert d["method"] == r.method and d["draws"] == r.draws and 0 < d["acceptance_rate"] <= 1


def test_rejection_with_a_constraint_that_always_holds_draws_exactly_n(family):
    run = make_run(family, TABLE)
    batch = ConstrainedSampler(run, [Range("a", 0, 10)], method="rejection").sample(10, seed=5)
    r = batch.constraint_report
    assert r.method == "rejection" and r.satisfied_before_repair == 1.0
    assert r.draws == 10, f"{r.draws} draws for 10 samples that all satisfy"


def _plain_a(run, n=4000, seed=21) -> np.ndarray:
    return Sampler(run).sample(n, seed=seed).data["a"].to_numpy(dtype=np.float64)


def test_auto_picks_rejection_when_most_draws_satisfy_and_projection_when_few_do():
    """The rules are set from 4,000 plain draws (seed 21): ``a <= q60`` holds for ~60% of
    draws, ``a`` within the central 1% for ~1%. Auto's pilot is 100 draws (seeds 22, 23): it
    picks rejection when >= 10 satisfy. False-failure rate: P(Bin(100, 0.6) < 10) = 1e-26 and
    P(Bin(100, 0.015) >= 10) = 3e-6 (1.5%: the band the plain draws are checked to be in);
    the pilot's rate within 0.25 of 0.6: over 5 standard deviations, < 1e-9."""
    run = make_run("vae", TABLE)
    a = _plain_a(run)
    hi = float(np.quantile(a, 0.6))
    lo_c, hi_c = (float(v) for v in np.quantile(a, [0.495, 0.505]))
    assert 0.55 <= (a <= hi).mean() <= 0.65 and 0.005 <= ((a >= lo_c) & (a <= hi_c)).mean() <= 0.015

    common = ConstrainedSampler(run, [Range("a", high=hi)], method="auto").sample(20, seed=22)
    assert common.constraint_report.method == "rejection"
    assert abs(common.constraint_report.satisfied_after_decode_before_repair - 0.6) < 0.25  # > 5 sd of 100 draws
    rare = ConstrainedSampler(run, [Range("a", lo_c, hi_c)], method="auto").sample(20, seed=23)
    assert rare.constraint_report.method == "projection"
    assert rare.constraint_report.satisfied_after_decode_before_repair < 0.1
    for b, (lo, hi_) in ((common, (0, hi)), (rare, (lo_c, hi_c))):
        assert ((_col(b, "a") >= lo) & (_col(b, "a") <= hi_)).all()
    # and the extremes: a rule that always holds, and one no draw meets
    assert ConstrainedSampler(run, [Range("a", 0, 10)]).sample(5, seed=0).constraint_report.method == "rejection"
    assert ConstrainedSampler(run, [Equals("a", 3.3)]).sample(5, seed=0).constraint_report.method == "projection"


def test_rejection_samples_follow_the_model_conditioned_on_the_constraint():
    """Rejection is exact: its samples are distributed as the model's plain draws that satisfy
    the rule. Plain draws: 4,000 (seed 21), kept where a <= median; rejection: 800 (seed 24).
    Two-sample KS on a, chi-square on c and on the label, each at 1e-3: false-failure rate
    <= 3e-3 (Bonferroni)."""
    run = make_run("vae", TABLE)
    plain = Sampler(run).sample(4000, seed=21).data
    med = float(np.median(plain["a"]))
    kept = plain[plain["a"] <= med]
    batch = ConstrainedSampler(run, [Range("a", high=med)], method="rejection").sample(800, seed=24)
    got = batch.data
    assert (got["a"] <= med).all()
    assert stats.ks_2samp(kept["a"], got["a"]).pvalue > 1e-3
    for col in ("c", "label"):
        cats = sorted(set(plain[col]))
        table = [[int((kept[col] == v).sum()) for v in cats], [int((got[col] == v).sum()) for v in cats]]
        assert stats.chi2_contingency(table).pvalue > 1e-3, (col, table)


# ---------------------------------------------------------------------------------------------
# groups
def test_sample_groups_gives_equal_counts_per_category(family):
    run = make_run(family, TABLE)
    sampler = ConstrainedSampler(run, [Range("a", high=8)], method="projection")
    batch = sampler.sample_groups(12, "c", seed=6)
    assert batch.data["c"].value_counts().to_dict() == {"x": 4, "y": 4, "z": 4}
    assert (_col(batch, "a") <= 8).all() and len(batch.encoded) == 12 and len(batch.labels) == 12
    some = sampler.sample_groups(7, "c", groups=["x", "z"], seed=7)
    assert sorted(some.data["c"].value_counts().to_dict().items()) == [("x", 4), ("z", 3)]
    assert batch.constraint_report.returned == 12 and batch.constraint_report.draws >= 12


@pytest.mark.parametrize("method", ["rejection", "projection"])
def test_sample_groups_gives_equal_counts_per_label(family, method):
    run = make_run(family, TABLE)
    batch = ConstrainedSampler(run, [Range("a", low=2)], method=method).sample_groups(10, "label", seed=8)
    assert batch.data["label"].value_counts().to_dict() == {"no": 5, "yes": 5}
    assert np.bincount(batch.labels, minlength=2).tolist() == [5, 5]
    assert (_col(batch, "a") >= 2).all()
    images = make_run(family, IMAGES)
    bound = 12.0 if method == "rejection" else 5.0  # rejection: a bound most plain images meet
    ib = ConstrainedSampler(images, [PixelMass(high=bound)], method=method).sample_groups(20, "label", seed=9)
    assert np.bincount(ib.labels, minlength=10).tolist() == [2] * 10
    assert (np.asarray(ib.data.x, dtype=np.float64).reshape(20, -1).mean(1) <= bound).all()


def test_sample_groups_never_breaks_the_constraints_to_balance():
    run = make_run("vae", TABLE)
    # by default the groups are the categories the constraints allow
    only_yes = ConstrainedSampler(run, [Allowed("label", ["yes"])]).sample_groups(4, "label", seed=0)
    assert only_yes.data["label"].tolist() == ["yes"] * 4
    two = ConstrainedSampler(run, [Allowed("c", ["x", "y"])], method="projection").sample_groups(6, "c", seed=0)
    assert two.data["c"].value_counts().to_dict() == {"x": 3, "y": 3}
    with pytest.raises(ConstraintError):  # asked for explicitly: group "no" breaks the label rule
        ConstrainedSampler(run, [Allowed("label", ["yes"])]).sample_groups(4, "label", groups=["no", "yes"], seed=0)
    with pytest.raises(ConstraintError, match="c in"):  # group "z" against c in [x, y]
        ConstrainedSampler(run, [Allowed("c", ["x", "y"])], method="projection").sample_groups(
            6, "c", groups=["x", "y", "z"], seed=0)
    ok = ConstrainedSampler(run, [Allowed("c", ["x", "y"])], method="projection").sample_groups(
        6, "c", groups=["x", "y"], seed=0)
    assert ok.data["c"].value_counts().to_dict() == {"x": 3, "y": 3}


# ---------------------------------------------------------------------------------------------
# labels
def test_labels_that_break_a_label_constraint_raise():
    run = make_run("gan", TABLE)
    for method in ("rejection", "projection", "auto"):
        sampler = ConstrainedSampler(run, [Allowed("label", ["yes"]), Range("a", high=7)], method=method)
        for labels in ("no", 0, ["yes", "no", "yes"]):
            with pytest.raises(ConstraintError, match="label"):
                sampler.sample(3, labels=labels, seed=0)
        drawn = sampler.sample(30, seed=1)  # labels from the prior, restricted to the allowed class
        assert (drawn.data["label"] == "yes").all() and (drawn.labels == 1).all() and (_col(drawn, "a") <= 7).all()
    images = ConstrainedSampler(make_run("gan", IMAGES), [Allowed("label", [3, 5])], method="projection")
    with pytest.raises(ConstraintError):
        images.sample(2, labels=4, seed=0)
    assert set(images.sample(20, seed=2).labels.tolist()) <= {3, 5}


@pytest.mark.parametrize("method", ["rejection", "projection", "guidance", "auto"])
def test_labels_asked_for_are_given(method):
    """Labels that the constraints allow: every sample has the label asked for, with every
    method (the methods other than rejection run a pilot of 100 plain draws first)."""
    run = make_run("gan", TABLE)
    sampler = ConstrainedSampler(run, [Allowed("label", ["yes"]), Range("a", high=7)], method=method)
    asked = sampler.sample(3, labels="yes", seed=0)
    assert (asked.data["label"] == "yes").all() and (asked.labels == 1).all() and (_col(asked, "a") <= 7).all()
    each = ConstrainedSampler(run, [Range("a", high=7)], method=method).sample(4, labels=["no", "yes", "yes", "no"],
                                                                               seed=1)
    assert each.data["label"].tolist() == ["no", "yes", "yes", "no"] and (_col(each, "a") <= 7).all()
