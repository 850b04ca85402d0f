"""NLL and ECE against values known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from trustgen.errors import DataError
from trustgen.evaluation.calibration import expected_calibration_error, negative_log_likelihood


def test_calibrated_predictions_have_a_small_ece_and_overconfident_ones_a_large_one():
    """Seed 0, 20,000 predictions: labels drawn from the predicted probabilities themselves
    (calibrated by construction; ECE's sampling error is ~0.005 here), against the same
    labels with every confidence pushed to 0.99 (ECE ~ 0.99 - accuracy)."""
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, 20_000) < p1).astype(int)
    calibrated = np.c_[1 - p1, p1]
    assert expected_calibration_error(calibrated, y) < 0.02
    sharp = np.where(p1 > 0.5, 0.99, 0.01)
    over = np.c_[1 - sharp, sharp]
    acc = ((p1 > 0.5) == y).mean()
    assert expected_calibration_error(over, y) == pytest.approx(0.99 - acc, abs=0.01)


def test_nll_matches_the_formula():
    p = np.array([[0.5, 0.5], [0.1, 0.9]])
    assert negative_log_likelihood(p, [0, 1]) == pytest.approx(-(np.log(0.5) + np.log(0.9)) / 2)


@pytest.mark.parametrize("probs, y, match", [
    (np.array([[0.5, 0.6]]), [0], "summing to 1"),
    (np.array([[0.5, 0.5]]), [2], "class indices"),
    (np.array([[0.5, 0.5]]), [0, 1], "labels"),
])
def test_bad_inputs_are_refused(probs, y, match):
    with pytest.raises(DataError, match=match):
        expected_calibration_error(probs, y)
