"""Empirical privacy attacks on synthetic data: distance to closest record and a membership attack.

These are audits, not guarantees: passing them does not prove privacy (only the differential
privacy accounting of the training run does), and failing them shows a concrete leak. They
read the real training and holdout rows, so their outputs are NOT differentially private.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, NearestNeighbors

from trustgen.errors import ConfigError
from trustgen.evaluation.checks import encode

EXACT_COPY_TOL = 1e-8


@dataclass(frozen=True)
class RecordDistances:
    """Per-row distances to the closest training row (what :func:`distance_to_closest_record` summarises).

    These are per-record values computed from the training rows: keep them in memory (the report
    draws its histogram from them) and never write them out.

    Attributes:
        synth: distance of each synthetic row.
        holdout: distance of each holdout row, or None when no holdout was given.
    """

    synth: np.ndarray
    holdout: np.ndarray | None = None


def closest_record_distances(synth: Any, train: Any, holdout: Any = None) -> RecordDistances:
    """Euclidean distance of each synthetic (and holdout) row to its closest training row.

    Encoding as in :func:`distance_to_closest_record` (one-hot over the union of categories,
    standardised with the training columns). ``holdout=None`` computes the synthetic distances only.

    Example:
        >>> import numpy as np
        >>> d = closest_record_distances(np.zeros((2, 1)), np.array([[0.0], [2.0]]))
        >>> d.synth.tolist(), d.holdout
        ([0.0, 0.0], None)
    """
    tables = {"synth": synth, "train": train} | ({} if holdout is None else {"holdout": holdout})
    mats = encode(tables, scale_by="train")
    nn = NearestNeighbors(n_neighbors=1).fit(mats[1])
    ds = nn.kneighbors(mats[0])[0][:, 0]
    return RecordDistances(ds, None if holdout is None else nn.kneighbors(mats[2])[0][:, 0])


def summarise_distances(d: RecordDistances) -> dict[str, float]:
    """The summary :func:`distance_to_closest_record` returns; only the ``synth_*`` keys that need
    no holdout (median, 5th percentile, exact-copy share) when ``d.holdout`` is None."""
    ds, dh = d.synth, d.holdout
    out = {"synth_median": float(np.median(ds)), "synth_p05": float(np.percentile(ds, 5))}
    if dh is None:
        return out | {"synth_exact_copy_share": float((ds < EXACT_COPY_TOL).mean())}
    holdout_median = float(np.median(dh))
    return out | {
        "holdout_median": holdout_median,
        "holdout_p05": float(np.percentile(dh, 5)),
        "synth_exact_copy_share": float((ds < EXACT_COPY_TOL).mean()),
        "holdout_exact_copy_share": float((dh < EXACT_COPY_TOL).mean()),
        "synth_closer_than_holdout_median_share": float((ds < holdout_median).mean()),
    }


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
        ``synth_closer_than_holdout_median_share``. The per-row distances come from
        :func:`closest_record_distances`.

    Raises:
        DataError: on empty/NaN inputs or mismatched columns.
    """
    return summarise_distances(closest_record_distances(synth, train, holdout))


def _tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, alpha: float) -> float:
    return float(tpr[fpr <= alpha].max())


@dataclass(frozen=True)
class MembershipScores:
    """A membership attack's score of each candidate (higher: more likely a training member).

    Per-record values computed from training rows: keep them in memory, never write them out.

    Attributes:
        members: scores of the candidates that were training rows.
        non_members: scores of the candidates that were not.
    """

    members: np.ndarray
    non_members: np.ndarray


def attack_roc(scores: MembershipScores) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the attack's ROC curve (``sklearn.metrics.roc_curve``),
    from (0, 0) to (1, 1); the trapezoid area under them is :func:`summarise_attack`'s ``auc``."""
    label = np.r_[np.ones(len(scores.members)), np.zeros(len(scores.non_members))]
    fpr, tpr, _ = roc_curve(label, np.r_[scores.members, scores.non_members])
    return fpr, tpr


def summarise_attack(scores: MembershipScores) -> dict[str, float]:
    """ROC AUC and the TPR at 1% and 10% FPR of a membership attack (what :func:`density_ratio_mia` returns)."""
    label = np.r_[np.ones(len(scores.members)), np.zeros(len(scores.non_members))]
    fpr, tpr = attack_roc(scores)
    return {
        "auc": float(roc_auc_score(label, np.r_[scores.members, scores.non_members])),
        "tpr_at_fpr_0.01": _tpr_at_fpr(fpr, tpr, 0.01),
        "tpr_at_fpr_0.1": _tpr_at_fpr(fpr, tpr, 0.1),
    }


def density_ratio_scores(synth: Any, train_members: Any, holdout_nonmembers: Any, reference: Any,
                         seed: int = 0, method: str = "kde", n_components: int = 10) -> MembershipScores:
    """The density-ratio attack's score of every member and non-member (see :func:`density_ratio_mia`).

    Same arguments and errors as :func:`density_ratio_mia`; :func:`summarise_attack` turns the
    result into that function's summary and :func:`attack_roc` into its ROC curve.
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
    return MembershipScores(score[:len(xm)], score[len(xm):])


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
        ``{"auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1"}`` as floats. The per-candidate scores
        come from :func:`density_ratio_scores`.

    Raises:
        DataError: on empty/NaN inputs or mismatched columns.
        ConfigError: on an unknown ``method``.
    """
    return summarise_attack(density_ratio_scores(synth, train_members, holdout_nonmembers, reference, seed=seed,
                                                 method=method, n_components=n_components))
