"""Noisy marginals weighed against the model's own: the empirical-Bayes targets and the
location-scale fit of a numeric column, against oracles whose truth is known."""

from __future__ import annotations

import torch

from trustgen.privacy.marginal_histogram import MarginalColumn
from trustgen.sampling.marginal_shrinkage import (
    KAPPAS,
    fit_prior,
    location_scale_shares,
    pool_shares,
    posterior_counts,
    shrunk_targets,
    simplex,
)

NUMBER = MarginalColumn("x", 0, 1, 10, True, False)
TRUTH = torch.tensor([0.02, 0.08, 0.2, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.0], dtype=torch.float64)


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p / p.sum() - q / q.sum()).abs().sum())


def shifted(p: torch.Tensor, by: int) -> torch.Tensor:
    """A model that has the shape but not the place: ``p`` moved ``by`` bins, mixed with a little
    of the uniform so that no bin is empty."""
    return 0.9 * torch.roll(p, by) + 0.1 / len(p)


def test_without_noise_the_target_is_the_counts():
    counts = [400 * TRUTH, torch.tensor([120.0, 280.0], dtype=torch.float64)]
    pool = [shifted(TRUTH, 2), torch.tensor([0.5, 0.5], dtype=torch.float64)]
    for got, want in zip(shrunk_targets(counts, pool, 400, 0.0), counts):
        assert torch.allclose(got, want / want.sum())


def test_noise_far_above_the_counts_leaves_the_models_marginal():
    """Counts of 400 records with noise 1e5 on each: the fitted prior is the strongest tried and
    every target is the pool's shares to within 1e-3."""
    gen = torch.Generator().manual_seed(0)
    pool = [shifted(TRUTH, 1), torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)]
    truth = [TRUTH, torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)]
    counts = [400 * p + 1e5 * torch.randn(len(p), generator=gen, dtype=torch.float64) for p in truth]
    kappa, _ = fit_prior(counts, pool, 400, 1e5)
    assert kappa == float(KAPPAS[-1])
    for got, q in zip(shrunk_targets(counts, pool, 400, 1e5), pool):
        assert (got - q).abs().max() < 1e-3


def test_the_prior_is_strong_where_the_model_is_right_and_weak_where_it_is_off():
    gen = torch.Generator().manual_seed(1)
    truth = [torch.roll(TRUTH, k) for k in range(8)]  # eight columns, noise 5 on 400 records
    counts = [400 * p + 5 * torch.randn(10, generator=gen, dtype=torch.float64) for p in truth]
    right, _ = fit_prior(counts, [0.95 * p + 0.005 for p in truth], 400, 5.0)
    off, _ = fit_prior(counts, [shifted(p, 3) for p in truth], 400, 5.0)
    assert right > 20 * off


def test_the_targets_are_closer_to_the_truth_than_the_counts_or_the_model_alone():
    """30 columns, 398 records, noise 40 per count (breast_cancer at epsilon 1, half of it on the
    marginals), a model one bin off on every column. Seed 0, 20 draws of the noise: the targets'
    mean distance to the truth is below 0.8 of the projected counts' and of the model's (measured:
    0.203 against 0.278 and 0.29; over seeds 0-5, 0.201-0.207 against 0.271-0.278: the margin is
    about four times that spread, so a false failure is not expected)."""
    gen = torch.Generator().manual_seed(0)
    truth = [torch.roll(TRUTH, k % 7) for k in range(30)]
    pool = [shifted(p, 1) for p in truth]
    ours, counts_only, model = [], [], []
    for _ in range(20):
        counts = [398 * p + 40 * torch.randn(10, generator=gen, dtype=torch.float64) for p in truth]
        targets = shrunk_targets(counts, pool, 398, 40.0)
        ours += [tv(t, p) for t, p in zip(targets, truth)]
        counts_only += [tv(simplex(c, 398), p) for c, p in zip(counts, truth)]
        model += [tv(q, p) for q, p in zip(pool, truth)]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(ours) < 0.8 * mean(counts_only) and mean(ours) < 0.8 * mean(model)


def test_the_posterior_is_linear_in_the_counts_and_exact_at_the_prior_mean():
    q = shifted(TRUTH, 0)
    at_mean = posterior_counts(398 * q, q, 398, 40.0, kappa=10.0, mix=0.0)
    assert torch.allclose(at_mean, 398 * q)
    a, b = 398 * TRUTH, 398 * torch.roll(TRUTH, 2)
    mid = posterior_counts((a + b) / 2, q, 398, 40.0, 10.0, 0.05)
    assert torch.allclose(mid, (posterior_counts(a, q, 398, 40.0, 10.0, 0.05)
                                + posterior_counts(b, q, 398, 40.0, 10.0, 0.05)) / 2)


def test_a_shifted_and_widened_column_is_put_back_by_two_numbers():
    """The model's values: N(-0.3, 0.1) in the encoded range; the records': N(0.1, 0.2). The
    location-scale fit to the records' exact counts lands within 0.05 of them (total variation),
    where the model's own shares are over 0.7 off; with noise 20 on 2,000 records, within 0.1."""
    gen = torch.Generator().manual_seed(2)
    model = -0.3 + 0.1 * torch.randn(4000, generator=gen, dtype=torch.float64)
    records = 0.1 + 0.2 * torch.randn(2000, generator=gen, dtype=torch.float64)
    x = records[:, None]
    counts = torch.bincount(NUMBER.codes(x), minlength=10).double()
    own = torch.bincount(NUMBER.codes(model[:, None]), minlength=10).double()
    assert tv(own, counts) > 0.7
    assert tv(location_scale_shares(model, NUMBER, counts, 2000), counts) < 0.05
    noisy = counts + 20 * torch.randn(10, generator=gen, dtype=torch.float64)
    assert tv(location_scale_shares(model, NUMBER, noisy, 2000), counts) < 0.1


def test_pool_shares_fit_numbers_under_noise_only_and_count_categories():
    gen = torch.Generator().manual_seed(3)
    cat = MarginalColumn("c", 1, 3, 3, False, False)
    flat = torch.zeros(300, 4, dtype=torch.float64)
    flat[:, 0] = -0.5 + 0.05 * torch.randn(300, generator=gen, dtype=torch.float64)
    flat[torch.arange(300), 1 + torch.arange(300) % 3] = 1.0
    counts = [torch.bincount(NUMBER.codes(torch.full((100, 1), 0.5, dtype=torch.float64)), minlength=10).double(),
              torch.tensor([10.0, 20.0, 70.0], dtype=torch.float64)]
    plain = pool_shares(flat, [NUMBER, cat], counts, 100, 0.0)
    fitted = pool_shares(flat, [NUMBER, cat], counts, 100, 3.0)
    assert torch.allclose(plain[1], torch.full((3,), 1 / 3, dtype=torch.float64)) and torch.equal(plain[1], fitted[1])
    assert int(plain[0].argmax()) == 2 and int(fitted[0].argmax()) == 7  # moved onto the counts' bin


def test_the_moved_shares_are_those_of_binning_the_moved_values():
    """The binary search over moved-back edges against the plain way: move every value, clip,
    bin. Equal for continuous and whole-valued columns, shrunk, widened, shifted past an end."""
    from trustgen.sampling.marginal_shrinkage import _shares_after

    gen = torch.Generator().manual_seed(4)
    ordered = torch.sort((0.5 * torch.randn(3001, generator=gen, dtype=torch.float64)).clamp(-1, 1)).values
    mid = ordered.median()
    for column in (NUMBER, MarginalColumn("w", 0, 1, 13, True, True)):
        for shift, scale in ((0.3, 1.7), (-0.5, 0.4), (0.0, 1.0), (0.9, 2.5)):
            moved = ((ordered - mid) * scale + mid + shift).clamp(-1.0, 1.0)
            plain = torch.bincount(column.codes(moved[:, None]), minlength=column.bins).double() / len(ordered)
            fast = _shares_after(ordered, column, torch.tensor([shift], dtype=torch.float64),
                                 torch.tensor([scale], dtype=torch.float64))[0]
            assert torch.equal(plain, fast)


def test_values_that_are_not_finite_do_not_break_the_estimate():
    """A model with a NaN weight makes NaN samples: the shares still come out (found by the fuzzer)."""
    flat = torch.tensor([[float("nan")], [0.2], [float("inf")], [-0.4]], dtype=torch.float64)
    counts = [torch.tensor([0.0] * 5 + [3.0] + [0.0] * 4, dtype=torch.float64)]
    for noise in (0.0, 2.0):
        (shares,) = pool_shares(flat, [NUMBER], counts, 3, noise)
        assert torch.isfinite(shares).all() and abs(float(shares.sum()) - 1.0) < 1e-9


def test_the_posterior_and_the_prior_fit_are_those_of_the_gaussian_model_written_out():
    """Against a brute-force Gaussian: y - R q ~ N(0, A_mix * scale + s^2 I). The posterior mean
    by linalg.solve, the grid's best (kappa, mix) by MultivariateNormal.log_prob."""
    from trustgen.sampling.marginal_shrinkage import KAPPAS, MIXES, prior_scale

    gen = torch.Generator().manual_seed(5)
    pool = [shifted(torch.roll(TRUTH, k), 1) for k in range(3)]
    counts = [300 * torch.roll(TRUTH, k) + 15 * torch.randn(10, generator=gen, dtype=torch.float64) for k in range(3)]

    def cov(q, kappa, mix, rows):
        qq = (1 - mix) * q + mix / len(q)
        return 300 ** 2 * (torch.diag(qq) - torch.outer(qq, qq)) * prior_scale(kappa, rows)

    for kappa, mix, rows in ((3.0, 0.05, None), (40.0, 0.0, 500)):
        c = cov(pool[0], kappa, mix, rows)
        want = 300 * pool[0] + c @ torch.linalg.solve(c + 225 * torch.eye(10, dtype=torch.float64),
                                                     counts[0] - 300 * pool[0])
        assert torch.allclose(posterior_counts(counts[0], pool[0], 300, 15.0, kappa, mix, rows), want, atol=1e-8)
    best = max(((float(k), m) for m in MIXES for k in KAPPAS),
               key=lambda km: sum(float(torch.distributions.MultivariateNormal(
                   300 * q, cov(q, km[0], km[1], 800) + 225 * torch.eye(10, dtype=torch.float64)).log_prob(y))
                   for y, q in zip(counts, pool)))
    assert fit_prior(counts, pool, 300, 15.0, 800) == best


def test_a_small_pool_is_a_weak_prior():
    """The last batch of a sample can be small (n = 1001 at batch 1000: a pool of 4 rows), and its
    shares are mostly sampling noise. Counted as 4 rows, a pool that happens to match the truth
    still leaves the counts their say (taken as exact, it would override them); and over many
    such pools the targets are no further from the truth than the counts alone. Seed 0, 30 draws
    of 30 columns, 398 records, noise 39 (measured: 0.251 against 0.275)."""
    gen = torch.Generator().manual_seed(0)
    counts = [398 * TRUTH + 39 * torch.randn(10, generator=gen, dtype=torch.float64) for _ in range(30)]
    lucky = [TRUTH.clone() for _ in range(30)]
    as_exact = shrunk_targets(counts, lucky, 398, 39.0)
    as_four = shrunk_targets(counts, lucky, 398, 39.0, pool_rows=4)
    assert sum(tv(t, TRUTH) for t in as_exact) / 30 < 0.02  # the pool's word, whatever the counts (0.009)
    assert min(tv(t, TRUTH) for t in as_four) > 0.05  # the counts move every column (0.08 at least)
    truth = [torch.roll(TRUTH, k % 7) for k in range(30)]
    counted, alone = [], []
    for _ in range(30):
        pool = [torch.bincount(torch.multinomial(p, 4, replacement=True, generator=gen), minlength=10).double() / 4
                for p in truth]
        counts = [398 * p + 39 * torch.randn(10, generator=gen, dtype=torch.float64) for p in truth]
        counted += [tv(t, p) for t, p in zip(shrunk_targets(counts, pool, 398, 39.0, pool_rows=4), truth)]
        alone += [tv(simplex(c, 398), p) for c, p in zip(counts, truth)]
    assert sum(counted) < 0.98 * sum(alone)


def test_the_shift_and_scale_fit_bins_values_on_edges_as_the_release_counts_them():
    """Values on the bins' edges (in float32, as sampled) fall in the same bins for the
    shift-and-scale search (a binary search over moved-back edges) as for the release."""
    from trustgen.sampling.marginal_shrinkage import _shares_after

    col = MarginalColumn("years", 0, 1, 10, True, False)
    x = (torch.arange(0, 51, dtype=torch.float64) / 25.0 - 1.0).float()  # 0, 0.5, ..., 25 in 0-25
    got = _shares_after(torch.sort(x.double()).values, col, torch.zeros(1, dtype=torch.float64),
                        torch.ones(1, dtype=torch.float64))[0]
    want = torch.bincount(col.codes(x[:, None]), minlength=10).double() / len(x)
    assert torch.equal(got, want)
