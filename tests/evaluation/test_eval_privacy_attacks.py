"""Known-answer tests for trustgen.evaluation.privacy_attacks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trustgen.errors import ConfigError, DataError
from trustgen.evaluation import density_ratio_mia, distance_to_closest_record


def _sample(rng: np.random.Generator, n: int, d: int = 5) -> np.ndarray:
    return rng.normal(size=(n, d))


def test_dcr_detects_copies() -> None:
    rng = np.random.default_rng(0)
    train, holdout = _sample(rng, 300), _sample(rng, 300)
    res = distance_to_closest_record(train[rng.permutation(300)], train, holdout)
    assert res["synth_exact_copy_share"] == 1.0
    assert res["synth_median"] == 0.0 and res["synth_p05"] == 0.0
    assert res["synth_closer_than_holdout_median_share"] == 1.0
    assert res["holdout_exact_copy_share"] == 0.0 and res["holdout_median"] > 0.3
    json.dumps(res, allow_nan=False)


def test_dcr_of_independent_generator_matches_holdout() -> None:
    # seed 1: synthetic rows drawn from the real distribution behave like the holdout, so about
    # half of them are closer than the holdout median; with 600 synthetic rows the share's sd is
    # ~0.03 (incl. the holdout median's noise), the tolerance 0.12 is 4 sd (false-failure < 1e-4).
    rng = np.random.default_rng(1)
    train, holdout = _sample(rng, 300), _sample(rng, 300)
    res = distance_to_closest_record(_sample(rng, 600), train, holdout)
    assert res["synth_exact_copy_share"] == 0.0
    assert abs(res["synth_closer_than_holdout_median_share"] - 0.5) < 0.12
    assert res["synth_median"] == pytest.approx(res["holdout_median"], rel=0.15)


def test_dcr_on_mixed_dataframes() -> None:
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "b"]})
    other = pd.DataFrame({"x": [0.5, 10.0], "c": ["a", "z"]})  # 'z' never seen in train
    res = distance_to_closest_record(df.iloc[[0, 1]], df, other)
    assert res["synth_exact_copy_share"] == 1.0 and res["holdout_exact_copy_share"] == 0.0


@pytest.mark.parametrize("method, min_auc", [("kde", 0.75), ("gmm", 0.7)])
def test_mia_copies_give_high_auc_and_fresh_samples_chance(method: str, min_auc: float) -> None:
    # seed 2, d = 5, 300 members / 300 non-members / 1000 reference rows. A copying generator
    # gives AUC 0.83 (kde) / 0.76 (gmm) with this seed, AUC sd ~0.02, so the thresholds are
    # >= 3 sd below (false-failure < 2e-3); against a fresh sample from the same distribution
    # the AUC sd is ~0.024 and the tolerance 0.1 is > 4 sd (false-failure < 1e-4 per method).
    rng = np.random.default_rng(2)
    members, nonmembers, reference = _sample(rng, 300), _sample(rng, 300), _sample(rng, 1000)
    leak = density_ratio_mia(members.copy(), members, nonmembers, reference, seed=0, method=method)
    fresh = density_ratio_mia(_sample(rng, 1000), members, nonmembers, reference, seed=0,
                              method=method)
    assert leak["auc"] > min_auc
    assert leak["tpr_at_fpr_0.1"] > 0.3 and leak["tpr_at_fpr_0.01"] >= 0.02
    assert abs(fresh["auc"] - 0.5) < 0.1
    assert fresh["tpr_at_fpr_0.1"] < 0.25
    assert set(leak) == {"auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1"}
    json.dumps(leak, allow_nan=False)


def test_privacy_bad_inputs() -> None:
    a = np.zeros((10, 3))
    with pytest.raises(DataError, match="column"):
        distance_to_closest_record(a, np.zeros((10, 4)), a)
    with pytest.raises(DataError, match="NaN"):
        distance_to_closest_record(a, a, np.full((10, 3), np.nan))
    with pytest.raises(DataError, match="empty"):
        density_ratio_mia(np.zeros((0, 3)), a, a, a)
    with pytest.raises(ConfigError, match="method"):
        density_ratio_mia(a, a, a, a, method="knn")


def test_per_record_distances_and_scores_give_the_summaries() -> None:
    from sklearn.metrics import auc

    from trustgen.evaluation.privacy_attacks import (
        attack_roc, closest_record_distances, density_ratio_scores, summarise_attack, summarise_distances,
    )

    rng = np.random.default_rng(3)
    train, holdout, synth = _sample(rng, 80), _sample(rng, 60), _sample(rng, 70)
    d = closest_record_distances(synth, train, holdout)
    assert d.synth.shape == (70,) and d.holdout.shape == (60,)
    assert summarise_distances(d) == distance_to_closest_record(synth, train, holdout)
    alone = closest_record_distances(synth, train)
    assert alone.holdout is None and np.array_equal(alone.synth, d.synth)
    assert set(summarise_distances(alone)) == {"synth_median", "synth_p05", "synth_exact_copy_share"}
    scores = density_ratio_scores(synth, train[:30], holdout[:30], holdout[30:])
    assert scores.members.shape == scores.non_members.shape == (30,)
    assert summarise_attack(scores) == density_ratio_mia(synth, train[:30], holdout[:30], holdout[30:])
    fpr, tpr = attack_roc(scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert auc(fpr, tpr) == pytest.approx(summarise_attack(scores)["auc"], abs=1e-12)
