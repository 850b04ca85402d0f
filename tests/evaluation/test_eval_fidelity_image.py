"""Known-answer tests for trustgen.evaluation.fidelity_image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from trustgen.errors import DataError
from trustgen.evaluation import FeatureExtractor, frechet_distance, label_coverage, prdc


def test_frechet_distance_identical_is_zero() -> None:
    a = np.random.default_rng(0).normal(size=(200, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(torch.from_numpy(a), a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_mean_shift_is_squared_norm() -> None:
    # seed 1, d = 4, n = 4000: FD(N(0,I), N(mu,I)) = |mu|^2. The estimate's sd is ~0.05 for
    # |mu|^2 = 1 and ~0.15 for |mu|^2 = 9; the tolerances (0.2, 1.0) are > 4 sd (false-failure
    # < 1e-4), and the sample-size bias (~d^2/n) is far below them.
    rng = np.random.default_rng(1)
    real = rng.normal(size=(4000, 4))
    mu = np.full(4, 0.5)  # |mu|^2 = 1
    near = frechet_distance(real, rng.normal(size=(4000, 4)) + mu)
    far = frechet_distance(real, rng.normal(size=(4000, 4)) + 3 * mu)
    same = frechet_distance(real, rng.normal(size=(4000, 4)))
    assert near == pytest.approx(1.0, abs=0.2)
    assert far == pytest.approx(9.0, abs=1.0)
    assert same < 0.05 < near < far


def test_frechet_distance_scale_change() -> None:
    # FD(N(0,I), N(0,s^2 I)) = d (1 - s)^2 = 4 for d = 4, s = 2 (seed 2; 10 % tolerance is
    # > 4 sd of the estimate at n = 4000, false-failure < 1e-4).
    rng = np.random.default_rng(2)
    fd = frechet_distance(rng.normal(size=(4000, 4)), 2.0 * rng.normal(size=(4000, 4)))
    assert fd == pytest.approx(4.0, rel=0.1)


def test_frechet_distance_singular_covariance_is_finite() -> None:
    rng = np.random.default_rng(3)
    fd = frechet_distance(rng.normal(size=(4, 10)), rng.normal(size=(5, 10)))  # n < d
    assert np.isfinite(fd) and fd >= 0.0 and isinstance(fd, float)
    dead = np.c_[rng.normal(size=(50, 3)), np.zeros((50, 2))]  # dead (constant) features
    assert frechet_distance(dead, dead + 1.0) == pytest.approx(5.0, abs=1e-3)


def test_prdc_known_cases() -> None:
    # seed 4, 800 points per set, d = 4, k = 5. For matching distributions Naeem et al. give
    # E[density] = 1 and E[coverage] = 1 - 2^-k = 0.97; observed sd is ~0.03, tolerances are
    # >= 4 sd (false-failure < 1e-4).
    rng = np.random.default_rng(4)
    real, synth = rng.normal(size=(800, 4)), rng.normal(size=(800, 4))
    same = prdc(real, synth, k=5)
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    assert same["density"] == pytest.approx(1.0, abs=0.15)
    assert same["coverage"] == pytest.approx(0.97, abs=0.05)
    far = prdc(real, synth + 10.0, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    collapsed = prdc(real, 0.01 * synth, k=5)  # every sample at the mode: faithful, not diverse
    assert collapsed["precision"] == 1.0
    assert collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.05
    assert prdc(real, synth, k=5, chunk_size=7) == same  # chunking does not change the result
    json.dumps(same, allow_nan=False)


def test_image_metric_bad_inputs() -> None:
    a = np.zeros((10, 3))
    with pytest.raises(DataError, match="column counts"):
        frechet_distance(a, np.zeros((10, 4)))
    with pytest.raises(DataError, match="NaN"):
        frechet_distance(a, np.full((10, 3), np.nan))
    with pytest.raises(DataError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), a)
    with pytest.raises(DataError, match="2-D"):
        prdc(np.zeros(10), a)
    with pytest.raises(DataError, match="at least 6"):
        prdc(np.zeros((5, 3)), a, k=5)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)  # ships with scikit-learn, no download
    return (x / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), y


@pytest.fixture(scope="module")
def extractor(digits: tuple[np.ndarray, np.ndarray]) -> FeatureExtractor:
    x, y = digits
    return FeatureExtractor(feature_dim=32, epochs=5, seed=0).fit(x[:1200], y[:1200])


def test_feature_extractor_learns_digits(digits, extractor) -> None:
    # seed 0; deterministic on CPU. 5 epochs reach 0.91 held-out accuracy (597 images, sd of
    # the estimate ~0.012); 0.8 leaves a margin for numeric differences across platforms.
    x, y = digits
    assert (extractor.predict(x[1200:]) == y[1200:]).mean() > 0.8
    feats = extractor.transform(x[1200:])
    assert feats.shape == (len(x) - 1200, 32) and feats.dtype == np.float64
    # held-out real digits are much closer to the training digits than noise images are
    f_train = extractor.transform(x[:1200])
    noise = np.random.default_rng(5).random((400, 1, 8, 8)).astype(np.float32)
    fd_noise = frechet_distance(f_train, extractor.transform(noise))
    assert frechet_distance(f_train, feats) < 0.2 * fd_noise
    # a collapsed "generator" that returns one digit for every requested class is flagged
    cond = y[1200:]
    ones = x[:1200][y[:1200] == 1][: len(cond)]
    ones = np.resize(ones, (len(cond), 1, 8, 8))
    collapsed = label_coverage(extractor.predict(ones), cond, 10)
    assert collapsed["coverage"] <= 1
    assert label_coverage(extractor.predict(x[1200:]), cond, 10)["coverage"] >= 8


def test_feature_extractor_is_seeded(digits) -> None:
    x, y = digits
    state = torch.random.get_rng_state()
    first = FeatureExtractor(feature_dim=16, epochs=1, seed=3).fit(x[:300], y[:300])
    again = FeatureExtractor(feature_dim=16, epochs=1, seed=3).fit(x[:300], y[:300])
    other = FeatureExtractor(feature_dim=16, epochs=1, seed=4).fit(x[:300], y[:300])
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    np.testing.assert_array_equal(again.transform(x[:50]), first.transform(x[:50]))
    assert not np.allclose(other.transform(x[:50]), first.transform(x[:50]))


def test_feature_extractor_bad_inputs(digits, extractor) -> None:
    x, y = digits
    with pytest.raises(DataError, match="not fitted"):
        FeatureExtractor().transform(x[:5])
    with pytest.raises(DataError, match="N x C x H x W"):
        FeatureExtractor().fit(x[:5, 0], y[:5])
    with pytest.raises(DataError, match="NaN"):
        FeatureExtractor().fit(np.full((5, 1, 8, 8), np.nan), y[:5])
    with pytest.raises(DataError, match="expected"):
        FeatureExtractor().fit(x[:5], y[:4])
    with pytest.raises(DataError, match="image shape"):
        extractor.transform(np.zeros((2, 1, 4, 4), dtype=np.float32))
