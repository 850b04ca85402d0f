"""Evaluation metrics for synthetic data: fidelity, utility, privacy attacks, fairness, diversity.

Every function is a pure metric on numpy arrays (torch tensors and, for tables, pandas
DataFrames are accepted) returning built-in Python floats/dicts, ready to be written as JSON.
Each docstring states the metric's range and direction. None of these metrics is
differentially private: they read the real (private) data. See ``docs/evaluation.md``.
"""

from __future__ import annotations

from trustgen.lazy import lazy_exports

# Imported on first use (the metrics import torch and scikit-learn; `trustgen --help` should not).
_EXPORTS = {
    "FeatureExtractor": "fidelity_image",
    "association_matrix": "fidelity_tabular",
    "classifier_two_sample_auc": "fidelity_tabular",
    "cluster_coverage": "diversity",
    "column_distances": "fidelity_tabular",
    "correlation_difference": "fidelity_tabular",
    "density_ratio_mia": "privacy_attacks",
    "distance_to_closest_record": "privacy_attacks",
    "frechet_distance": "fidelity_image",
    "group_representation": "fairness",
    "is_collapsed": "diversity",
    "label_coverage": "diversity",
    "parity_gaps": "fairness",
    "prdc": "fidelity_image",
    "trtr": "utility",
    "tstr": "utility",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
