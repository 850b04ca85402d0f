"""Empirical privacy attacks on synthetic data: distance to closest record and a membership attack.

These are audits, not guarantees: passing them does not prove privacy (only the differential
privacy accounting of the training run does), and failing them shows a concrete leak. They
read the real training and holdout rows, so their outputs are NOT differentially private.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, NearestNeighbors

from trustgen.errors import ConfigError
from trustgen.evaluation.checks import encode

EXACT_COPY_TOL = 1e-8


def distance_to_closest_record(synth: Any, train: Any, holdout: Any) -> dict[str, float]:
    """Distance of each synthetic row, and of each real holdout row, to its closest training row.

    Tables are one-hot encoded (union of categories) and standardised with the training
    columns' mean and standard deviation; distances are Euclidean. The holdout, real rows the
    generator never saw, gives the distances to expect from a generator that does not memorise.

    Range and direction: distances are in [0, inf), larger synthetic distances are safer;
    ``synth_exact_copy_share`` (share of synthetic rows within 1e-8 of a training row) is in
    [0, 1], 0 is ideal; ``synth_closer_than_holdout_median_share`` is in [0, 1], about 0.5 is
    ideal (synthetic rows sit as far from the training rows as fresh real rows do), values
    towards 1 indicate memorisation. Large DCRs do not rule out other attacks (e.g. attribute
    inference or membership inference, see :func:`density_ratio_mia`).

    Args:
        synth: Synthetic table (DataFrame or 2-D array).
        train: The generator's real training table, same columns.
        holdout: Real table from the same population, not used for training, same columns.

    Returns:
        Dict with ``synth_median``, ``synth_p05``, ``holdout_median``, ``holdout_p05``,
        ``synth_exact_copy_share``, ``holdout_exact_copy_share`` and
        ``synth_closer_than_holdout_median_share``.

    Raises:
        DataError: on empty/NaN inputs or mismatched columns.
    """
    xs, xt, xh = encode({"synth": synth, "train": train, "holdout": holdout}, scale_by="train")
    nn = NearestNeighbors(n_neighbors=1).fit(xt)
    ds, dh = nn.kneighbors(xs)[0][:, 0], nn.kneighbors(xh)[0][:, 0]
    holdout_median = float(np.median(dh))
    return {
        "synth_median": float(np.median(ds)),
        "synth_p05": float(np.percentile(ds, 5)),
        "holdout_median": holdout_median,
        "holdout_p05": float(np.percentile(dh, 5)),
        "synth_exact_copy_share": float((ds < EXACT_COPY_TOL).mean()),
        "holdout_exact_copy_share": float((dh < EXACT_COPY_TOL).mean()),
        "synth_closer_than_holdout_median_share": float((ds < holdout_median).mean()),
    }


def _tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, alpha: float) -> float:
    return float(tpr[fpr <= alpha].max())


def density_ratio_mia(synth: Any, train_members: Any, holdout_nonmembers: Any, reference: Any,
                      seed: int = 0, method: str = "kde",
                      n_components: int = 10) -> dict[str, float]:
    """Membership inference by density ratio, in the spirit of DOMIAS (van Breugel et al., 2023).

    The attacker fits a density ``p_synth`` to the synthetic rows and ``p_ref`` to reference
    rows from the same population (not members), and scores a candidate ``x`` by
    ``log p_synth(x) - log p_ref(x)``: a generator that overfits puts excess density on its
    training rows. Members and non-members are scored and the attack is summarised by ROC AUC
    and by the true-positive rate at 1% and 10% false-positive rate. Features are one-hot
    encoded and standardised with the reference statistics; densities are Gaussian KDEs with
    Scott's bandwidth (``method="kde"``) or Gaussian mixtures (``method="gmm"``).

    Range and direction: AUC in [0, 1], 0.5 is ideal (the attack is no better than guessing),
    higher is worse; TPR at FPR alpha is in [0, 1], about alpha is ideal, higher is worse.
    This is one attack: a low score does not prove privacy.

    Args:
        synth: Synthetic table.
        train_members: Rows that were in the generator's training set.
        holdout_nonmembers: Rows from the same population that were not.
        reference: Further non-member rows the attacker may use, disjoint from the above.
        seed: Seed of the Gaussian mixture fits (KDE is deterministic).
        method: ``"kde"`` or ``"gmm"``.
        n_components: Mixture components for ``"gmm"`` (capped by the number of rows).

    Returns:
        ``{"auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1"}`` as floats.

    Raises:
        DataError: on empty/NaN inputs or mismatched columns.
        ConfigError: on an unknown ``method``.
    """
    if method not in ("kde", "gmm"):
        raise ConfigError(f"method must be 'kde' or 'gmm', got {method!r}.")
    xs, xm, xn, xr = encode({"synth": synth, "train_members": train_members,
                             "holdout_nonmembers": holdout_nonmembers, "reference": reference},
                            scale_by="reference")

    def density(x: np.ndarray) -> Any:
        if method == "kde":
            return KernelDensity(bandwidth="scott").fit(x)
        return GaussianMixture(n_components=min(n_components, len(x)), covariance_type="full",
                               reg_covar=1e-4, random_state=seed).fit(x)

    p_synth, p_ref = density(xs), density(xr)
    candidates = np.vstack([xm, xn])
    score = p_synth.score_samples(candidates) - p_ref.score_samples(candidates)
    label = np.r_[np.ones(len(xm)), np.zeros(len(xn))]
    fpr, tpr, _ = roc_curve(label, score)
    return {
        "auc": float(roc_auc_score(label, score)),
        "tpr_at_fpr_0.01": _tpr_at_fpr(fpr, tpr, 0.01),
        "tpr_at_fpr_0.1": _tpr_at_fpr(fpr, tpr, 0.1),
    }
