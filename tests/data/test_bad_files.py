"""Bad schema and data files are refused in one line that names the problem (issue 14, items 6-7).

Each case calls the library and checks the error type and what its message names; a
representative subset also goes through ``trustgen train``, which must exit 2 with exactly one
line on stderr, no traceback, and no run directory.
"""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from trustgen.cli import main
from trustgen.data.encoders import ImageData, ImageEncoder, TabularEncoder
from trustgen.data.loaders import load_data, read_data_file
from trustgen.data.schema import (
    CategoricalColumn, ImageSchema, NumericColumn, TabularSchema, load_schema, save_schema, schema_from_dict,
)
from trustgen.errors import DataError, SchemaError

TABLE = TabularSchema([NumericColumn("age", 18, 100, integer=True), CategoricalColumn("y", ("no", "yes"))], label="y")
IMAGE = ImageSchema(1, 2, 2, 0, 1, ("a", "b"))


def tabular(**changes) -> dict:
    """The tabular schema's dict with top-level ``changes`` (None deletes a key)."""
    d = copy.deepcopy(TABLE.to_dict())
    for k, v in changes.items():
        d.pop(k) if v is None else d.__setitem__(k, v)
    return d


def column(i: int = 0, **changes) -> dict:
    """The tabular schema's dict with column ``i`` changed (None deletes a key)."""
    d = tabular()
    for k, v in changes.items():
        d["columns"][i].pop(k) if v is None else d["columns"][i].__setitem__(k, v)
    return d


def image(**changes) -> dict:
    d = IMAGE.to_dict()
    d.update(changes)
    return d


def train_cli(data, schema, out, capsys) -> tuple[int, str]:
    """``trustgen train`` on files; returns its exit code and stderr."""
    rc = main(["train", "--data", str(data), "--schema", str(schema), "--model", "vae", "--steps", "1",
               "--out", str(out), "--no-progress"])
    return rc, capsys.readouterr().err


def assert_one_line_refusal(rc: int, err: str, out, *words: str) -> None:
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("trustgen: error:"), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()  # nothing half-written


def good_csv(path) -> None:
    pd.DataFrame({"age": [30, 40, 50], "y": ["no", "yes", "no"]}).to_csv(path, index=False)


# ------------------------------------------------------------------------------------ schema JSON

@pytest.mark.parametrize("d, words", [
    (tabular(lable="y", label=None), ["unknown key 'lable' in the schema", "known: kind, source, label", "did you mean 'label'?"]),
    (column(hihg=100, high=None), ["unknown key 'hihg' in column 'age'", "did you mean 'high'?"]),
    (column(integer="yes"), ["unknown key 'integer' in column 'age'", '"type": "integer"']),
    (column(1, low=0), ["unknown key 'low' in column 'y'", "known: name, type, categories"]),
    (image(chanels=1), ["unknown key 'chanels' in the schema", "did you mean 'channels'?"]),
    (tabular(source="dp", dp={"epsilon": 1.0, "mechanism": []}),
     ["unknown key 'mechanism' in the schema's \"dp\" block", "did you mean 'mechanisms'?"]),
    (tabular(source="trust-me"), ["unknown schema source 'trust-me'"]),
    (column(low="eighteen"), ["column 'age' of the schema: 'low' must be a finite number", '"eighteen" (a string)']),
    (column(low=True), ["'low' must be a finite number", "true"]),
    (column(high=float("nan")), ["'high' must be a finite number"]),
    (column(high=float("inf")), ["'high' must be a finite number"]),
    (column(1, categories="no,yes"), ["column 'y' of the schema: 'categories' must be a list", '"no,yes"']),
    (column(1, categories=["no", ["yes"]]), ["'categories' must be a list of items", "item 2"]),
    (column(name=3), ["column 1 of the schema: 'name' must be a string"]),
    (column(type=None), ["column 'age' of the schema has no 'type'"]),
    (column(type="float"), ["unknown type 'float'", "known: numeric, integer, categorical"]),
    (column(high=None), ["column 'age' of the schema has no 'high' (a finite number)"]),
    (image(channels=2.5), ["'channels' must be a whole number, got 2.5"]),
    (image(height=True), ["'height' must be a whole number"]),
    (image(low="0"), ["'low' must be a finite number"]),
    (image(classes="a,b"), ["'classes' must be a list or null"]),
    (tabular(columns=["age", "y"]), ["column 1 of the schema must be a JSON object", '"age"']),
    (tabular(columns={"age": {}}), ["'columns' must be a list"]),
    (tabular(columns=[]), ["at least one column"]),
    (tabular(label="Y"), ["label column 'Y' is not among", "did you mean 'y'?"]),
    (tabular(label=1), ["'label' must be a string or null"]),
    (tabular(columns=[column()["columns"][0]] * 2 + [column()["columns"][1]]), ["duplicate column names", "['age']"]),
    (tabular(kind=None), ['the schema has no "kind"']),
    (tabular(kind="audio"), ["unknown schema kind 'audio'"]),
    (tabular(source="dp", dp={"epsilon": "1"}), ["epsilon must be a finite number > 0, got '1'"]),
    (tabular(source="dp", dp={"epsilon": True}), ["epsilon must be a finite number > 0"]),
    (tabular(source="dp", dp={}), ["epsilon must be a finite number > 0, got None"]),
    (tabular(source="dp", dp={"epsilon": 1.0, "fixed_seed": "no"}), ["'fixed_seed' must be true or false"]),
    (tabular(source="dp", dp={"epsilon": 1.0, "mechanisms": ["laplace"]}), ["'mechanisms' must be a list of items"]),
    ([TABLE.to_dict()], ["the schema must be a JSON object", "got a list"]),
])
def test_a_malformed_schema_names_the_field(d, words):
    with pytest.raises(SchemaError) as info:
        schema_from_dict(d)
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, (w, message)


def test_every_schema_trustgen_writes_reads_back_unchanged(tmp_path):
    from trustgen.data.schema import DomainSpend

    dp = TabularSchema(TABLE.columns, "y", "dp", DomainSpend(1.0, ({"column": "age", "mechanism": "m", "epsilon": 0.5,
                                                                     "candidates": 101},), True))
    for s in (TABLE, IMAGE, dp, ImageSchema(3, 4, 4, 0, 255)):
        save_schema(s, tmp_path / "s.json")
        assert load_schema(tmp_path / "s.json").to_dict() == s.to_dict()
    assert schema_from_dict(image(channels=1.0)).channels == 1  # "1.0" is a whole number too


def test_a_byte_order_mark_is_accepted(tmp_path):
    (tmp_path / "s.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(TABLE.to_dict()).encode())
    assert load_schema(tmp_path / "s.json").to_dict() == TABLE.to_dict()


def _png(path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


@pytest.mark.parametrize("write, words", [
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)), ["is not a JSON text file (not UTF-8"]),
    (_png, ["is not a JSON text file (not UTF-8: byte 0 is b'\\x89')"]),
    (lambda p: torch.save({"w": torch.zeros(2)}, p), ["is not a JSON text file"]),
    (lambda p: p.write_text('{"kind": "tabular", "columns": ['), ["is not valid JSON", "damaged or truncated"]),
    (lambda p: p.write_text(""), ["is not valid JSON"]),
    (lambda p: p.write_text("[1, 2]"), ["must hold a JSON object {...} at its top level, got a list"]),
    (lambda p: p.write_text('"tabular"'), ["at its top level, got a string"]),
    (lambda p: p.write_text("[" * 100_000), ["is not valid JSON"]),
])
def test_a_schema_file_that_is_not_a_json_object_is_refused_in_one_line(tmp_path, write, words):
    write(tmp_path / "s.json")
    with pytest.raises(SchemaError) as info:
        load_schema(tmp_path / "s.json")
    message = str(info.value)
    assert "\n" not in message and "schema file" in message
    for w in words:
        assert w in message, (w, message)


@pytest.mark.parametrize("schema, words", [
    (tabular(lable="y", label=None), ["unknown key 'lable'", "did you mean 'label'?"]),
    (column(low="eighteen"), ["'low' must be a finite number"]),
    ("binary", ["is not a JSON text file"]),
    ([1], ["must hold a JSON object"]),
])
def test_cli_refuses_a_bad_schema_in_one_line_before_any_work(tmp_path, capsys, schema, words):
    good_csv(tmp_path / "d.csv")
    if schema == "binary":
        _png(tmp_path / "s.json")
    else:
        (tmp_path / "s.json").write_text(json.dumps(schema))
    rc, err = train_cli(tmp_path / "d.csv", tmp_path / "s.json", tmp_path / "run", capsys)
    assert_one_line_refusal(rc, err, tmp_path / "run", *words)


# ------------------------------------------------------------------------------------ data files

def _pickle_npz(p) -> None:
    p.write_bytes(pickle.dumps({"x": np.zeros((2, 1, 2, 2))}))


def _npy_npz(p) -> None:
    np.save(p.with_suffix(".npy"), np.zeros((2, 1, 2, 2)))
    p.with_suffix(".npy").rename(p)


def _truncated_npz(p) -> None:
    np.savez(p, x=np.zeros((4, 1, 2, 2)), y=np.arange(4) % 2)
    p.write_bytes(p.read_bytes()[:200])


def _corrupted_npz(p) -> None:
    np.savez(p, x=np.zeros((4, 1, 2, 2)), y=np.arange(4) % 2)
    b = bytearray(p.read_bytes())
    b[120] ^= 0xFF  # inside x's data: the zip's CRC check fails
    p.write_bytes(bytes(b))


def _zip_npz(p) -> None:
    import zipfile

    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.npy", "not an array")


@pytest.mark.parametrize("write, words", [
    (lambda p: p.write_bytes("age,y\n30,no\n40,caf\xe9\n".encode("latin-1")),
     ["is not UTF-8 text (line 3 is not)", "save it as UTF-8"]),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256))), ["is not UTF-8 text (line 1"]),
    (lambda p: p.write_text("age,y\n30,no\n40,yes\n50,no\n60,yes,extra\n"),
     ["is not a well-formed CSV (Expected 2 fields in line 5, saw 3)", "quote values"]),
    (lambda p: p.write_text('age,y\n30,"no\n'), ["is not a well-formed CSV (EOF inside string"]),
    (lambda p: p.write_text("age,y\n30,no,1\n40,yes,2\n"), ["have more values than its header has names (2)"]),
    (lambda p: p.write_text("age,y,age\n30,no,31\n40,yes,41\n"), ["names columns ['age'] more than once"]),
    (lambda p: p.write_text("age,y\n"), ["has a header but no rows"]),
    (lambda p: p.write_text(""), ["is empty"]),
])
def test_a_bad_csv_is_refused_naming_the_file(tmp_path, write, words):
    write(tmp_path / "d.csv")
    with pytest.raises(DataError) as info:
        read_data_file(tmp_path / "d.csv")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "d.csv") in message
    for w in words:
        assert w in message, (w, message)


def test_the_header_alone_can_still_be_read(tmp_path):
    (tmp_path / "d.csv").write_text("age,y\n")
    assert list(read_data_file(tmp_path / "d.csv", nrows=0).columns) == ["age", "y"]  # schema infer --epsilon


@pytest.mark.parametrize("write, words", [
    (_pickle_npz, ["is a Python pickle", "np.savez(path, x=images, y=labels)"]),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)), ["is not a NumPy file", "np.savez("]),
    (lambda p: p.write_bytes(b""), ["is empty (0 bytes)"]),
    (_npy_npz, ["is a single NumPy array (.npy format) named .npz", "np.savez("]),
    (_truncated_npz, ["is a damaged zip archive"]),
    (_corrupted_npz, ["array 'x' of", "is damaged"]),
    (_zip_npz, ["member 'x' of", "is not a NumPy array"]),
    (lambda p: np.savez(p, x=np.array([[1.0], [1.0, 2.0]], dtype=object)), ["array 'x' of", "holds Python objects"]),
    (lambda p: np.savez(p, y=np.arange(2)), ["has no array 'x' (found ['y'])"]),
    (lambda p: np.savez(p, x=np.zeros((2, 1, 2, 2), complex)), ["array 'x' of", "got dtype complex128", "x.real"]),
    (lambda p: np.savez(p, x=np.full((2, 1, 2, 2), "a")), ["array 'x' of", "must hold real numbers", "text"]),
    (lambda p: np.savez(p, x=np.zeros((2, 1, 2, 2)), y=np.array(["a", "b"])), ["array 'y' of", "text"]),
])
def test_a_bad_npz_is_refused_and_never_suggests_unpickling(tmp_path, write, words):
    write(tmp_path / "d.npz")
    with pytest.raises(DataError) as info:
        read_data_file(tmp_path / "d.npz")
    message = str(info.value)
    assert "\n" not in message and "allow_pickle" not in message
    for w in words:
        assert w in message, (w, message)


@pytest.mark.parametrize("data, words", [
    (ImageData(np.zeros((2, 1, 2, 2), complex), np.array([0, 1])), ["images must hold real numbers", "complex128"]),
    (ImageData(np.zeros((2, 1, 2, 2), bool), np.array([0, 1])), ["images", "booleans"]),
    (ImageData(np.zeros((2, 1, 2, 2)), np.array([0.5, 1.0])), ["labels must be whole numbers"]),
    (ImageData(np.zeros((2, 1, 2, 2)), np.array(["a", "b"])), ["labels must hold real numbers", "text"]),
    (ImageData(np.zeros((2, 1, 2, 2)), np.array([0, 1j])), ["labels must hold real numbers", "complex"]),
    (ImageData(np.zeros((2, 1, 2, 2)), np.array(1)), ["labels must be a 1-D array"]),
])
def test_images_and_labels_must_be_real_numbers_in_memory_too(data, words):
    with pytest.raises(DataError) as info:
        ImageEncoder(IMAGE).validate(data)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_one_record_is_refused_but_two_are_enough(tmp_path):
    pd.DataFrame({"age": [30], "y": ["no"]}).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(DataError, match="holds 1 record; trustgen needs at least 2"):
        load_data(tmp_path / "one.csv", TABLE)
    np.savez(tmp_path / "one.npz", x=np.zeros((1, 1, 2, 2)), y=np.array([1]))
    with pytest.raises(DataError, match="holds 1 record"):
        load_data(tmp_path / "one.npz", IMAGE)
    pd.DataFrame({"age": [30, 40], "y": ["no", "yes"]}).to_csv(tmp_path / "two.csv", index=False)
    assert len(load_data(tmp_path / "two.csv", TABLE)[0]) == 2
    TabularEncoder(TABLE).transform(pd.DataFrame({"age": [30], "y": ["no"]}))  # encoding one record is fine


@pytest.mark.parametrize("name, write, words", [
    ("d.csv", lambda p: p.write_bytes("age,y\n30,caf\xe9\n".encode("latin-1")), ["not UTF-8"]),
    ("d.csv", lambda p: p.write_text("age,y\n30,no\n40,yes,1\n"), ["Expected 2 fields in line 3, saw 3"]),
    ("d.csv", lambda p: p.write_text("age,y,y\n30,no,no\n40,yes,no\n"), ["more than once"]),
    ("d.csv", lambda p: p.write_text("age,y\n"), ["no rows"]),
    ("d.csv", lambda p: p.write_text("age,y\n30,no\n"), ["at least 2"]),
    ("d.npz", _pickle_npz, ["Python pickle"]),
    ("d.npz", _npy_npz, [".npy format"]),
    ("d.npz", lambda p: np.savez(p, x=np.zeros((2, 1, 2, 2), complex), y=np.array([0, 1])), ["complex"]),
])
def test_cli_refuses_a_bad_data_file_in_one_line(tmp_path, capsys, name, write, words):
    write(tmp_path / name)
    save_schema(TABLE if name.endswith(".csv") else IMAGE, tmp_path / "s.json")
    rc, err = train_cli(tmp_path / name, tmp_path / "s.json", tmp_path / "run", capsys)
    assert_one_line_refusal(rc, err, tmp_path / "run", *words)
    assert "allow_pickle" not in err
