"""Calibration of predicted class probabilities: negative log-likelihood and ECE.

Example:
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> round(expected_calibration_error(p, np.array([0, 1, 1, 1]), bins=10), 3)  # one prediction per bin
    0.3
    >>> round(negative_log_likelihood(p, np.array([0, 1, 1, 1])), 3)
    0.4
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trustgen.errors import DataError
from trustgen.evaluation.checks import as_labels, as_matrix


def _checked(probs: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p = as_matrix(probs, "probs", min_rows=1)
    t = as_labels(y, "y")
    if len(t) != len(p):
        raise DataError(f"{len(p)} predictions but {len(t)} labels")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-6):
        raise DataError("probs must be rows of class probabilities (non-negative, summing to 1)")
    if t.min() < 0 or t.max() >= p.shape[1]:
        raise DataError(f"labels must be class indices in 0..{p.shape[1] - 1}")
    return p, t.astype(np.int64)


def negative_log_likelihood(probs: Any, y: Any) -> float:
    """Mean ``-log p(y_i)`` in nats (0 is perfect; a uniform guess over k classes gives log k)."""
    p, t = _checked(probs, y)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(t)), t], 1e-12, 1.0))))


def expected_calibration_error(probs: Any, y: Any, bins: int = 10) -> float:
    """Top-label ECE: predictions binned by confidence (``bins`` equal-width bins on [0, 1]);
    the mean over predictions of ``|accuracy - confidence|`` of their bin. 0 is calibrated.
    With few predictions it is biased upwards (each bin's accuracy is a noisy estimate)."""
    p, t = _checked(probs, y)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise DataError(f"bins must be a positive integer, got {bins!r}")
    conf, pred = p.max(1), p.argmax(1)
    correct = (pred == t).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(total)


__all__ = ["expected_calibration_error", "negative_log_likelihood"]
