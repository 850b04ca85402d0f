"""Fairness checks: are groups represented as in the real data, and do predictions treat them alike?

Group keys in the outputs are built-in Python values (numpy scalars are converted). The outputs
are computed on real data and are NOT differentially private.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trustgen.errors import DataError
from trustgen.evaluation.checks import as_labels, builtin_key


def group_representation(real_groups: Any, synth_groups: Any) -> dict[Any, dict[str, float]]:
    """Share of each group (e.g. a sensitive attribute's values) in the real and synthetic data.

    Range and direction: shares are in [0, 1]; ``diff = synth_share - real_share`` is in
    [-1, 1], 0 is ideal, negative means the group is under-represented in the synthetic data.
    A group present in only one of the two sets gets share 0 in the other.

    Args:
        real_groups: Group label of each real row (1-D).
        synth_groups: Group label of each synthetic row (1-D).

    Returns:
        ``{group: {"real_share", "synth_share", "diff"}}`` over the union of groups.

    Raises:
        DataError: if an input is empty, not 1-D, or has missing values.
    """
    p = pd.Series(as_labels(real_groups, "real_groups")).value_counts(normalize=True)
    q = pd.Series(as_labels(synth_groups, "synth_groups")).value_counts(normalize=True)
    out: dict[Any, dict[str, float]] = {}
    for g in p.index.union(q.index, sort=False):
        r, s = float(p.get(g, 0.0)), float(q.get(g, 0.0))
        out[builtin_key(g)] = {"real_share": r, "synth_share": s, "diff": s - r}
    return out


def parity_gaps(y_true: Any, y_pred: Any, groups: Any, positive_label: Any = 1) -> dict[str, Any]:
    """Demographic-parity and equal-opportunity gaps of binary predictions across groups.

    Per group: the selection rate ``P(pred = positive)`` and the true-positive rate
    ``P(pred = positive | true = positive)`` (None for a group with no positive rows). The
    demographic parity gap is the max minus the min selection rate; the equal opportunity gap
    is the max minus the min true-positive rate over groups that have positives (None if fewer
    than two have). Typical use: predictions of a model trained on synthetic data, evaluated on
    a real test set.

    Range and direction: both gaps are in [0, 1]; 0 is ideal (parity), higher is worse. Small
    groups make the rates noisy; check ``per_group[g]["n"]`` before reading a gap.

    Args:
        y_true: True labels (1-D).
        y_pred: Predicted labels, row-aligned with ``y_true``.
        groups: Group of each row, row-aligned with ``y_true``.
        positive_label: The label counted as the positive (favourable) outcome.

    Returns:
        ``{"demographic_parity_gap", "equal_opportunity_gap", "per_group": {g: {"n",
        "selection_rate", "true_positive_rate"}}}``.

    Raises:
        DataError: if inputs are empty, have missing values, differ in length, or fewer than
            two groups are present.
    """
    yt = as_labels(y_true, "y_true")
    yp = as_labels(y_pred, "y_pred", n=len(yt)) == positive_label
    g = as_labels(groups, "groups", n=len(yt))
    pos = yt == positive_label
    per_group: dict[Any, dict[str, Any]] = {}
    for grp in pd.unique(g):
        m = g == grp
        tpr = float(yp[m & pos].mean()) if (m & pos).any() else None
        per_group[builtin_key(grp)] = {"n": int(m.sum()), "selection_rate": float(yp[m].mean()),
                              "true_positive_rate": tpr}
    if len(per_group) < 2:
        raise DataError(f"groups holds a single group ({g[0]!r}); parity gaps need at least two.")
    sel = [v["selection_rate"] for v in per_group.values()]
    tprs = [v["true_positive_rate"] for v in per_group.values()
            if v["true_positive_rate"] is not None]
    return {
        "demographic_parity_gap": float(np.ptp(sel)),
        "equal_opportunity_gap": float(np.ptp(tprs)) if len(tprs) >= 2 else None,
        "per_group": per_group,
    }
