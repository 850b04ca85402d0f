"""The marginal fit: raking, weighted choice without repeats, the simplex projection of noisy
counts, rank-order quantile mapping, and the sampler's use of them (tiny untrained runs with
marginals set by hand, so the targets are known)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.sampling.tiny_runs import TABLE, make_run
from trustgen.errors import ConfigError
from trustgen.privacy.marginal_histogram import marginal_layout, marginals_record
from trustgen.sampling import Sampler
from trustgen.sampling.marginal_fit import pick, quantile_map, rake, simplex

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
