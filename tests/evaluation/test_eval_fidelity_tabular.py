"""Known-answer tests for trustgen.evaluation.fidelity_tabular."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustgen.errors import DataError
from trustgen.evaluation import (
    association_matrix,
    classifier_two_sample_auc,
    column_distances,
    correlation_difference,
)


def _table(rng: np.random.Generator, n: int, shift: float = 0.0, corr: float = 0.8,
           p_a: float = 0.5) -> pd.DataFrame:
    x = rng.normal(shift, 1.0, n)
    y = corr * x + np.sqrt(1 - corr**2) * rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": y, "c": np.where(rng.random(n) < p_a, "a", "b")})


def test_identical_tables_give_ideal_values() -> None:
    df = _table(np.random.default_rng(0), 300)
    dists = column_distances(df, df)
    assert dists == {"x": 0.0, "y": 0.0, "c": 0.0}
    assert correlation_difference(df, df) == 0.0
    json.dumps(dists, allow_nan=False)


def test_ks_grows_with_shift_and_matches_normal_theory() -> None:
    # seed 1, n = 1000 per table. For shift 0 the KS statistic exceeds 0.087 with probability
    # ~1e-3 (KS critical value 1.95*sqrt(2/n)); for shift 1 the true value is
    # 2*Phi(0.5) - 1 = 0.383 and the tolerance 0.08 is > 3 standard errors (false-failure < 3e-3).
    rng = np.random.default_rng(1)
    real = _table(rng, 1000)
    ks = [column_distances(real, _table(rng, 1000, shift=s))["x"] for s in (0.0, 0.25, 1.0, 3.0)]
    assert ks[0] < 0.087
    assert ks[0] < ks[1] < ks[2] < ks[3]
    assert ks[2] == pytest.approx(0.383, abs=0.08)
    assert ks[3] > 0.85


def test_total_variation_of_categorical_column() -> None:
    # seed 2, n = 2000: true TV between Bernoulli(0.5) and Bernoulli(0.8) is 0.3; the standard
    # error is ~0.014, the tolerance 0.07 is 5 of them (false-failure < 1e-6).
    rng = np.random.default_rng(2)
    tv = column_distances(_table(rng, 2000, p_a=0.5), _table(rng, 2000, p_a=0.8))["c"]
    assert tv == pytest.approx(0.3, abs=0.07)
    # disjoint categories are at the maximal distance 1
    a = pd.DataFrame({"c": ["u", "v"] * 5})
    b = pd.DataFrame({"c": ["w"] * 10})
    assert column_distances(a, b)["c"] == 1.0


def test_association_matrix_known_values() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    df = pd.DataFrame({"x": x, "neg": -2 * x + 1, "c": np.where(x > 0, "p", "q"),
                       "c2": np.where(x > 0, "P", "Q"), "const": np.ones(400)})
    m = association_matrix(df)
    assert np.allclose(m.to_numpy(), m.to_numpy().T)
    assert np.allclose(np.diag(m), 1.0)
    assert m.loc["x", "neg"] == pytest.approx(-1.0)
    assert m.loc["c", "c2"] == pytest.approx(1.0)  # Cramer's V of a relabelled copy
    assert 0.7 < m.loc["x", "c"] < 1.0  # eta of x given its sign: sqrt(2/pi) / 1 ~ 0.80
    assert m.loc["x", "const"] == 0.0


def test_correlation_difference_detects_lost_correlation() -> None:
    # seed 4, n = 2000: each association is estimated within ~0.02 (1 sd), so the mean of the
    # 3 pair differences has sd < 0.02 and the tolerance 0.06 is > 3 sd (false-failure < 3e-3).
    rng = np.random.default_rng(4)
    real, synth = _table(rng, 2000, corr=0.8), _table(rng, 2000, corr=0.0)
    # pairs: (x, y) loses 0.8, (x, c) and (y, c) stay ~0  -> mean ~ 0.8 / 3
    assert correlation_difference(real, synth) == pytest.approx(0.8 / 3, abs=0.06)


def test_c2st_auc() -> None:
    # seed 5. Identical distributions, 300 rows per table: AUC sd ~0.024, tolerance 0.1 > 4 sd
    # (false-failure < 1e-4). Shift of 2 sd (observed 0.89, sd ~0.03) and categorical shift
    # P(a) 0.5 -> 0.95 (Bayes AUC 0.725, observed 0.69, sd ~0.025): thresholds >= 3 sd below
    # (false-failure < 2e-3).
    rng = np.random.default_rng(5)
    real = _table(rng, 300)
    same = classifier_two_sample_auc(real, _table(rng, 300), seed=0)
    shifted = classifier_two_sample_auc(real[:150], _table(rng, 150, shift=2.0), seed=0)
    cat_only = classifier_two_sample_auc(real, _table(rng, 300, p_a=0.95), seed=0)
    assert abs(same - 0.5) < 0.1
    assert shifted > 0.8
    assert cat_only > 0.6  # the one-hot categorical column alone reveals the difference
    assert isinstance(same, float)
    dup = real.to_numpy()[:150, :2]
    assert classifier_two_sample_auc(dup, dup[::-1], seed=0) < 0.3  # duplicates drive AUC below 0.5


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=30),
       st.lists(st.sampled_from("abcd"), min_size=1, max_size=30))
def test_total_variation_is_a_bounded_symmetric_distance(a: list[str], b: list[str]) -> None:
    da, db = pd.DataFrame({"c": a}), pd.DataFrame({"c": b})
    tv = column_distances(da, db)["c"]
    assert 0.0 <= tv <= 1.0
    assert tv == pytest.approx(column_distances(db, da)["c"])


@pytest.mark.parametrize("bad, match", [
    (pd.DataFrame({"x": [], "y": [], "c": []}), "empty"),
    (pd.DataFrame({"x": [1.0, np.nan], "y": [0.0, 1.0], "c": ["a", "b"]}), "NaN"),
    (pd.DataFrame({"x": [1.0, 2.0], "y": [0.0, 1.0], "c": ["a", None]}), "missing"),
    (pd.DataFrame({"x": [1.0, 2.0], "z": [0.0, 1.0], "c": ["a", "b"]}), "columns"),
    (pd.DataFrame({"x": [1.0, 2.0], "y": ["0", "1"], "c": ["a", "b"]}), "categorical"),
])
def test_bad_inputs_raise_data_error(bad: pd.DataFrame, match: str) -> None:
    good = _table(np.random.default_rng(6), 20)
    for fn in (column_distances, correlation_difference):
        with pytest.raises(DataError, match=match):
            fn(good, bad)


def test_bad_array_inputs_raise_data_error() -> None:
    with pytest.raises(DataError, match="column"):
        classifier_two_sample_auc(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(DataError, match="2 columns"):
        correlation_difference(np.zeros((10, 1)), np.zeros((10, 1)))
    with pytest.raises(DataError, match="n_splits"):
        classifier_two_sample_auc(np.zeros((3, 2)), np.ones((3, 2)))
