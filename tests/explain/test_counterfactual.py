"""On-manifold counterfactuals on data whose answer is known: two clusters, a classifier that
reads one coordinate, an immutable column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from trustgen.constraints.space import Space
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import ConfigError
from trustgen.explain import counterfactual
from tests.conftest import DEVICE
from trustgen.pipeline import train
from trustgen.training import TrainConfig


class ReadsA(nn.Module):
    """Class 1 when a > 0 (units), sharply: the decision the counterfactual must cross."""

    def forward(self, u):
        return torch.stack([-2.0 * u[:, 0], 2.0 * u[:, 0]], 1)


@pytest.fixture(scope="module")
def clusters():
    """Seed 0: (a, b) around (-3, -3) or (3, 3), and a site column independent of them."""
    rng = np.random.default_rng(0)
    side = rng.integers(0, 2, 600)
    ab = rng.normal(0, 0.6, (600, 2)) + np.where(side[:, None] == 0, -3.0, 3.0)
    df = pd.DataFrame({"a": ab[:, 0], "b": ab[:, 1], "site": rng.choice(["x", "y"], 600)})
    schema = TabularSchema([NumericColumn("a", -6, 6), NumericColumn("b", -6, 6),
                            CategoricalColumn("site", ("x", "y"))])
    run = train(df, "vae", TrainConfig(steps=800, batch_size=64, progress=False, seed=0, device=DEVICE), schema=schema)
    left = df[side == 0].iloc[:20].reset_index(drop=True)
    return run, schema, left


def test_counterfactuals_cross_the_boundary_on_the_data_manifold(clusters):
    run, schema, left = clusters
    res = counterfactual(ReadsA(), left, 1, run, immutable=["site"])
    assert res.valid.mean() >= 0.9
    assert (res.probs_before[:, 1] < 0.5).all() and (res.probs_after[res.valid, 1] > 0.5).all()
    cf = res.counterfactuals
    assert (cf["site"].to_numpy() == left["site"].to_numpy()).all()  # immutable: never changed
    untouched = res.changed == 1  # only a moved: b is the input's, exactly
    assert untouched.any() and (cf.loc[untouched, "b"].to_numpy() == left.loc[untouched, "b"].to_numpy()).all()
    assert ((cf["a"] >= -6) & (cf["a"] <= 6)).all() and (cf.loc[res.valid, "a"] > 0).all()
    assert res.path.shape == (30, 20, Space(schema).dim)
    assert (res.changed <= 2).all() and (res.proximity > 0).all()


def test_sparsifying_keeps_validity_and_never_changes_more(clusters):
    run, _, left = clusters
    sparse = counterfactual(ReadsA(), left, 1, run)
    dense = counterfactual(ReadsA(), left, 1, run, sparsify=False)
    assert (sparse.changed <= dense.changed).all() and sparse.valid.sum() >= dense.valid.sum()
    # the classifier reads a alone: a sparse counterfactual changes a, and b only if a's change needs it
    assert (sparse.changed[sparse.valid] == 1).mean() > 0.8


def test_bad_arguments_are_refused(clusters):
    run, _, left = clusters
    with pytest.raises(ConfigError, match="target must be class indices"):
        counterfactual(ReadsA(), left, 2, run)
    with pytest.raises(ConfigError, match="target must be class indices"):
        counterfactual(ReadsA(), left, 0.5, run)
    with pytest.raises(ConfigError, match="immutable column 'nope'"):
        counterfactual(ReadsA(), left, 1, run, immutable=["nope"])
    with pytest.raises(ConfigError, match="steps"):
        counterfactual(ReadsA(), left, 1, run, steps=0)


def test_the_schema_classifier_learns_the_label_and_scores_rows_without_it():
    from trustgen.data.datasets import load_breast_cancer
    from trustgen.data.encoders import make_encoder
    from trustgen.explain.classifier import SchemaClassifier

    df, schema = load_breast_cancer()
    clf = SchemaClassifier(schema).fit(df.iloc[:400], steps=200, seed=0)
    y = make_encoder(schema).transform(df.iloc[400:])[1]
    assert (clf.predict_proba(df.iloc[400:]).argmax(1) == y).mean() > 0.9
    features_only = df.iloc[400:].drop(columns="diagnosis")
    np.testing.assert_array_equal(clf.predict_proba(features_only), clf.predict_proba(df.iloc[400:]))
    again = SchemaClassifier(schema).fit(df.iloc[:400], steps=200, seed=0)
    np.testing.assert_array_equal(again.predict_proba(df.iloc[:5]), clf.predict_proba(df.iloc[:5]))
    with pytest.raises(ConfigError, match="at least 2 classes"):
        SchemaClassifier(TabularSchema([NumericColumn("a", 0, 1)]))


def test_images_are_searched_whole_by_default_and_stay_in_range():
    from trustgen.data.datasets import load_digits
    from trustgen.data.encoders import ImageData
    from trustgen.explain.classifier import SchemaClassifier

    data, schema = load_digits()
    part = ImageData(data.x[:300], data.y[:300])
    run = train(part, "vae", TrainConfig(steps=60, batch_size=64, progress=False, seed=0, device=DEVICE), schema=schema)
    clf = SchemaClassifier(schema).fit(part, steps=100)
    q = ImageData(data.x[300:306], data.y[300:306])
    target = (clf.predict_proba(q).argmax(1) + 1) % 10
    default = counterfactual(clf, q, target, run, labels=target, steps=40)
    whole = counterfactual(clf, q, target, run, labels=target, steps=40, sparsify=False)
    np.testing.assert_array_equal(default.counterfactuals.x, whole.counterfactuals.x)
    x = default.counterfactuals.x
    assert x.shape == (6, 1, 8, 8) and x.min() >= schema.low and x.max() <= schema.high
    with pytest.raises(ConfigError, match="immutable columns apply to tables"):
        counterfactual(clf, q, target, run, immutable=["pixels"])
