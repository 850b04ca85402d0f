"""CLUE on the two clusters: records between them are uncertain for a Bayesian classifier, and
their explanation is a nearby record inside a cluster, where it is sure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch import nn

from tests.explain.conftest import SCHEMA
from trustgen.errors import ConfigError
from trustgen.explain import SchemaClassifier, clue


@pytest.fixture(scope="module")
def bayes(labelled):
    df, run, _ = labelled
    return SchemaClassifier(SCHEMA, bayesian=True).fit(df, steps=300, seed=0)


def between(n=10, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(0, 0.3, n), "b": rng.normal(0, 0.3, n), "site": "y", "side": "L"})


def test_clue_finds_a_nearby_record_the_classifier_is_sure_about(labelled, bayes):
    _, run, _ = labelled
    q = between()
    res = clue(bayes, q, run, immutable=["site"])
    assert (res.entropy_before > 0.3).all()  # the classifier hesitates between the clusters
    assert (res.entropy_after < 0.5 * res.entropy_before).all()
    assert (res.epistemic_after <= res.epistemic_before).all()
    e = res.explanations
    assert (e["site"] == "y").all()  # immutable
    inside = np.where(res.prediction_after == 1, (e["a"] > 1) & (e["b"] > 1), (e["a"] < -1) & (e["b"] < -1))
    assert inside.all()  # inside the cluster of the class it is now sure of
    # no further than the cluster it lands in: every number moves by less than the cluster's offset + 2 sd
    assert (np.abs(e[["a", "b"]].to_numpy() - q[["a", "b"]].to_numpy()) < 3 + 1.2 + 1).all()
    assert res.path.shape[1:] == (10, 4) and (res.changed >= 1).all()


def test_a_heavier_distance_weight_keeps_the_explanation_closer(labelled, bayes):
    _, run, _ = labelled
    near = clue(bayes, between(), run, distance=2.0)
    far = clue(bayes, between(), run, distance=0.05)
    assert near.proximity.mean() < far.proximity.mean()
    assert near.entropy_after.mean() >= far.entropy_after.mean()


def test_epistemic_mode_lowers_the_models_doubt_about_an_unseen_region(labelled, bayes):
    _, run, _ = labelled
    q = pd.DataFrame({"a": [5.5, 5.0, -5.5], "b": [-5.5, -5.0, 5.5], "site": "x", "side": "L"})  # no data there
    # its epistemic part is small there (about 0.04 nats, seed 0): a light distance weight lets it count
    res = clue(bayes, q, run, uncertainty="epistemic", distance=0.01)
    assert (res.epistemic_after < 0.5 * res.epistemic_before).all()
    kept = clue(bayes, q, run, uncertainty="epistemic", distance=0.2)  # too little to win: the input stands
    assert (kept.changed == 0).all() and np.array_equal(kept.epistemic_after, kept.epistemic_before)


def test_the_runs_own_bayesian_label_head_explained(labelled):
    _, _, headed = labelled
    res = clue(None, between(), headed)
    assert (res.entropy_after < res.entropy_before).mean() >= 0.9


def test_clue_refuses_what_it_cannot_explain(labelled, bayes):
    df, run, _ = labelled
    q = between(2)
    with pytest.raises(ConfigError, match="no posterior"):
        clue(SchemaClassifier(SCHEMA).fit(df, steps=5), q, run)
    with pytest.raises(ConfigError, match="has none"):
        clue(None, q, run)
    with pytest.raises(ConfigError, match="torch classifier"):
        clue(object(), q, run)
    with pytest.raises(ConfigError, match="draws must be at least 2"):
        clue(bayes, q, run, draws=1)
    with pytest.raises(ConfigError, match="uncertainty must be"):
        clue(bayes, q, run, uncertainty="aleatoric")
    assert isinstance(bayes, nn.Module)


def test_a_level_keeps_the_closest_candidate_below_it(labelled, bayes):
    _, run, _ = labelled
    free = clue(bayes, between(), run, distance=0.02)
    level = clue(bayes, between(), run, distance=0.02, below=0.3)
    assert (level.entropy_after < 0.3).all()
    assert level.proximity.mean() < free.proximity.mean()  # the first candidate below 0.3, not the deepest
    with pytest.raises(ConfigError, match="below must be"):
        clue(bayes, between(2), run, below=0)
