"""The post-hoc dither watermark: exact null (over keys, and for one key over many samples),
power, quality, robustness as documented, and clear errors.

Statistical tests use fixed seeds (keys ``WatermarkKey.from_seed``, numpy generators) and state
their false-failure rate: each KS check fails with probability 1e-3 under a correct null, each
false-positive count is checked against its 99.9% binomial interval (failure rate 1e-3). With
the seeds fixed the outcome is deterministic; the rates say how lucky the chosen seeds must be.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from trustgen.data.encoders import ImageData
from trustgen.data.loaders import load_data
from trustgen.data.schema import ImageSchema
from trustgen.errors import ConfigError, DataError, TrustgenError
from trustgen.watermark.attacks_image import blur, gaussian_noise, quantize
from trustgen.watermark.dither import (
    STEP, STEP_8BIT, detect_dither, detect_images, dither_scores, embed_dither, embed_images,
)
from trustgen.watermark.keys import WatermarkKey

DELTA = STEP * 16  # the lattice step on digits' range [0, 16]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    data, _ = load_data("digits")
    return data.x  # 1797 x 1 x 8 x 8, whole numbers 0..16


@pytest.fixture(scope="module")
def inner_digits(digits) -> np.ndarray:
    """The digits moved off the range's ends, as a model's sigmoid or tanh output is: values
    exactly at 0 or 16 are neither marked nor counted, and half of every real digit is 0."""
    return 0.02 + digits * (15.96 / 16)


def randomised_pit(counts: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``P(X > c) + U * P(X = c)`` for X ~ Binomial(n, 1/2): exactly Uniform(0, 1) when the
    counts are Binomial(n, 1/2), so a KS test checks the count distribution itself (the
    p-values of 64 trials are too discrete for KS)."""
    u = np.random.default_rng(seed).uniform(size=len(counts))
    return stats.binom.sf(counts, n, 0.5) + u * stats.binom.pmf(counts, n, 0.5)


def exact_size(tries: np.ndarray, n, alpha: float) -> np.ndarray:
    """Per sample, the exact null probability that its reported p-value is <= alpha (the
    binomial's attainable level for its ``n`` counted trials, raised to its number of tries by
    Sidak). ``n``: one count for all samples, or one per sample."""
    tries = np.asarray(tries)
    n = np.broadcast_to(np.asarray(n), tries.shape)
    out = np.empty(len(tries))
    for k, m in set(zip(tries.tolist(), n.tolist())):
        sf = stats.binom.sf(np.arange(m + 2) - 1, m, 0.5)  # P(X >= c), c = 0..m+1
        ok = sf[-np.expm1(k * np.log1p(-np.minimum(sf, 1 - 1e-16))) <= alpha]
        out[(tries == k) & (n == m)] = 1 - (1 - ok.max()) ** k if len(ok) else 0.0
    return out


def assert_fpr_matches(p_values: np.ndarray, size: np.ndarray, alpha: float) -> None:
    """The number of p-values <= alpha lies in the 99.9% interval of its exact null law
    (a sum of Bernoulli(size_i), approximated by a binomial with the mean size)."""
    hits = int((p_values <= alpha).sum())
    lo, hi = stats.binom.interval(0.999, len(p_values), size.mean())
    assert lo <= hits <= hi, (hits, lo, hi, size.mean() * len(p_values))
    assert size.mean() <= alpha  # and the test is valid: its exact size is at most nominal


# ------------------------------------------------------------------------ the null


def test_null_over_300_keys_on_real_digits(digits):
    """Key i tests digit i: over keys, the primary count is Binomial(n, 1/2) exactly, n the digit's
    values not at the range's ends (those are neither marked nor counted)."""
    scores = [dither_scores(digits[i:i + 1], WatermarkKey.from_seed(i), low=0, high=16) for i in range(300)]
    counts = np.array([s.primary_counts[0] for s in scores])
    trials = np.array([s.trials[0] for s in scores])  # the digit's values not at 0 or 16
    assert stats.kstest(randomised_pit(counts, trials, seed=1), "uniform").pvalue > 1e-3
    p = np.array([s.p_values[0] for s in scores])
    assert_fpr_matches(p, exact_size(np.array([s.tries[0] for s in scores]), trials, 0.05), 0.05)


def test_null_over_300_keys_on_random_arrays():
    """Unwatermarked continuous arrays of another shape and range (3 x 5 x 7 in [-1, 2])."""
    x = np.random.default_rng(7).uniform(-1, 2, size=(300, 3, 5, 7))
    scores = [dither_scores(x[i:i + 1], WatermarkKey.from_seed(1000 + i), low=-1, high=2) for i in range(300)]
    counts = np.array([s.primary_counts[0] for s in scores])
    assert stats.kstest(randomised_pit(counts, 105, seed=2), "uniform").pvalue > 1e-3
    p = np.array([s.p_values[0] for s in scores])
    assert_fpr_matches(p, exact_size(np.array([s.tries[0] for s in scores]), 105, 0.05), 0.05)


def test_one_key_over_all_digits_is_calibrated(digits):
    """The per-key null on whole-number content: one key, 1,797 integer digits. A dither keyed
    by position alone fails here (every digit's black border gets the same residuals); keyed
    by each sample's summary, the counts are independent Binomial(n, 1/2), n its values not at
    the range's ends."""
    sc = dither_scores(digits, WatermarkKey.from_seed(12345), low=0, high=16)
    assert len(np.unique(sc.summaries)) >= 1790  # nearly every digit has its own dither
    assert stats.kstest(randomised_pit(sc.primary_counts, sc.trials, seed=3), "uniform").pvalue > 1e-3
    assert_fpr_matches(sc.p_values, exact_size(sc.tries, sc.trials, 0.05), 0.05)


def test_one_key_over_random_integer_images():
    """Integer-valued noise images (values 0..16): the grid case, one key."""
    x = np.random.default_rng(11).integers(0, 17, size=(2000, 1, 8, 8))
    sc = dither_scores(x, WatermarkKey.from_seed(99), low=0, high=16)
    assert stats.kstest(randomised_pit(sc.primary_counts, sc.trials, seed=4), "uniform").pvalue > 1e-3
    assert_fpr_matches(sc.p_values, exact_size(sc.tries, sc.trials, 0.05), 0.05)


def test_wrong_key_is_not_detected(digits):
    marked = embed_dither(digits, WatermarkKey.from_seed(0), low=0, high=16)
    d = detect_dither(marked, WatermarkKey.from_seed(1), low=0, high=16)
    assert d.detected.sum() <= 1  # expected 1797 * 1e-6 false positives
    assert not d.file_detected
    sc = dither_scores(marked, WatermarkKey.from_seed(1), low=0, high=16)
    assert stats.kstest(randomised_pit(sc.primary_counts, sc.trials, seed=5), "uniform").pvalue > 1e-3


def test_file_p_value_counts_copies_once(digits):
    """1,000 copies of one unwatermarked digit share a dither: pooling them as independent
    would make the file's p-value ~0 or ~1 by the luck of one count. They count once."""
    key = WatermarkKey.from_seed(5)
    one = detect_dither(digits[:1], key, low=0, high=16, fpr=1e-3)
    many = detect_dither(np.repeat(digits[:1], 1000, axis=0), key, low=0, high=16, fpr=1e-3)
    assert many.p_value == pytest.approx(one.p_value)


# ------------------------------------------------------------------------ power and quality


def test_clean_watermarked_digits_are_detected(inner_digits):
    key = WatermarkKey.from_seed(0)
    marked = embed_dither(inner_digits, key, low=0, high=16)
    d = detect_dither(marked, key, low=0, high=16, fpr=1e-6)
    assert d.detected.mean() >= 0.99
    assert d.file_detected and d.p_value < 1e-100
    assert d.method == "dither" and d.key_id == key.key_id and d.p0 == 0.5
    assert (d.trials == 64).all()
    assert d.to_dict(per_sample=False)["samples_detected"] == int(d.detected.sum())


def test_values_at_the_ends_are_left_alone_and_not_counted(digits):
    """Real digits are half 0s: those stay 0 (moving them is what a classifier sees first), so
    a digit proves less (its other values only) and a few dozen cannot reach 1e-6."""
    key = WatermarkKey.from_seed(0)
    marked = embed_dither(digits, key, low=0, high=16)
    ends = (digits == 0) | (digits == 16)
    assert np.array_equal(marked[ends], digits[ends])
    d = detect_dither(marked, key, low=0, high=16, fpr=1e-6)
    assert (d.trials == (~ends).reshape(len(digits), -1).sum(1)).all() and d.detected.mean() >= 0.9


def test_quality_changes_are_below_delta(digits):
    key = WatermarkKey.from_seed(0)
    marked = embed_dither(digits, key, low=0, high=16)
    change = np.abs(marked - digits)
    assert change.max() < DELTA  # always below Delta
    interior = (digits > DELTA) & (digits < 16 - DELTA)
    assert np.mean(change[interior] <= DELTA / 2 + 1e-12) >= 0.85  # nearest lattice point: <= Delta/2
    assert marked.min() >= 0 and marked.max() <= 16
    psnr = 10 * np.log10(16 ** 2 / np.mean(change ** 2))
    assert psnr > 55, psnr  # measured 60 dB on digits (half their pixels sit at the range's ends)
    # the embedding keeps every sample's summary, hence its dither stream
    np.testing.assert_array_equal(dither_scores(marked, key, low=0, high=16).summaries,
                                  dither_scores(digits, key, low=0, high=16).summaries)


def test_continuous_content_keeps_delta_over_two():
    x = np.random.default_rng(0).uniform(0.05, 0.95, size=(200, 3, 8, 8)).astype(np.float32)
    marked = embed_dither(x, WatermarkKey.from_seed(3), low=0, high=1)
    assert marked.dtype == np.float32 and marked.shape == x.shape
    change = np.abs(marked.astype(np.float64) - x)
    assert change.max() < STEP
    assert np.mean(change <= STEP / 2 + 1e-6) >= 0.9
    assert 10 * np.log10(1 / np.mean(change ** 2)) > 60
    assert detect_dither(marked, WatermarkKey.from_seed(3), low=0, high=1).detected.all()


def test_embed_is_deterministic_idempotent_and_pure(digits):
    key = WatermarkKey.from_seed(8)
    x = digits[:50].copy()
    a = embed_dither(x, key, low=0, high=16)
    np.testing.assert_array_equal(x, digits[:50])  # input untouched
    np.testing.assert_array_equal(a, embed_dither(x, key, low=0, high=16))
    np.testing.assert_allclose(embed_dither(a, key, low=0, high=16), a, atol=1e-9)
    assert not np.array_equal(a, embed_dither(x, WatermarkKey.from_seed(9), low=0, high=16))


def test_image_data_helpers_keep_labels():
    data, schema = load_data("digits")
    key = WatermarkKey.from_seed(4)
    marked = embed_images(ImageData(0.02 + data.x[:20] * (15.96 / 16), data.y[:20]), schema, key)
    np.testing.assert_array_equal(marked.y, data.y[:20])
    assert detect_images(marked, schema, key).detected.all()
    with pytest.raises(DataError, match="shape"):
        detect_images(ImageData(data.x[:2, :, :4]), schema, key)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(64, 200)),
              elements=st.floats(0, 1, allow_nan=False)),
       st.integers(0, 2 ** 31))
def test_property_embed_then_detect(x, seed):
    """For any content in range (constants, spikes, values at the ends): the change stays
    below Delta, the summary is kept, and every element agrees with the key."""
    key = WatermarkKey.from_seed(seed)
    marked = embed_dither(x, key, low=0, high=1)
    assert np.abs(marked - x).max() < STEP and marked.min() >= 0 and marked.max() <= 1
    sc = dither_scores(marked, key, low=0, high=1)
    np.testing.assert_array_equal(sc.summaries, dither_scores(x, key, low=0, high=1).summaries)
    # a chunk whose cell clipping would move keeps its original values, so nearly all agree
    assert (sc.best_counts >= 0.9 * sc.trials).all()


# ------------------------------------------------------------------------ robustness, as documented


@pytest.fixture(scope="module")
def mid_range() -> np.ndarray:
    """Content in the middle of the range, where the logit lattice's step is the nominal one
    (near the ends it shrinks with the value: invisible there, and as fragile)."""
    return np.random.default_rng(3).uniform(4, 12, size=(500, 1, 8, 8))


def test_survives_small_noise_mid_range(mid_range):
    key = WatermarkKey.from_seed(0)
    marked = embed_dither(mid_range, key, low=0, high=16)
    noisy = gaussian_noise(marked, STEP / 10, low=0, high=16, seed=0)  # sigma = Delta / 10
    assert detect_dither(noisy, key, low=0, high=16).detected.mean() >= 0.99


def test_8bit_storage_needs_the_8bit_step(mid_range):
    """8-bit rounding moves a value by up to 1/510 of the range: the default Delta (1/500) is
    lost, Delta = 4/255 keeps it (rounding error <= Delta / 8), as documented."""
    key = WatermarkKey.from_seed(0)
    for step, survives in ((STEP, False), (STEP_8BIT, True)):
        marked = embed_dither(mid_range, key, low=0, high=16, step=step)
        stored = quantize(marked, 256, low=0, high=16)
        rate = detect_dither(stored, key, low=0, high=16, step=step).detected.mean()
        assert rate >= 0.99 if survives else rate < 0.05, (step, rate)
    noisy = gaussian_noise(embed_dither(mid_range, key, low=0, high=16, step=STEP_8BIT), STEP_8BIT / 10,
                           low=0, high=16, seed=0)
    assert detect_dither(noisy, key, low=0, high=16, step=STEP_8BIT).detected.mean() >= 0.99


def test_does_not_survive_blur_or_whole_numbers(digits):
    """The documented limits (docs/watermark-image.md): a blur or rounding to the digits' own
    integer grid moves values by more than Delta / 4, and the mark is gone."""
    key = WatermarkKey.from_seed(0)
    marked = embed_dither(digits[:300], key, low=0, high=16)
    assert detect_dither(blur(marked, 1.0), key, low=0, high=16).detected.mean() < 0.05
    assert detect_dither(quantize(marked, 17, low=0, high=16), key, low=0, high=16).detected.mean() < 0.05


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize("x, kw, error, match", [
    (np.full((2, 4), np.nan), {}, DataError, "NaN"),
    (np.full((2, 4), 2.0), {}, DataError, "outside"),
    (np.zeros(4), {}, DataError, "sample axis"),
    (np.zeros((0, 4)), {}, DataError, "N >= 1"),
    (np.zeros((2, 4), dtype=complex), {}, DataError, "real numbers"),
    (np.zeros((2, 4)), {"step": 0.0}, ConfigError, "step"),
    (np.zeros((2, 4)), {"step": 0.5}, ConfigError, "step"),
    (np.zeros((2, 4)), {"low": 1.0}, ConfigError, "low < high"),
    (np.zeros((2, 4)), {"high": float("inf")}, ConfigError, "finite"),
])
def test_bad_input_is_refused_before_work(x, kw, error, match):
    args = {"low": 0.0, "high": 1.0, **kw}
    key = WatermarkKey.from_seed(0)
    for fn in (embed_dither, detect_dither):
        with pytest.raises(error, match=match) as info:
            fn(x, key, **args)
        assert isinstance(info.value, TrustgenError)


def test_bad_fpr_is_refused():
    with pytest.raises(ConfigError, match="false-positive"):
        detect_dither(np.zeros((1, 64)), WatermarkKey.from_seed(0), low=0, high=1, fpr=0.0)


def test_image_helpers_refuse_other_types():
    with pytest.raises(DataError, match="ImageData"):
        embed_images(np.zeros((1, 1, 8, 8)), ImageSchema(1, 8, 8), WatermarkKey.from_seed(0))
