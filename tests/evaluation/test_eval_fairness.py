"""Known-answer tests for trustgen.evaluation.fairness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trustgen.errors import DataError
from trustgen.evaluation import group_representation, parity_gaps


def test_group_representation_known_shares() -> None:
    real = np.array(["f"] * 50 + ["m"] * 50)
    assert all(v["diff"] == 0.0 for v in group_representation(real, real).values())
    res = group_representation(real, np.array(["f"] * 20 + ["m"] * 70 + ["x"] * 10))
    assert res["f"] == {"real_share": 0.5, "synth_share": 0.2, "diff": pytest.approx(-0.3)}
    assert res["x"] == {"real_share": 0.0, "synth_share": 0.1, "diff": 0.1}
    ints = group_representation(np.array([0, 1, 1, 1]), np.array([1, 1]))
    assert ints == {1: {"real_share": 0.75, "synth_share": 1.0, "diff": 0.25},
                    0: {"real_share": 0.25, "synth_share": 0.0, "diff": -0.25}}
    assert all(type(k) is int for k in ints)  # numpy scalars converted for JSON
    json.dumps(res, allow_nan=False)


def test_parity_gaps_hand_computed() -> None:
    # group a: 4 rows, 2 positives, predicted positive on rows 0, 1, 2 -> selection 0.75, TPR 1.0
    # group b: 4 rows, 2 positives, predicted positive on row 4 only   -> selection 0.25, TPR 0.5
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    groups = np.array(["a"] * 4 + ["b"] * 4)
    res = parity_gaps(y_true, y_pred, groups)
    assert res["demographic_parity_gap"] == pytest.approx(0.5)
    assert res["equal_opportunity_gap"] == pytest.approx(0.5)
    assert res["per_group"]["a"] == {"n": 4, "selection_rate": 0.75, "true_positive_rate": 1.0}
    json.dumps(res, allow_nan=False)
    fair = parity_gaps(y_true, y_true, groups)  # perfect predictions, equal base rates
    assert fair["demographic_parity_gap"] == 0.0 and fair["equal_opportunity_gap"] == 0.0
    no_pos = parity_gaps(np.array([1, 0, 0, 0]), np.array([1, 0, 1, 0]), np.array([0, 0, 1, 1]))
    assert no_pos["per_group"][1]["true_positive_rate"] is None
    assert no_pos["equal_opportunity_gap"] is None


def test_fairness_bad_inputs() -> None:
    with pytest.raises(DataError, match="empty"):
        group_representation(np.array([]), np.array(["a"]))
    with pytest.raises(DataError, match="missing"):
        group_representation(np.array(["a", None], dtype=object), np.array(["a"]))
    with pytest.raises(DataError, match="expected"):
        parity_gaps(np.array([1, 0]), np.array([1, 0, 1]), np.array([0, 1]))
    with pytest.raises(DataError, match="two"):
        parity_gaps(np.array([1, 0]), np.array([1, 0]), np.array([0, 0]))
    with pytest.raises(DataError, match="missing"):
        parity_gaps(np.array([1.0, np.nan]), np.array([1, 0]), np.array([0, 1]))
