"""Known-answer tests for trustgen.evaluation.diversity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trustgen.errors import DataError
from trustgen.evaluation import cluster_coverage, is_collapsed, label_coverage

CENTRES = np.array([[0, 0], [8, 0], [0, 8], [8, 8], [4, 16]], dtype=float)


def _mixture(rng: np.random.Generator, n: int, modes: list[int] | None = None) -> np.ndarray:
    modes = list(range(len(CENTRES))) if modes is None else modes
    return CENTRES[rng.choice(modes, size=n)] + rng.normal(size=(n, 2))


def test_label_coverage_perfect_and_collapsed() -> None:
    y_cond = np.repeat(np.arange(4), 25)
    perfect = label_coverage(y_cond, y_cond, 4)
    assert perfect == {"per_class_share": [1.0] * 4, "coverage": 4, "coverage_fraction": 1.0,
                       "entropy_ratio": 1.0}
    assert not is_collapsed(perfect)
    collapsed = label_coverage(np.zeros(100, dtype=int), y_cond, 4)  # every sample is a "0"
    assert collapsed["per_class_share"] == [1.0, 0.0, 0.0, 0.0]
    assert collapsed["coverage"] == 1 and collapsed["entropy_ratio"] == 0.0
    assert is_collapsed(collapsed)
    partial = label_coverage(np.array([0, 0, 1, 2]), np.array([0, 0, 1, 1]), 3, threshold=0.5)
    assert partial["per_class_share"] == [1.0, 0.5, None] and partial["coverage"] == 2
    json.dumps(partial, allow_nan=False)


def test_cluster_coverage_full_and_collapsed() -> None:
    # seed 0: 5 well-separated modes (centres >= 8 sd apart) and 5 clusters; a sample of 500
    # gives every mode >= 60 points with probability > 1 - 1e-9, so coverage is exactly 1.
    rng = np.random.default_rng(0)
    real = _mixture(rng, 500)
    full = cluster_coverage(real, _mixture(rng, 500), n_clusters=5, seed=0)
    assert full["coverage_fraction"] == 1.0 and full["coverage"] == 5
    assert full["entropy_ratio"] == pytest.approx(1.0, abs=0.05)
    assert sum(full["synth_shares"]) == pytest.approx(1.0)
    assert not is_collapsed(full)
    one_mode = cluster_coverage(real, _mixture(rng, 500, modes=[3]), n_clusters=5, seed=0)
    assert one_mode["coverage"] == 1 and one_mode["entropy_ratio"] == 0.0
    assert is_collapsed(one_mode) and is_collapsed(full, one_mode)
    two_modes = cluster_coverage(real, _mixture(rng, 500, modes=[0, 1]), n_clusters=5, seed=0)
    assert two_modes["coverage"] == 2 and is_collapsed(two_modes)
    json.dumps(full, allow_nan=False)


def test_diversity_bad_inputs() -> None:
    with pytest.raises(DataError, match="class indices"):
        label_coverage(np.array([0, 5]), np.array([0, 1]), 3)
    with pytest.raises(DataError, match="expected"):
        label_coverage(np.array([0, 1, 1]), np.array([0, 1]), 2)
    with pytest.raises(DataError, match="single class"):
        label_coverage(np.array([0, 1]), np.array([1, 1]), 2)
    with pytest.raises(DataError, match="n_clusters"):
        cluster_coverage(np.zeros((3, 2)), np.zeros((3, 2)), n_clusters=5)
    with pytest.raises(DataError, match="column"):
        cluster_coverage(np.zeros((30, 2)), np.zeros((30, 3)), n_clusters=5)
    with pytest.raises(DataError, match="NaN"):
        cluster_coverage(np.zeros((30, 2)), np.full((30, 2), np.nan), n_clusters=5)
    with pytest.raises(DataError, match="at least one"):
        is_collapsed()
    with pytest.raises(DataError, match="keys"):
        is_collapsed({"coverage": 1})
