"""Known-answer tests for trustgen.evaluation.utility (TSTR / TRTR)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trustgen.errors import ConfigError, DataError
from trustgen.evaluation import trtr, tstr


def _task(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    x = rng.normal(size=(n, 3))
    city = rng.choice(["ams", "ber", "cph"], size=n)
    logit = 2.5 * x[:, 0] - 2.0 * x[:, 1] + 2.0 * (city == "ams")
    y = (logit + 0.5 * rng.normal(size=n) > 1.0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "noise": x[:, 2], "city": city}), y


def test_good_synthetic_data_matches_trtr() -> None:
    # seed 0: a near-deterministic task (Bayes accuracy ~0.95) with 400 training and 400 test rows;
    # accuracy sd is ~0.015, the thresholds leave > 5 sd (false-failure < 1e-6).
    rng = np.random.default_rng(0)
    (x_tr, y_tr), (x_syn, y_syn), (x_te, y_te) = _task(rng, 400), _task(rng, 400), _task(rng, 400)
    real = trtr(x_tr, y_tr, x_te, y_te, seed=0)
    syn = tstr(x_syn, y_syn, x_te, y_te, seed=0)
    assert set(syn) == {"logistic", "random_forest"}
    for model in syn:
        assert syn[model]["accuracy"] > 0.8 and syn[model]["roc_auc"] > 0.9
        assert abs(syn[model]["accuracy"] - real[model]["accuracy"]) < 0.08
    assert tstr(x_tr, y_tr, x_te, y_te, seed=0) == real  # same computation, different name
    json.dumps(syn, allow_nan=False)


def test_labels_without_signal_give_chance_auc() -> None:
    # seed 1: test labels are coin flips independent of everything, so whatever the model, the
    # test ROC AUC has mean 0.5 and sd ~0.029 on 400 rows; the tolerance 0.12 is 4 sd
    # (false-failure < 1e-4).
    rng = np.random.default_rng(1)
    (x_syn, y_syn), (x_te, _) = _task(rng, 400), _task(rng, 400)
    y_te = rng.integers(0, 2, size=400)
    res = tstr(x_syn, y_syn, x_te, y_te, models=("logistic",), seed=0)
    assert set(res) == {"logistic"}
    assert abs(res["logistic"]["roc_auc"] - 0.5) < 0.12


def test_multiclass_arrays_and_unseen_categories() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    y = np.digitize(x[:, 0], [-0.5, 0.5])  # 3 classes from thresholds on one feature
    res = tstr(x[:200], y[:200], x[200:], y[200:], models=("random_forest",), seed=0)
    assert "roc_auc" not in res["random_forest"]  # only reported for binary tasks
    assert res["random_forest"]["accuracy"] > 0.85
    # a category that appears only in the test set is encoded through the union of categories
    df = pd.DataFrame({"v": x[:, 0], "c": ["p"] * 200 + ["q"] * 100})
    yb = (x[:, 0] > 0).astype(int)
    out = tstr(df.iloc[:200], yb[:200], df.iloc[200:], yb[200:], models=("logistic",))
    assert out["logistic"]["accuracy"] > 0.85


def test_utility_bad_inputs() -> None:
    x, y = np.random.default_rng(3).normal(size=(20, 2)), np.arange(20) % 2
    with pytest.raises(DataError, match="single class"):
        tstr(x, np.zeros(20, dtype=int), x, y)
    with pytest.raises(DataError, match="expected"):
        tstr(x, y[:10], x, y)
    with pytest.raises(DataError, match="column counts|columns"):
        tstr(x, y, np.zeros((20, 3)), y)
    with pytest.raises(DataError, match="NaN"):
        trtr(np.full((20, 2), np.nan), y, x, y)
    with pytest.raises(DataError, match="empty"):
        trtr(np.zeros((0, 2)), y[:0], x, y)
    with pytest.raises(ConfigError, match="subset"):
        tstr(x, y, x, y, models=("svm",))


def test_caller_classifiers_are_cloned_and_scored_like_named_ones() -> None:
    from sklearn.linear_model import LogisticRegression

    from trustgen.evaluation.utility import make_classifier

    rng = np.random.default_rng(4)
    (x_syn, y_syn), (x_te, y_te) = _task(rng, 200), _task(rng, 200)
    mine = LogisticRegression(max_iter=500)
    res = tstr(x_syn, y_syn, x_te, y_te, models={"mine": mine, "named": make_classifier("logistic")})
    assert set(res) == {"mine", "named"} and set(res["mine"]) == {"accuracy", "roc_auc"}
    assert not hasattr(mine, "coef_")  # the caller's object is not fitted in place
    # the named "logistic" model is exactly make_classifier("logistic")
    assert res["named"] == tstr(x_syn, y_syn, x_te, y_te, models=("logistic",))["logistic"]
    with pytest.raises(ConfigError, match="scikit-learn classifiers"):
        tstr(x_syn, y_syn, x_te, y_te, models={"bad": object()})
    with pytest.raises(ConfigError, match="known"):
        make_classifier("svm")
