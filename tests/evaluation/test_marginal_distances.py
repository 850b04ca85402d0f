"""Binned marginal distances: exact values on tables whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import DataError
from trustgen.evaluation.marginal_distances import marginal_distances

SCHEMA = TabularSchema([NumericColumn("a", 0, 10), CategoricalColumn("c", ("x", "y")),
                        CategoricalColumn("y", ("n", "p"))], label="y")


def test_identical_tables_are_at_zero_and_disjoint_ones_at_one():
    real = pd.DataFrame({"a": [0.5, 9.5], "c": ["x", "y"], "y": ["n", "p"]})
    assert marginal_distances(real, real, SCHEMA)["one_way_mean"] == 0.0
    far = pd.DataFrame({"a": [5.5, 5.5], "c": ["x", "x"], "y": ["n", "n"]})
    d = marginal_distances(real, far, SCHEMA)
    # pairs (a, c) and (a, y): disjoint cells (1.0); (c, y): one of the two real cells kept (0.5)
    assert d["one_way"] == {"a": 1.0, "c": 0.5, "y": 0.5} and d["two_way_mean"] == pytest.approx(2.5 / 3)
    assert d["label_rate_real"] == {"n": 0.5, "p": 0.5} and d["label_rate_gap"] == 0.5


def test_a_pair_that_is_shuffled_keeps_its_1_way_but_not_its_2_way_distance():
    """c copies the label in the real table and is independent of it in the synthetic one."""
    rng = np.random.default_rng(0)
    y = rng.choice(["n", "p"], 4000)
    real = pd.DataFrame({"a": rng.uniform(0, 10, 4000), "c": np.where(y == "n", "x", "y"), "y": y})
    synth = real.assign(c=rng.permutation(real["c"].to_numpy()))
    d = marginal_distances(real, synth, SCHEMA)
    assert d["one_way"]["c"] == 0.0 and d["one_way_mean"] == 0.0
    # pair (c, y): real mass on the diagonal only, synthetic spread over 4 cells: TV 0.5 (+- sampling)
    assert abs(d["two_way_mean"] - (0.0 + 0.02 + 0.5) / 3) < 0.03  # pairs (a,c), (a,y) stay within noise


def test_numbers_outside_the_declared_range_fall_in_the_end_bins_and_missing_columns_are_refused():
    real = pd.DataFrame({"a": [0.0, 10.0], "c": ["x", "y"], "y": ["n", "p"]})
    out = real.assign(a=[-5.0, 50.0])
    assert marginal_distances(real, out, SCHEMA)["one_way"]["a"] == 0.0
    with pytest.raises(DataError, match="column 'c' is missing"):
        marginal_distances(real, real.drop(columns="c"), SCHEMA)
