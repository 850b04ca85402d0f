"""Diversity and mode collapse: does the generator cover all classes / regions of the real data?

:func:`label_coverage` is for class-conditional generators (typically images, with labels
predicted by :class:`~trustgen.evaluation.fidelity_image.FeatureExtractor` trained on real
images); :func:`cluster_coverage` works on any feature table; :func:`is_collapsed` turns
either result into a flag. All of them use real data and are NOT differentially private.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from trustgen.errors import DataError
from trustgen.evaluation.checks import as_labels, encode

LABEL_THRESHOLD = 0.5  # default share of a class's samples recognised as it for the class to count
MIN_RELATIVE_SHARE = 0.25  # default fraction of a cluster's real share the synthetic data must reach


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _class_indices(x: Any, name: str, n_classes: int, n: int | None = None) -> np.ndarray:
    arr = as_labels(x, name, n=n)
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= n_classes:
        raise DataError(f"{name} must hold integer class indices in [0, {n_classes}); map the "
                        "labels to 0..n_classes-1.")
    return arr


def label_coverage(y_pred_on_samples: Any, y_cond: Any, n_classes: int,
                   threshold: float = LABEL_THRESHOLD) -> dict[str, Any]:
    """How many classes a conditional generator really produces, judged by a real-data classifier.

    For each class ``c``, ``per_class_share[c]`` is the share of the samples generated for
    ``c`` that the classifier predicts as ``c`` (None if no sample was generated for ``c``).
    ``coverage`` counts the classes whose share is at least ``threshold``. ``entropy_ratio``
    is the entropy of the predicted-label histogram over that of the conditioning labels.

    Range and direction: shares and ``coverage_fraction`` (coverage / n_classes) are in
    [0, 1], 1 is ideal; ``coverage`` is in [0, n_classes], higher is better; ``entropy_ratio``
    is >= 0, about 1 is ideal, 0 means every sample is predicted as one class (collapse). The
    scores are bounded by the classifier's own accuracy on real images.

    Args:
        y_pred_on_samples: Class predicted for each generated sample (integers in [0, n_classes)).
        y_cond: Class each sample was generated for, row-aligned.
        n_classes: Number of classes.
        threshold: Minimum share for a class to count as covered.

    Returns:
        ``{"per_class_share": list, "coverage": int, "coverage_fraction": float,
        "entropy_ratio": float}``.

    Raises:
        DataError: on empty/misaligned inputs, labels outside [0, n_classes), or when y_cond
            holds a single class.
    """
    cond = _class_indices(y_cond, "y_cond", n_classes)
    pred = _class_indices(y_pred_on_samples, "y_pred_on_samples", n_classes, n=len(cond))
    cond_counts = np.bincount(cond, minlength=n_classes)
    if (cond_counts > 0).sum() < 2:
        raise DataError("y_cond holds a single class; generate samples for at least two classes "
                        "to measure coverage.")
    hits = np.bincount(cond[pred == cond], minlength=n_classes)
    shares = [float(h / n) if n else None for h, n in zip(hits, cond_counts)]
    covered = sum(s is not None and s >= threshold for s in shares)
    return {
        "per_class_share": shares,
        "coverage": int(covered),
        "coverage_fraction": covered / n_classes,
        "entropy_ratio": _entropy(np.bincount(pred, minlength=n_classes)) / _entropy(cond_counts),
    }


def cluster_coverage(real: Any, synth: Any, n_clusters: int = 10, seed: int = 0,
                     min_relative_share: float = MIN_RELATIVE_SHARE) -> dict[str, Any]:
    """Share of the modes of the real data (KMeans clusters) that the synthetic data reaches.

    KMeans with ``n_clusters`` clusters is fitted to the real rows (one-hot encoded and
    standardised with real statistics) and every synthetic row is assigned to its nearest
    centroid. A cluster is covered when its synthetic share is at least
    ``min_relative_share`` times its real share. ``entropy_ratio`` is the entropy of the
    synthetic cluster histogram over that of the real one.

    Range and direction: ``coverage_fraction`` is in [0, 1], 1 is ideal; ``entropy_ratio`` is
    in [0, log(n_clusters) / H(real)], about 1 is ideal, 0 means every synthetic row falls in
    one cluster (mode collapse). Coverage says nothing about fidelity inside a cluster.

    Args:
        real: Real table (DataFrame or 2-D array, e.g. image features).
        synth: Synthetic table with the same columns.
        n_clusters: Number of KMeans clusters (2 <= n_clusters <= rows of ``real``).
        seed: Seed of KMeans.
        min_relative_share: Fraction of a cluster's real share it must receive to count.

    Returns:
        ``{"coverage": int, "coverage_fraction": float, "entropy_ratio": float,
        "real_shares": list, "synth_shares": list}``.

    Raises:
        DataError: on empty/NaN inputs, mismatched columns, or an invalid ``n_clusters``.
    """
    xr, xs = encode({"real": real, "synth": synth}, scale_by="real")
    if not 2 <= n_clusters <= len(xr):
        raise DataError(f"n_clusters must be between 2 and the number of real rows ({len(xr)}), "
                        f"got {n_clusters}.")
    km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(xr)
    real_counts = np.bincount(km.labels_, minlength=n_clusters)
    synth_counts = np.bincount(km.predict(xs), minlength=n_clusters)
    p, q = real_counts / real_counts.sum(), synth_counts / synth_counts.sum()
    covered = int((q >= min_relative_share * p).sum())
    h_real = _entropy(real_counts)
    return {
        "coverage": covered,
        "coverage_fraction": covered / n_clusters,
        "entropy_ratio": _entropy(synth_counts) / h_real if h_real > 0 else 0.0,
        "real_shares": p.tolist(),
        "synth_shares": q.tolist(),
    }


def is_collapsed(*results: dict[str, Any], min_coverage_fraction: float = 0.5,
                 min_entropy_ratio: float = 0.5) -> bool:
    """Flag mode collapse from :func:`label_coverage` and/or :func:`cluster_coverage` results.

    Returns True if any result has ``coverage_fraction < min_coverage_fraction`` or
    ``entropy_ratio < min_entropy_ratio``. The defaults flag a generator that misses at least
    half of the classes/modes; partial collapse below that needs a stricter threshold.

    Args:
        *results: Outputs of :func:`label_coverage` and/or :func:`cluster_coverage`.
        min_coverage_fraction: Coverage fraction below which the generator counts as collapsed.
        min_entropy_ratio: Entropy ratio below which the generator counts as collapsed.

    Raises:
        DataError: if no result is given or a result lacks the expected keys.
    """
    if not results:
        raise DataError("is_collapsed needs at least one label_coverage or cluster_coverage "
                        "result.")
    for r in results:
        if not {"coverage_fraction", "entropy_ratio"} <= set(r):
            raise DataError("each result must come from label_coverage or cluster_coverage (keys "
                            f"'coverage_fraction' and 'entropy_ratio'), got keys {sorted(r)}.")
    return any(r["coverage_fraction"] < min_coverage_fraction
               or r["entropy_ratio"] < min_entropy_ratio for r in results)
