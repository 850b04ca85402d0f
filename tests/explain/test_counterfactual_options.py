"""Counterfactual options on the labelled clusters: a scikit-learn black box, several diverse
counterfactuals per input, and constraints that the counterfactuals must satisfy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from trustgen.constraints.language import ConstraintSet, Range
from trustgen.errors import ConfigError
from trustgen.explain import SchemaClassifier, counterfactual


@pytest.fixture(scope="module")
def left(labelled):
    df, _, _ = labelled
    return df[df["side"] == "L"].iloc[:15].reset_index(drop=True)


@pytest.fixture(scope="module")
def pipeline(labelled):
    """A scikit-learn pipeline on the feature columns, as a user would fit one."""
    df, _, _ = labelled
    cols = ColumnTransformer([("site", OneHotEncoder(), ["site"])], remainder="passthrough")
    return make_pipeline(cols, LogisticRegression()).fit(df[["a", "b", "site"]], df["side"] == "R")


def test_a_scikit_learn_black_box_gets_on_manifold_counterfactuals(labelled, left, pipeline):
    _, run, _ = labelled
    res = counterfactual(pipeline, left, 1, run, labels=1, immutable=["site"], sparsify=False)
    assert res.method == "sampling" and res.valid.mean() >= 0.9
    assert (res.counterfactuals["site"] == left["site"]).all()
    p = pipeline.predict_proba(res.counterfactuals[["a", "b", "site"]])[:, 1]
    assert np.array_equal(p > 0.5, res.valid) and np.allclose(p, res.probs_after[:, 1])
    # decoded, not sparsified: on the manifold, inside side R's cluster
    cf = res.counterfactuals[res.valid]
    assert ((cf["a"] > 0.5) & (cf["b"] > 0.5)).mean() >= 0.9
    with pytest.raises(ConfigError, match="needs a torch classifier"):
        counterfactual(pipeline, left, 1, run, method="gradient")


def test_several_counterfactuals_per_input_are_valid_and_spread(labelled, left):
    df, run, _ = labelled
    clf = SchemaClassifier(run.schema).fit(df, steps=300)
    k = 3
    spread = {}
    for diversity in (0.0, 2.0):
        res = counterfactual(clf, left, 1, run, labels=1, n_counterfactuals=k, diversity=diversity, sparsify=False)
        assert len(res.counterfactuals) == k * len(left) and (res.query == np.repeat(np.arange(len(left)), k)).all()
        assert res.valid.mean() >= 0.9
        e = res.encoded.reshape(len(left), k, -1)
        spread[diversity] = float((e[:, :, None] - e[:, None]).abs().sum(-1).mean())
    assert spread[2.0] > spread[0.0] > 0


def test_hard_constraints_hold_on_every_valid_counterfactual(labelled, left):
    df, run, _ = labelled
    clf = SchemaClassifier(run.schema).fit(df, steps=300)
    free = counterfactual(clf, left, 1, run, labels=1)
    assert (free.counterfactuals.loc[free.valid, "a"] < 2.0).any()  # unconstrained, some need less than a >= 2
    rules = ConstraintSet([Range("a", low=2.0)])
    res = counterfactual(clf, left, 1, run, labels=1, constraints=rules)
    assert res.valid.mean() >= 0.9
    assert (res.counterfactuals.loc[res.valid, "a"] >= 2.0).all()


def test_bad_options_are_refused(labelled, left, pipeline):
    _, run, _ = labelled
    for kwargs, match in (({"n_counterfactuals": 0}, "n_counterfactuals"), ({"method": "magic"}, "method must"),
                          ({"labels": 7}, "labels must"), ({"immutable": ["nope"]}, "not a feature")):
        with pytest.raises(ConfigError, match=match):
            counterfactual(pipeline, left, 1, run, **kwargs)
    with pytest.raises(ConfigError, match="predict_proba"):
        counterfactual(object(), left, 1, run)


class Step(torch.nn.Module):
    """Side R exactly when a > 0: a step, whose gradient is zero everywhere."""

    def forward(self, u):
        right = (u[:, 0] > 0).float()
        return torch.stack([4 * (1 - right), 4 * right], 1)


def test_where_the_gradient_is_flat_the_black_box_search_takes_over(labelled, left):
    _, run, _ = labelled
    res = counterfactual(Step(), left, 1, run, labels=1)
    assert res.method == "gradient" and res.valid.mean() >= 0.9
    assert (res.counterfactuals.loc[res.valid, "a"] > 0).all()
