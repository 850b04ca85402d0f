"""The marginal fit: raking, weighted choice without repeats, the simplex projection of noisy
counts, rank-order quantile mapping, and the sampler's use of them (tiny untrained runs with
marginals set by hand, so the targets are known)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.sampling.tiny_runs import TABLE, make_run
from trustgen.errors import ConfigError
from trustgen.privacy.marginal_histogram import marginal_layout, marginals_record
from trustgen.sampling import Sampler
from trustgen.sampling.marginal_fit import WITHIN_MIN, pick, quantile_map, rake, simplex

# column a (numeric 0..10, 10 bins): 40% in [2, 3), 60% in [7, 8); column c: x 10%, y 10%, z 80%
A = [0, 0, 40, 0, 0, 0, 0, 60, 0, 0]
C = [10, 10, 80]


def with_marginals(family: str = "vae"):
    run = make_run(family)
    run.marginals = marginals_record([torch.tensor(A, dtype=torch.float64), torch.tensor(C, dtype=torch.float64)],
                                     0.0, 100)
    return run


def shares(batch, column: int) -> np.ndarray:
    c = marginal_layout(TABLE)[column]
    return np.bincount(c.codes(batch.encoded.reshape(len(batch.encoded), -1)).numpy(), minlength=c.bins) / len(
        batch.encoded)


def test_raking_meets_feasible_targets():
    """Two columns of a pool with every joint bin present: both marginals met within 1e-3."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 3, (3000,), generator=gen), torch.randint(0, 2, (3000,), generator=gen)
    ta, tb = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), torch.tensor([0.8, 0.2], dtype=torch.float64)
    w = rake([a, b], [ta, tb], rounds=50)
    for codes, t in ((a, ta), (b, tb)):
        got = torch.zeros(len(t), dtype=torch.float64).index_add_(0, codes, w)
        assert torch.allclose(got, t, atol=1e-3)


def test_pick_draws_distinct_rows_in_proportion_to_their_weights():
    """Seed 0, 2,000 repeats of 1 row of 4 with weights 1, 1, 2, 0: the counts within 5 binomial
    standard deviations (false-failure rate < 1e-5); weight 0 never."""
    w = torch.tensor([1.0, 1.0, 2.0, 0.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    counts = np.bincount([int(pick(w, 1, gen)) for _ in range(2000)], minlength=4)
    assert counts[3] == 0 and abs(counts[2] - 1000) < 5 * np.sqrt(2000 * 0.25)
    rows = pick(torch.ones(50, dtype=torch.float64), 20, gen)
    assert len(set(rows.tolist())) == 20 and rows.tolist() == sorted(rows.tolist())


def test_raking_and_pick_never_fall_back_to_a_fixed_choice():
    """A target that keeps no bin the pool occupies leaves the weights as they were; weights
    that are all 0 or NaN are picked as if equal (seeded draws still differ)."""
    codes = torch.zeros(6, dtype=torch.long)
    w = rake([codes], [torch.tensor([0.0, 1.0], dtype=torch.float64)])
    assert torch.isfinite(w).all() and torch.allclose(w, torch.full((6,), 1 / 6, dtype=torch.float64))
    bad = torch.full((20,), float("nan"), dtype=torch.float64)
    picks = {tuple(pick(bad, 2, torch.Generator().manual_seed(s)).tolist()) for s in range(10)}
    assert len(picks) > 1


def test_a_single_sample_is_a_draw_from_the_target_not_its_median():
    """Seeds 0..199, sample(1) each: the bins of a uniform-over-10-bins target all appear (the
    chance that one of 10 equally likely bins never appears in 200 draws is < 1e-8)."""
    run = make_run("vae")
    run.marginals = marginals_record([torch.full((10,), 10.0, dtype=torch.float64),
                                      torch.tensor(C, dtype=torch.float64)], 0.0, 100)
    bins = {int(shares(Sampler(run).sample(1, seed=s), 0).argmax()) for s in range(200)}
    assert bins == set(range(10))


def test_progress_reaches_its_total_with_the_fit(family):
    run = with_marginals(family)
    seen = []
    Sampler(run, batch_size=16, progress=lambda done, total: seen.append((done, total))).sample(40, seed=0)
    assert seen[-1][0] == seen[-1][1]


def test_simplex_projection_of_noisy_counts():
    np.testing.assert_allclose(simplex(torch.tensor([10.0, -5.0, 1.0]), 10), [0.95, 0.0, 0.05])
    np.testing.assert_allclose(simplex(torch.tensor([3.0, 1.0]), 4), [0.75, 0.25])  # exact counts stay
    np.testing.assert_allclose(simplex(torch.tensor([-1.0, -2.0]), 4), [0.5, 0.5])  # nothing left: uniform


def test_quantile_mapping_meets_the_target_and_keeps_the_order():
    c = marginal_layout(TABLE)[0]
    v = torch.rand(1000, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = quantile_map(v, torch.tensor(A, dtype=torch.float64) / 100, c)
    assert np.abs(np.bincount(c.codes(out[:, None]).numpy(), minlength=10) / 1000 - np.array(A) / 100).max() <= 1e-3
    assert torch.equal(torch.argsort(out, stable=True), torch.argsort(v, stable=True))


def test_values_the_model_puts_on_a_few_points_stay_on_them():
    """A column the model generates at 2.5 and 7.5 only (encoded -0.5, 0.5), in the proportions
    70/30, moved onto 40/60: every value still one of the two points."""
    c = marginal_layout(TABLE)[0]
    v = torch.tensor([-0.5] * 700 + [0.5] * 300)
    out = quantile_map(v, torch.tensor(A, dtype=torch.float64) / 100, c)
    assert set(out.tolist()) == {-0.5, 0.5} and int((out == 0.5).sum()) == 600


def test_one_model_value_in_a_bin_does_not_take_every_row_mapped_there():
    """The model put one value in the first bin and the target puts 50 of 500 rows there: they
    spread over the bin (with fewer than WITHIN_MIN model values), not onto that one value (a
    fuzzer found 61 of 500 samples on one point)."""
    c = marginal_layout(TABLE)[0]
    gen = torch.Generator().manual_seed(0)
    v = torch.empty(500).uniform_(-0.6, 0.6, generator=gen)
    v[0] = -0.85
    out = quantile_map(v, torch.full((10,), 0.1, dtype=torch.float64), c, gen)
    first = out[c.codes(out[:, None]) == 0]
    assert WITHIN_MIN > 1 and len(first) == 50 and len(torch.unique(first)) == 50


def test_a_small_batch_keeps_the_points_the_model_puts_values_on():
    """Three samples on two points (2.5 twice, 7.5 once), mapped onto a target that puts half
    on each of their bins: each bin has as many model values as rows, so the rows take those
    values rather than spreading over the bins (a review's find: fewer than WITHIN_MIN model
    values, as every bin of a small batch has, spread genuine point masses)."""
    c = marginal_layout(TABLE)[0]
    target = torch.zeros(10, dtype=torch.float64)
    target[2] = target[7] = 0.5
    out = quantile_map(torch.tensor([-0.5, 0.5, -0.5]), target, c)
    assert set(out.tolist()) <= {-0.5, 0.5} and int((out == -0.5).sum()) == 2


def test_values_on_bin_edges_come_out_in_their_bins():
    """A table whose values sit on the public bins' edges (30% at 2.5 in 0-25 cut in ten):
    without DP the run stores its exact marginals, and the fitted samples meet them as the
    1-way distances (float64 values, the schema's bins) see them. Counted on the float32
    encoding as it lay, 2.5 fell one bin low and the distance was about 0.3."""
    from trustgen.data.schema import CategoricalColumn as Cat, NumericColumn as Num, TabularSchema as Schema
    from trustgen.evaluation.marginal_distances import marginal_distances
    from trustgen.pipeline import train
    from trustgen.training import TrainConfig

    schema = Schema([Num("years", 0, 25), Num("x", 0, 1), Cat("y", ("a", "b"))], label="y")
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"years": rng.choice([0.5, 2.5, 6.0, 9.0, 13.0], n, p=[0.2, 0.3, 0.2, 0.2, 0.1]),
                       "x": rng.uniform(0, 1, n), "y": rng.choice(["a", "b"], n)})
    run = train(df, "vae", TrainConfig(steps=20, batch_size=64, seed=0, progress=False), schema=schema)
    synth = Sampler(run).sample(1000, seed=0).data
    assert marginal_distances(df, synth, schema)["one_way"]["years"] < 0.02


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_the_sampler_moves_samples_onto_the_run_marginals(family):
    run = with_marginals(family)
    fitted = Sampler(run).sample(800, seed=0)
    plain = Sampler(run, marginal_fit=False).sample(800, seed=0)
    a = np.array(A) / 100
    assert np.abs(shares(fitted, 0) - a).max() <= 0.01  # numbers: mapped exactly
    c = np.array(C) / 100
    assert 0.5 * np.abs(shares(fitted, 1) - c).sum() < 0.5 * np.abs(shares(plain, 1) - c).sum()
    data = fitted.data
    assert data["a"].between(0, 10).all() and set(data["c"]) <= {"x", "y", "z"}


def test_stream_equals_sample_with_the_fit():
    run = with_marginals()
    whole = Sampler(run, batch_size=300).sample(700, seed=3)
    parts = list(Sampler(run, batch_size=300).stream(700, seed=3))
    assert torch.equal(torch.cat([p.encoded for p in parts]), whole.encoded)
    assert np.array_equal(np.concatenate([p.labels for p in parts]), whole.labels)


def test_explicit_labels_and_hooks_change_what_the_fit_does():
    run = with_marginals()
    assert torch.equal(Sampler(run).sample(50, labels=1, seed=0).encoded,
                       Sampler(run, marginal_fit=False).sample(50, labels=1, seed=0).encoded)

    def mark(x, labels):
        from trustgen.sampling.hooks import OutputResult

        return OutputResult(x, torch.ones(len(x), dtype=torch.bool))

    hooked = Sampler(run, output_hooks=[mark]).sample(400, seed=0)
    # samples chosen, not moved: no value lands exactly on the mapped quantiles of the target
    assert np.abs(shares(hooked, 0) - np.array(A) / 100).max() > 0.01
    assert hooked.constraints_satisfied.all()


def test_a_fit_that_cannot_apply_is_refused():
    with pytest.raises(ConfigError, match="needs a run with marginals"):
        Sampler(make_run("vae"), marginal_fit=True)
    with pytest.raises(ConfigError, match="marginal_fit must be"):
        Sampler(with_marginals(), marginal_fit="yes")


# The joint of a and c: c = x puts a in [2, 3), y in [7, 8), z 3/8 in [2, 3) and 5/8 in [7, 8)
# (1-way: a 40/60, c 10/10/80, as A and C); the label is independent, 50/50.
AC = torch.zeros(10, 3, dtype=torch.float64)
AC[2, 0], AC[7, 1], AC[2, 2], AC[7, 2] = 10, 10, 30, 50  # a: 40 in [2, 3), 60 in [7, 8)


def with_pairs(run=None):
    """A run with exact 1-way marginals and pair tables of 100 records (noise 0)."""
    from trustgen.privacy.marginal_histogram import pair_layout

    run = run or make_run("vae")
    tables = {"a & c": AC.flatten(), "a & label": (AC.sum(1)[:, None] * torch.tensor([0.5, 0.5])).flatten(),
              "c & label": (AC.sum(0)[:, None] * torch.tensor([0.5, 0.5])).flatten()}
    assert [t.name for t in pair_layout(TABLE)] == list(tables)
    run.marginals = marginals_record([torch.tensor(A, dtype=torch.float64), torch.tensor(C, dtype=torch.float64)],
                                     0.0, 100, list(tables.values()), 0.0)
    return run


def joint(batch) -> np.ndarray:
    a, c = (marginal_layout(TABLE)[i].codes(batch.encoded.reshape(len(batch.encoded), -1)).numpy() for i in (0, 1))
    return np.bincount(a * 3 + c, minlength=30) / len(a)


def test_the_sampler_meets_the_released_pair_tables():
    """An untrained model draws a and c independently; with the pair table released (exact),
    the kept samples' joint of a and c is within 0.05 of it, and far nearer than with the 1-way
    marginals alone; the 1-way marginals still hold (a, mapped within c's bins, to within c's
    own deviation: 0.02)."""
    target = (AC / AC.sum()).flatten().numpy()
    paired = Sampler(with_pairs()).sample(1000, seed=0)
    one_way = Sampler(with_marginals()).sample(1000, seed=0)
    tv = 0.5 * np.abs(joint(paired) - target).sum()
    assert tv < 0.05 and tv < 0.5 * (0.5 * np.abs(joint(one_way) - target).sum())
    assert np.abs(shares(paired, 0) - np.array(A) / 100).max() <= 0.02
    assert 0.5 * np.abs(shares(paired, 1) - np.array(C) / 100).sum() < 0.05


def test_a_noisy_pair_table_is_shrunk_towards_the_model_where_the_noise_explains_the_difference():
    """Seeds 0..4. Noise 0: the released table as it is. A pool that already matches a flat table
    of 1,000 records in 30 cells, released with noise of std 10: each raw projected table is
    0.09 or more away, the shrunk target within a third of that. A table far off the pool with
    small noise: the release wins."""
    from trustgen.sampling.marginal_fit import shrunk_pair_target

    counts = torch.tensor([60.0, 0.0, 40.0, 0.0], dtype=torch.float64)
    pool = torch.full((4,), 0.25, dtype=torch.float64)
    assert torch.allclose(shrunk_pair_target(counts, 0.0, 100, pool), counts / 100)
    true = torch.full((30,), 1000 / 30, dtype=torch.float64)
    for seed in range(5):
        noisy = true + 10 * torch.randn(30, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        raw = 0.5 * float((simplex(noisy, 1000) - true / 1000).abs().sum())
        assert raw > 0.09
        assert 0.5 * float((shrunk_pair_target(noisy, 10.0, 1000, true / 1000) - true / 1000).abs().sum()) < raw / 3
    far = counts * 100 + 5 * torch.randn(4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert 0.5 * float((shrunk_pair_target(far, 5.0, 10_000, pool) - counts / 100).abs().sum()) < 0.01


def test_fit_margins_meets_both_margins_and_keeps_empty_cells_empty():
    from trustgen.sampling.marginal_fit import fit_margins

    t = torch.tensor([[0.2, 0.0, 0.1], [0.3, 0.3, 0.1]], dtype=torch.float64)
    rows, cols = torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([0.4, 0.3, 0.3], dtype=torch.float64)
    out = fit_margins(t, rows, cols, rounds=200)
    assert torch.allclose(out.sum(1), rows, atol=1e-6) and torch.allclose(out.sum(0), cols, atol=1e-6)
    assert out[0, 1] == 0.0
    assert torch.allclose(fit_margins(t, None, None), t / t.sum())
    assert torch.allclose(fit_margins(t, rows, None).sum(1), rows)


def test_the_tree_maps_each_number_within_the_bins_of_the_pair_furthest_from_its_target():
    """Columns a, b numeric, c categorical: b-c is off by 0.3, a-b by 0.2, a-c by 0.1: b is mapped
    within c's bins first (c is placed), then a within b's; nothing below CONDITION_MISFIT."""
    from trustgen.privacy.marginal_histogram import MarginalColumn, PairTable
    from trustgen.sampling.marginal_fit import CONDITION_MISFIT, condition_tree

    a, b = MarginalColumn("a", 0, 1, 10, True, False), MarginalColumn("b", 1, 1, 10, True, False)
    c = MarginalColumn("c", 2, 3, 3, False, False)
    ab, ac, bc = PairTable(a, b), PairTable(a, c), PairTable(b, c)
    pairs = [(ab, "ab"), (ac, "ac"), (bc, "bc")]
    tree = condition_tree([a, b, c], pairs, [0.2, 0.1, 0.3])
    assert list(tree) == ["b", "a"] and tree["b"] == (bc, "bc") and tree["a"] == (ab, "ab")
    assert condition_tree([a, b, c], pairs, [CONDITION_MISFIT / 2] * 3) == {}


def test_a_conditional_map_meets_each_bins_conditional_and_keeps_the_order_within_it():
    from trustgen.sampling.marginal_fit import conditional_map

    from trustgen.privacy.marginal_histogram import pair_layout

    pair = pair_layout(TABLE)[0]  # a & c
    gen = torch.Generator().manual_seed(0)
    kept = torch.zeros(900, 4)
    kept[:, 0] = torch.rand(900, generator=gen) * 2 - 1
    kept[torch.arange(900), 1 + torch.arange(900) % 3] = 1.0  # c: x, y, z in turn
    target = (AC / AC.sum()).flatten()
    out = conditional_map(kept, None, pair, target, marginal_layout(TABLE)[0], target.view(10, 3).sum(1), gen)
    a = marginal_layout(TABLE)[0]
    for k in range(3):
        rows = torch.arange(900)[torch.arange(900) % 3 == k]
        got = np.bincount(a.codes(out[rows][:, None]).numpy(), minlength=10) / len(rows)
        want = (AC[:, k] / AC[:, k].sum()).numpy()
        assert np.abs(got - want).max() <= 1 / len(rows) + 1e-9
        assert torch.equal(torch.argsort(out[rows], stable=True), torch.argsort(kept[rows, 0], stable=True))


def test_pick_includes_each_row_in_proportion_to_its_weight_capped_at_one():
    """Seed 0, 4,000 picks of 3 of 6 rows weighted 6, 1, 1, 2, 2, 0: row 0 would take more than a
    whole place, so it is always kept; the others share the 2 places left as 1 : 1 : 2 : 2, never
    row 5; frequencies within 5 binomial standard deviations (false-failure rate < 1e-5)."""
    w = torch.tensor([6.0, 1.0, 1.0, 2.0, 2.0, 0.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    counts = np.zeros(6)
    for _ in range(4000):
        rows = pick(w, 3, gen)
        assert len(set(rows.tolist())) == 3
        counts[rows.numpy()] += 1
    want = np.array([1.0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 0.0])
    sd = np.sqrt(4000 * want * (1 - want)) + 1e-9
    assert counts[0] == 4000 and counts[5] == 0
    assert np.all(np.abs(counts - 4000 * want) <= 5 * sd)


def test_pick_by_class_keeps_the_drawn_label_rate_whatever_the_weights():
    """Seed 0. Weights that favour class 1 ten to one: the kept rows still split 30 : 70 as the
    shares say; a class with too few rows gives its places to the others; over 4,000 picks of one
    row, class 1 comes up 70% of the time (within 5 binomial sd, false-failure rate < 1e-5)."""
    from trustgen.sampling.marginal_fit import pick_by_class

    gen = torch.Generator().manual_seed(0)
    classes = torch.arange(400) % 2
    weights = torch.where(classes == 1, 10.0, 1.0).double()
    shares = torch.tensor([0.3, 0.7], dtype=torch.float64)
    rows = pick_by_class(weights, 100, classes, shares, gen)
    assert len(set(rows.tolist())) == 100 and int(classes[rows].sum()) == 70
    few = torch.tensor([0] * 5 + [1] * 395)
    assert int((few[pick_by_class(torch.ones(400, dtype=torch.float64), 100, few, torch.tensor([0.5, 0.5]),
                                  gen)] == 0).sum()) == 5
    ones = sum(int(classes[pick_by_class(weights, 1, classes, shares, gen)]) for _ in range(4000))
    assert abs(ones - 2800) <= 5 * np.sqrt(4000 * 0.21)


def test_values_at_the_top_of_the_range_stay_there():
    """A top-coded column (300 values at the range's end) mapped onto a target that keeps them
    in the last bin: they stay on the bound (the edge rule applies below inner edges only)."""
    c = marginal_layout(TABLE)[0]
    v = torch.cat([torch.ones(300), torch.linspace(-0.9, 0.7, 700)])
    target = torch.tensor([0.1] * 7 + [0.0, 0.0, 0.3], dtype=torch.float64)
    out = quantile_map(v, target / target.sum(), c)
    assert int((out == 1.0).sum()) == 300
