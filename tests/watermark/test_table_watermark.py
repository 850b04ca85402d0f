"""The table watermark: exact null over keys and per key, power after edits, quality, errors.

Statistical tests use fixed seeds (keys ``WatermarkKey.from_seed(i)``, data from
``np.random.default_rng`` with the seeds written below), so they are deterministic. Each
uniformity check is a KS test at level 1e-3 and each false-positive-rate check uses a binomial
99.9% interval, so over a fresh draw of the seeds each would fail with probability about 1e-3
(a false failure rate of under 1% for the file).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, kstest, ks_2samp

from trustgen.data.loaders import load_data
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import ConfigError, DataError, SchemaError
from trustgen.watermark.attacks_table import (TABLE_ATTACKS, add_noise, delete_rows, insert_rows, reorder_columns,
                                              round_values, shuffle_rows, table_attack)
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.stats import binomial_p_value
from trustgen.watermark.table import DEFAULT_STRENGTH, continuous_columns, detect_table, embed_table

KEYS = [WatermarkKey.from_seed(i) for i in range(200)]
ALPHA = 0.05  # the FPR checked empirically under the null
KS_LEVEL = 1e-3


@pytest.fixture(scope="module")
def breast_cancer():
    return load_data("breast_cancer")


def random_table(n: int, seed: int) -> tuple[pd.DataFrame, TabularSchema]:
    """A mixed table: three continuous columns on different ranges, an integer count and a label."""
    rng = np.random.default_rng(seed)
    schema = TabularSchema([NumericColumn("a", 0.0, 1.0), NumericColumn("b", -50.0, 50.0),
                            NumericColumn("c", 0.0, 1e4), NumericColumn("count", 0, 20, integer=True),
                            CategoricalColumn("y", ("no", "yes", "maybe"))], label="y")
    df = pd.DataFrame({"a": rng.beta(2, 5, n), "b": rng.normal(0, 12, n).clip(-50, 50),
                       "c": rng.exponential(2000, n).clip(0, 1e4), "count": rng.integers(0, 21, n),
                       "y": rng.choice(["no", "yes", "maybe"], n)})
    return df, schema


def assert_null(detections: list, what: str, seed: int = 0) -> None:
    """The FPR at ALPHA inside its binomial 99.9% interval, and p-values uniform (KS at KS_LEVEL).

    The KS test sees randomised p-values, ``P(X > c) + V * P(X = c)`` with V uniform: exactly
    uniform under the null, where the binomial's own p-values are discrete (and conservative)
    and would make a KS test on a few hundred trials reject for their steps alone."""
    p_values = np.array([d.p_value for d in detections])
    n = len(p_values)
    v = np.random.default_rng(seed).uniform(size=n)
    rand = np.array([binom.sf(d.counts[0], d.trials, 0.5) + v_ * binom.pmf(d.counts[0], d.trials, 0.5)
                     for d, v_ in zip(detections, v)])
    ks = kstest(rand, "uniform")
    assert ks.pvalue > KS_LEVEL, f"{what}: p-values are not uniform (KS p = {ks.pvalue:.2g})"
    hits = int((p_values <= ALPHA).sum())
    lo, hi = binom.ppf(0.0005, n, ALPHA), binom.isf(0.0005, n, ALPHA)
    assert lo <= hits <= hi, f"{what}: {hits}/{n} false positives at {ALPHA}, outside [{lo}, {hi}]"


# --- the null: a table made without the key ---------------------------------------------------


def test_null_over_keys_is_exact_on_real_random_and_rounded_tables(breast_cancer):
    """p-values of one unwatermarked table against 200 keys are uniform: the dither is uniform
    over keys whatever the values, including values on a coarse grid."""
    bc, bc_schema = breast_cancer
    rnd, rnd_schema = random_table(300, seed=11)
    rounded = round_values(rnd, rnd_schema, 2)
    for name, df, schema in [("breast_cancer", bc.iloc[:200], bc_schema), ("random", rnd, rnd_schema),
                             ("rounded to 2 decimals", rounded, rnd_schema)]:
        assert_null([detect_table(df, schema, k) for k in KEYS], name)


def test_null_for_one_key_over_many_tables_of_grid_data():
    """The per-key null: ONE key, 200 disjoint 200-row tables whose values lie on a 0.01 grid.

    Rounded values fall on a few residues of the lattice ('a' on [0, 1] with step 1e-3 has all
    its values on lattice residue 0), so a dither shared by all rows of a column makes whole
    columns agree or disagree together: the ablation below fails the check that way. The
    watermark's dithers depend on a row feature with some 2^24 values, so tables rarely share
    one. (Checked by hand for 12 further keys: KS p between 0.06 and 0.81.)"""
    df, schema = random_table(40_000, seed=12)
    df = round_values(df, schema, 2)
    key = KEYS[0]
    tables = np.arange(len(df)).reshape(200, 200)
    assert_null([detect_table(df.iloc[rows], schema, key) for rows in tables], "one key, many grid tables")

    # Ablation: one dither per column (the same statistic otherwise) fails the same check.
    cont = continuous_columns(schema)
    u = key.uniform(len(cont), "ablation", 0)
    agree = np.zeros(len(df), dtype=np.int64)
    for j, c in enumerate(cont):
        r = np.mod((df[c.name].to_numpy() - c.low) / (DEFAULT_STRENGTH * (c.high - c.low)) - u[j], 1.0)
        agree += np.minimum(r, 1 - r) < 0.25
    p_const = binomial_p_value(agree[tables].sum(axis=1), 200 * len(cont), 0.5)
    assert kstest(p_const, "uniform").pvalue < KS_LEVEL


def test_duplicate_rows_count_once(breast_cancer):
    """200 copies of one row share their dithers: counting them all would turn one coin flip per
    column into 200 (a mode-collapsed model's table would be 'detected' for half of all keys)."""
    bc, schema = breast_cancer
    copies = pd.concat([bc.iloc[[0]]] * 200, ignore_index=True)
    detections = [detect_table(copies, schema, k) for k in KEYS]
    assert {d.trials for d in detections} == {30}  # one row's worth
    hits = sum(d.p_value <= ALPHA for d in detections)
    assert hits <= binom.isf(0.0005, len(KEYS), ALPHA)


# --- power: a watermarked table after edits ----------------------------------------------------


def test_detected_after_deletion_noise_shuffle_and_column_reorder(breast_cancer):
    bc, schema = breast_cancer
    key = KEYS[3]
    marked = embed_table(bc.iloc[:200], schema, key)
    attacked = reorder_columns(shuffle_rows(add_noise(delete_rows(marked, 0.2, seed=1), schema, DEFAULT_STRENGTH / 10,
                                                      seed=2), seed=3), seed=4)
    d = detect_table(attacked, schema, key)
    assert d.p_value < 1e-6 and d.file_detected
    assert d.trials <= 160 * 30
    wrong = detect_table(attacked, schema, KEYS[4])
    assert not wrong.file_detected and wrong.p_value > 1e-3


def test_detected_after_insertion_rounding_and_a_csv_round_trip(breast_cancer, tmp_path):
    bc, schema = breast_cancer
    key = KEYS[5]
    marked = embed_table(bc.iloc[:200], schema, key)
    mixed = insert_rows(marked, bc.iloc[200:], 0.5, seed=0)  # 100 unwatermarked rows among them
    assert len(mixed) == 300
    assert detect_table(mixed, schema, key).p_value < 1e-6
    assert detect_table(round_values(marked, schema, 3), schema, key).p_value < 1e-6
    marked.to_csv(tmp_path / "t.csv", index=False)
    back = pd.read_csv(tmp_path / "t.csv")
    d = detect_table(back, schema, key)
    assert int(d.counts[0]) == d.trials > 0.8 * 30 * 200  # every trial agrees


def test_rows_and_columns_are_watermarked_independently_of_position(breast_cancer):
    """A row's watermark depends on the row alone: embedding commutes with shuffling rows and
    reordering columns, and detection counts the same agreements either way."""
    bc, schema = breast_cancer
    key = KEYS[6]
    rows = bc.iloc[:100]
    a = shuffle_rows(embed_table(rows, schema, key), seed=9)
    b = embed_table(shuffle_rows(reorder_columns(rows, seed=8), seed=9), schema, key)
    pd.testing.assert_frame_equal(a, b[a.columns])
    da, db = detect_table(a, schema, key), detect_table(b, schema, key)
    assert da.counts[0] == db.counts[0] == da.trials == db.trials


def test_a_single_continuous_column_is_enough():
    """With nothing else in the row, the value's own fine bin (125 of them) varies the dither."""
    schema = TabularSchema([NumericColumn("x", 0.0, 1.0)])
    df = pd.DataFrame({"x": np.random.default_rng(3).uniform(0, 1, 200)})
    key = KEYS[9]
    d = detect_table(add_noise(embed_table(df, schema, key), schema, DEFAULT_STRENGTH / 10, seed=0), schema, key)
    assert 50 < d.trials <= 126 and d.p_value < 1e-6


def test_large_noise_removes_the_watermark(breast_cancer):
    """Noise of two lattice steps spreads the residual over the whole circle: not detected."""
    bc, schema = breast_cancer
    key = KEYS[7]
    noisy = add_noise(embed_table(bc.iloc[:200], schema, key), schema, 2 * DEFAULT_STRENGTH, seed=0)
    assert detect_table(noisy, schema, key).p_value > 1e-6


# --- quality --------------------------------------------------------------------------------------


def test_values_move_little_and_marginals_do_not(breast_cancer):
    bc, schema = breast_cancer
    marked = embed_table(bc, schema, KEYS[8])
    assert marked["diagnosis"].equals(bc["diagnosis"])
    moves = []
    for c in continuous_columns(schema):
        x, y = bc[c.name].to_numpy(), marked[c.name].to_numpy()
        delta = DEFAULT_STRENGTH * (c.high - c.low)
        assert ((y >= c.low) & (y <= c.high)).all()
        move = np.abs(y - x) / delta
        # At most one step, except within two steps of a bound (a sliver end bin may hold no point).
        near_bound = np.minimum(x - c.low, c.high - x) < 2 * delta
        assert move.max() <= 2 + 1e-9 and (move[~near_bound] <= 1 + 1e-9).all()
        moves.append(move)
        assert abs(float((y - x).mean())) < delta / 10
        # KS distance under 0.015 (8 of 569 rows: the data are recorded to a grid finer than
        # delta, and a value crosses its grid neighbours), plus the share of values tied at one
        # point (13 zeros of 'mean concavity' at its lower bound all move up, KS 0.023).
        ties = max(np.unique(x, return_counts=True)[1]) / len(x)
        assert ks_2samp(x, y, method="asymp").statistic <= ties + 0.015
    assert (np.concatenate(moves) > 0.5 + 1e-9).mean() < 0.05  # most values move by half a step at most


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20), st.integers(0, 10))
def test_embedding_stays_in_bounds_is_idempotent_and_fully_detected(xs, seed):
    schema = TabularSchema([NumericColumn("x", 0.0, 1.0), NumericColumn("z", -3.0, 7.0)])
    df = pd.DataFrame({"x": xs, "z": np.linspace(-3, 7, len(xs))})
    key = WatermarkKey.from_seed(seed)
    once = embed_table(df, schema, key)
    for c in continuous_columns(schema):
        x, y = df[c.name].to_numpy(), once[c.name].to_numpy()
        assert ((y >= c.low) & (y <= c.high)).all()
        assert (np.abs(y - x) <= 2 * DEFAULT_STRENGTH * (c.high - c.low) * (1 + 1e-9)).all()
    np.testing.assert_allclose(embed_table(once, schema, key).to_numpy(float), once.to_numpy(float), rtol=0,
                               atol=1e-12)
    d = detect_table(once, schema, key)
    assert d.counts[0] == d.trials


# --- errors ---------------------------------------------------------------------------------------


def test_errors_teach(breast_cancer):
    bc, schema = breast_cancer
    key = KEYS[0]
    only_ints = TabularSchema([NumericColumn("n", 0, 9, integer=True), CategoricalColumn("y", ("a", "b"))])
    with pytest.raises(ConfigError, match="no column a table watermark can use"):
        embed_table(pd.DataFrame({"n": [1], "y": ["a"]}), only_ints, key)
    with pytest.raises(SchemaError, match="mean radius"):
        detect_table(bc.drop(columns=["mean radius"]), schema, key)
    nan = bc.copy()
    nan.loc[3, "mean area"] = np.nan
    with pytest.raises(DataError, match="'mean area'.*NaN"):
        embed_table(nan, schema, key)
    with pytest.raises(DataError, match="'mean area'.*NaN"):
        detect_table(nan, schema, key)
    no_label = bc.copy()
    no_label.loc[0, "diagnosis"] = None
    with pytest.raises(DataError, match="'diagnosis'.*missing"):
        detect_table(no_label, schema, key)
    outside = bc.copy()
    outside.loc[0, "mean radius"] = 99.0
    with pytest.raises(DataError, match="outside the declared domain"):
        embed_table(outside, schema, key)
    assert detect_table(outside, schema, key).p_value > 0  # an edit may push values out: still testable
    with pytest.raises(DataError, match="empty"):
        detect_table(bc.iloc[:0], schema, key)
    with pytest.raises(DataError, match="DataFrame"):
        embed_table(bc.to_numpy(), schema, key)
    for bad in (0, -1e-3, 0.5, float("nan"), True):
        with pytest.raises(ConfigError, match="strength"):
            embed_table(bc, schema, key, strength=bad)
    with pytest.raises(ConfigError, match="false-positive rate"):
        detect_table(bc, schema, key, fpr=0.0)


def test_attack_registry_and_strength_checks(breast_cancer):
    bc, schema = breast_cancer
    assert set(TABLE_ATTACKS) == {"delete_rows", "insert_rows", "shuffle_rows", "reorder_columns", "add_noise",
                                  "round_values"}
    for name, attack in TABLE_ATTACKS.items():
        out = attack(bc, schema, seed=0, other=bc.iloc[:50])
        assert sorted(out.columns) == sorted(bc.columns) and list(out.index) == list(range(len(out)))
    assert len(TABLE_ATTACKS["delete_rows"](bc, schema, seed=0)) == len(bc) - round(0.2 * len(bc))
    with pytest.raises(KeyError, match="known: delete_rows"):
        table_attack("blur")
    with pytest.raises(ConfigError, match="other="):
        table_attack("insert_rows")(bc, schema, seed=0)
    with pytest.raises(ConfigError, match="delete_rows"):
        delete_rows(bc, 1.5, seed=0)
    with pytest.raises(ConfigError, match="add_noise"):
        add_noise(bc, schema, -0.1, seed=0)
    noisy = add_noise(bc, schema, 0.5, seed=0)  # heavy noise stays inside the bounds
    for c in continuous_columns(schema):
        assert noisy[c.name].between(c.low, c.high).all()


def test_values_at_a_bound_are_left_alone_and_not_counted():
    """A clipping generator puts many values exactly at a bound; moving them inside is what a
    classifier would see first (AUC 0.995 on a VAE's samples before), so they stay."""
    schema = TabularSchema([NumericColumn("a", 0.0, 1.0), NumericColumn("b", 0.0, 1.0)])
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": np.clip(rng.normal(0.5, 0.5, 400), 0, 1), "b": rng.uniform(0, 1, 400)})
    key = WatermarkKey.from_seed(3)
    out = embed_table(df, schema, key)
    ends = (df["a"] == 0) | (df["a"] == 1)
    assert ends.sum() > 50 and (out.loc[ends, "a"] == df.loc[ends, "a"]).all()
    d = detect_table(out, schema, key)
    # ends uncounted: every counted trial agrees (counted but unmarked, half of them would not)
    assert d.trials <= 800 - ends.sum() and d.counts[0] == d.trials and d.file_detected
