"""Evaluation metrics for synthetic data: fidelity, utility, privacy attacks, fairness, diversity.

Every function is a pure metric on numpy arrays (torch tensors and, for tables, pandas
DataFrames are accepted) returning built-in Python floats/dicts, ready to be written as JSON.
Each docstring states the metric's range and direction. None of these metrics is
differentially private: they read the real (private) data. See ``docs/evaluation.md``.
"""

from __future__ import annotations

from trustgen.evaluation.diversity import cluster_coverage, is_collapsed, label_coverage
from trustgen.evaluation.fairness import group_representation, parity_gaps
from trustgen.evaluation.fidelity_image import FeatureExtractor, frechet_distance, prdc
from trustgen.evaluation.fidelity_tabular import (
    association_matrix,
    classifier_two_sample_auc,
    column_distances,
    correlation_difference,
)
from trustgen.evaluation.privacy_attacks import density_ratio_mia, distance_to_closest_record
from trustgen.evaluation.utility import trtr, tstr

__all__ = [
    "FeatureExtractor",
    "association_matrix",
    "classifier_two_sample_auc",
    "cluster_coverage",
    "column_distances",
    "correlation_difference",
    "density_ratio_mia",
    "distance_to_closest_record",
    "frechet_distance",
    "group_representation",
    "is_collapsed",
    "label_coverage",
    "parity_gaps",
    "prdc",
    "trtr",
    "tstr",
]
