"""Schemas and encoders: exact round trips (property tests) and clear errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustgen.data.encoders import ImageData, ImageEncoder, TabularEncoder, make_encoder
from trustgen.data.loaders import infer_schema, load_data
from trustgen.data.schema import (
    CategoricalColumn, ImageSchema, NumericColumn, TabularSchema, load_schema, save_schema, schema_from_dict,
)
from trustgen.errors import DataError, SchemaError

SCHEMA = TabularSchema(
    [NumericColumn("age", 18, 100, integer=True), NumericColumn("bmi", 10.0, 60.0),
     CategoricalColumn("smoker", ("no", "yes", "former")), CategoricalColumn("outcome", (0, 1))],
    label="outcome",
)


def frames(schema: TabularSchema):
    cols = {}
    for c in schema.columns:
        if isinstance(c, NumericColumn):
            cols[c.name] = (st.integers(int(c.low), int(c.high)) if c.integer
                            else st.floats(c.low, c.high, allow_nan=False, allow_infinity=False))
        else:
            cols[c.name] = st.sampled_from(c.categories)
    order = [c.name for c in schema.columns]
    return st.lists(st.fixed_dictionaries(cols), min_size=1, max_size=30).map(lambda rows: pd.DataFrame(rows)[order])


@settings(max_examples=60, deadline=None)
@given(frames(SCHEMA))
def test_tabular_round_trip_is_exact(df):
    enc = TabularEncoder(SCHEMA)
    x, y = enc.transform(df)
    assert x.shape == (len(df), enc.dim) and x.min() >= -1 and x.max() <= 1
    back = enc.inverse_transform(x, y)
    assert list(back.columns) == list(df.columns)
    assert back["age"].tolist() == df["age"].tolist()
    assert back["smoker"].tolist() == df["smoker"].tolist()
    assert back["outcome"].tolist() == df["outcome"].tolist()
    np.testing.assert_allclose(back["bmi"].to_numpy(), df["bmi"].to_numpy(), rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.floats(-5, 5), st.floats(0.1, 300),
       st.integers(1, 20), st.integers(0, 10_000))
def test_image_round_trip_is_exact(c, h, w, low, span, n, seed):
    s = ImageSchema(c, h, w, low, low + span, tuple("abc"))
    rng = np.random.default_rng(seed)
    data = ImageData(rng.uniform(s.low, s.high, (n, c, h, w)), rng.integers(0, 3, n))
    x, y = ImageEncoder(s).transform(data)
    assert x.min() >= -1 - 1e-12 and x.max() <= 1 + 1e-12
    back = ImageEncoder(s).inverse_transform(x, y)
    np.testing.assert_allclose(back.x, data.x, rtol=0, atol=1e-9 * span)
    assert (back.y == data.y).all()


def test_decoding_never_leaves_the_domain():
    enc = TabularEncoder(SCHEMA)
    out = enc.inverse_transform(np.random.default_rng(0).normal(0, 5, (200, enc.dim)), np.zeros(200, int))
    assert out["age"].between(18, 100).all() and out["bmi"].between(10, 60).all()
    assert set(out["smoker"]) <= {"no", "yes", "former"}


def good_frame():
    return pd.DataFrame({"age": [30, 40], "bmi": [20.5, 30.0], "smoker": ["no", "yes"], "outcome": [0, 1]})


@pytest.mark.parametrize("mutate, exc, words", [
    (lambda d: d.assign(bmi=[np.nan, 1.0]), DataError, "NaN"),
    (lambda d: d.assign(bmi=[np.inf, 20.0]), DataError, "NaN/inf"),
    (lambda d: d.assign(bmi=[5.0, 20.0]), DataError, "outside the declared domain"),
    (lambda d: d.assign(age=[30.5, 40]), DataError, "integer"),
    (lambda d: d.assign(smoker=["no", "sometimes"]), DataError, "not declared categories"),
    (lambda d: d.assign(outcome=[0, 2]), DataError, "not declared categories"),
    (lambda d: d.drop(columns=["outcome"]), SchemaError, "label column 'outcome' is missing"),
    (lambda d: d.drop(columns=["bmi"]), SchemaError, "missing ['bmi']"),
    (lambda d: d.assign(extra=[1, 2]), SchemaError, "not in schema ['extra']"),
    (lambda d: d.iloc[:0], DataError, "empty"),
    (lambda d: d.assign(bmi=["a", "20"]), DataError, "non-numeric"),
])
def test_bad_tabular_input_raises_documented_error(mutate, exc, words):
    with pytest.raises(exc, match=None) as info:
        TabularEncoder(SCHEMA).transform(mutate(good_frame()))
    assert words in str(info.value)


@pytest.mark.parametrize("data, words", [
    (ImageData(np.zeros((3, 1, 8, 7)), np.zeros(3, int)), "shape"),
    (ImageData(np.zeros((3, 8, 8)), np.zeros(3, int)), "x[:, None]"),
    (ImageData(np.full((3, 1, 8, 8), np.nan), np.zeros(3, int)), "NaN"),
    (ImageData(np.full((3, 1, 8, 8), 17.0), np.zeros(3, int)), "outside the declared range"),
    (ImageData(np.zeros((0, 1, 8, 8)), np.zeros(0, int)), "empty"),
    (ImageData(np.zeros((3, 1, 8, 8)), None), "no labels"),
    (ImageData(np.zeros((3, 1, 8, 8)), np.array([0, 1, 10])), "outside 0..9"),
    (ImageData(np.zeros((3, 1, 8, 8)), np.array([0, 1])), "3 images but 2 labels"),
])
def test_bad_image_input_raises_documented_error(data, words):
    s = ImageSchema(1, 8, 8, 0, 16, tuple(str(i) for i in range(10)))
    with pytest.raises(DataError) as info:
        ImageEncoder(s).transform(data)
    assert words in str(info.value)


@pytest.mark.parametrize("build, words", [
    (lambda: NumericColumn("x", 1, 1), "low < high"),
    (lambda: NumericColumn("x", 0, float("inf")), "finite"),
    (lambda: CategoricalColumn("c", ("a",)), "at least 2"),
    (lambda: CategoricalColumn("c", (1, "1")), "duplicate"),
    (lambda: TabularSchema([NumericColumn("x", 0, 1)], label="y"), "not among"),
    (lambda: TabularSchema([NumericColumn("x", 0, 1), NumericColumn("y", 0, 1)], label="y"), "categorical"),
    (lambda: ImageSchema(0, 8, 8), "positive"),
    (lambda: schema_from_dict({"kind": "tabular", "columns": [{"name": "a", "type": "float"}]}), "unknown type"),
    (lambda: schema_from_dict({"kind": "audio"}), "unknown schema kind"),
])
def test_malformed_schema_is_refused(build, words):
    with pytest.raises(SchemaError) as info:
        build()
    assert words in str(info.value)


@pytest.mark.parametrize("schema", [SCHEMA, ImageSchema(3, 28, 28, 0, 255, ("cat", "dog"))])
def test_schema_json_round_trip(tmp_path, schema):
    save_schema(schema, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["kind"] == schema.kind
    assert load_schema(tmp_path / "s.json").to_dict() == schema.to_dict()


def test_user_file_without_schema_is_refused(tmp_path):
    good_frame().to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(SchemaError, match="schema infer"):
        load_data(tmp_path / "d.csv")


def test_csv_and_npz_load_with_schema(tmp_path):
    good_frame().to_csv(tmp_path / "d.csv", index=False)
    save_schema(SCHEMA, tmp_path / "s.json")
    df, s = load_data(tmp_path / "d.csv", tmp_path / "s.json")
    assert len(df) == 2 and s.label == "outcome"
    np.savez(tmp_path / "i.npz", x=np.ones((4, 1, 8, 8)), y=np.arange(4))
    img, _ = load_data(tmp_path / "i.npz", ImageSchema(1, 8, 8, 0, 16, tuple("0123")))
    assert img.x.shape == (4, 1, 8, 8)


def test_inferred_schema_is_marked_data_derived_and_fits_the_data():
    df = good_frame()
    s = infer_schema(df, label="outcome")
    assert s.source == "data-derived"
    make_encoder(s).validate(df)
    assert infer_schema(ImageData(np.random.rand(5, 1, 4, 4), np.arange(5))).source == "data-derived"


@pytest.mark.parametrize("name, kind", [("digits", "image"), ("breast_cancer", "tabular"), ("randhie", "tabular")])
def test_builtin_datasets_load_and_fit_their_declared_schema(name, kind):
    data, schema = load_data(name)
    assert schema.kind == kind and schema.source == "declared" and schema.n_classes >= 2
    x, y = make_encoder(schema).transform(data)
    assert np.isfinite(x).all() and len(x) == len(y) > 500


def test_category_index_is_the_label_index_map_of_columns_and_schemas():
    from trustgen.data.schema import category_index

    assert category_index(SCHEMA.classes) == SCHEMA.label_column.index_of() == {"0": 0, "1": 1}
    assert category_index(ImageSchema(1, 8, 8, classes=("a", "b")).classes) == {"a": 0, "b": 1}
    assert category_index(None) == {}  # an unconditional schema has no classes


def test_an_integer_column_decodes_within_the_whole_values_of_its_bounds():
    """Bounds [0.5, 3.5] hold 1, 2, 3: the range's ends decode to 1 and 3 (clipping, then
    rounding half to even, gave 0 and 4, outside the bounds)."""
    enc = make_encoder(TabularSchema([NumericColumn("q", 0.5, 3.5, integer=True)]))
    assert enc.inverse_transform(np.array([[-1.0], [0.0], [1.0]]))["q"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("low, high, reason", [(0, 1e20, "2\\^53"), (-1e19, 0, "2\\^53"), (0.2, 0.8, "no whole number")])
def test_an_integer_column_a_float_cannot_hold_or_without_whole_values_is_refused(low, high, reason):
    """Beyond 2^53 an integer column's values wrapped to -2^63 when decoded; bounds holding no
    whole number cannot hold an integer column's values. Both are refused when declared."""
    with pytest.raises(SchemaError, match=reason):
        NumericColumn("n", low, high, integer=True)
    NumericColumn("n", low, high)  # as a plain number: fine


def test_a_drafted_schema_makes_integers_beyond_2_to_53_plain_numbers():
    """Nanosecond timestamps (int64 near 1.7e18) are drafted as numbers, not refused."""
    s = infer_schema(pd.DataFrame({"t": 1_700_000_000_000_000_000 + np.arange(50, dtype=np.int64) * 10**9,
                                   "k": np.arange(50)}))
    assert not s.column("t").integer and s.column("k").integer
