"""The constraint language: JSON round trips for every kind, constraints files with TorchScript
modules (paths relative to the file), and a clear ConfigError for every malformed file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sampling"))
from tiny_runs import IMAGES, TABLE, make_run  # noqa: E402

from trustgen.constraints.language import (  # noqa: E402
    Allowed, Classifier, ConstraintSet, Equals, Function, Implies, Linear, PixelMass, Range,
    constraint_from_dict, load_constraints,
)
from trustgen.constraints.space import Region, Space  # noqa: E402
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema  # noqa: E402
from trustgen.errors import ConfigError  # noqa: E402
from trustgen.sampling.constrained import ConstrainedSampler  # noqa: E402

# saving and loading modules: torch marks torch.jit deprecated, and it still is the file format
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")

# a table with two numbers, one category and a label (TABLE has one number only)
TWO = TabularSchema([NumericColumn("a", 0, 10), NumericColumn("b", 0, 10, integer=True),
                     CategoricalColumn("c", ("x", "y", "z")), CategoricalColumn("label", ("no", "yes"))],
                    label="label")

# ---------------------------------------------------------------------------------------------
# round trips
ROUND_TRIP = [
    Range("a", low=1),
    Range("a", high=9.5),
    Range("a", low=0, high=5, hard=False),
    Range("pixels", low=1.0, high=8.0, region=Region(1, 5, 2, 7, (0,))),
    Range("pixels", high=8.0, region=Region(bottom=4)),
    Linear({"a": 1, "b": -1}, "<=", 0),
    Linear({"a": 0.5}, ">=", -2.25, hard=False),
    Linear({"a": 1, "b": 1}, "==", 7),
    PixelMass(high=3.0),
    PixelMass(low=1.0, high=2.0, region=Region(0, 4, 0, 4), statistic="sum"),
    PixelMass(low=0.5, region=Region(2, 3, 2, 3, (0,)), hard=False),
    Allowed("c", ("x", "z")),
    Allowed("label", ("yes",), hard=False),
    Allowed("label", (3, 4)),
    Equals("a", 2.5),
    Equals("c", "y"),
    Equals("label", 7, hard=False),
    Implies(Equals("c", "x"), Range("a", high=3)),
    Implies(Range("a", low=5), Implies(Allowed("c", ("y",)), Linear({"a": 1, "b": 1}, "<=", 12))),
]


@pytest.mark.parametrize("c", ROUND_TRIP, ids=lambda c: c.describe())
def test_each_kind_round_trips_through_json(c):
    cs = ConstraintSet([c])
    assert ConstraintSet.from_dict(cs.to_dict()) == cs
    text = json.dumps(cs.to_dict())  # the dict is plain JSON
    assert ConstraintSet.from_dict(json.loads(text)) == cs
    assert constraint_from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert ConstraintSet.from_dict([c.to_dict()]) == cs  # a bare list is accepted too


def test_a_whole_set_round_trips_and_a_changed_one_does_not_compare_equal():
    cs = ConstraintSet(ROUND_TRIP)
    back = ConstraintSet.from_dict(json.loads(json.dumps(cs.to_dict())))
    assert back == cs and back.to_dict() == cs.to_dict()
    changed = ConstraintSet(ROUND_TRIP[:-1] + [Implies(Range("a", low=5), Range("a", high=3))])
    assert changed != cs  # equality compares content: a round trip that lost something would fail
    assert ConstraintSet([Range("a", low=1)]) != ConstraintSet([Range("a", low=1, hard=False)])


# ---------------------------------------------------------------------------------------------
# files with TorchScript modules
class Logits(torch.nn.Module):
    """Two-class logits from a table's units: class 1 when a > 4."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        s = 2.0 * (u[:, 0] - 4.0)
        return torch.stack([-s, s], 1)


class AtMost(torch.nn.Module):
    """g(u) = u[:, 0] - 3: holds where a <= 3."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u[:, 0] - 3.0


def _write_file(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    torch.jit.save(torch.jit.script(Logits()), str(tmp_path / "models" / "clf.pt"))
    torch.jit.save(torch.jit.script(AtMost()), str(tmp_path / "models" / "g.pt"))
    rules = {"constraints": [
        {"kind": "range", "column": "a", "low": 0.5},
        {"kind": "classifier", "module": "models/clf.pt", "target": 1, "threshold": 0.6},
        {"kind": "function", "module": "models/g.pt", "name": "a_at_most_3"},
        {"kind": "implies", "if": {"kind": "equals", "column": "c", "value": "x"},
         "then": {"kind": "linear", "terms": {"a": 1, "b": 1}, "op": "<=", "bound": 9}},
    ]}
    path = tmp_path / "rules" / "set.json"
    path.parent.mkdir()
    # the modules' paths are relative to the JSON file's directory
    for r in rules["constraints"]:
        if "module" in r:
            r["module"] = "../" + r["module"]
    path.write_text(json.dumps(rules))
    return path


def test_load_constraints_reads_modules_relative_to_the_file(tmp_path, monkeypatch):
    path = _write_file(tmp_path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the file, not to the working directory
    cs = load_constraints(path)
    kinds = [type(c) for c in cs.constraints]
    assert kinds == [Range, Classifier, Function, Implies]
    clf, fn = cs.constraints[1], cs.constraints[2]
    assert (clf.target, clf.threshold, clf.hard, clf.path) == (1, 0.6, False, "../models/clf.pt")  # soft default
    assert (fn.name, fn.hard, fn.path) == ("a_at_most_3", True, "../models/g.pt")
    # the loaded modules compute what the saved ones did
    u = torch.tensor([[1.0, 2.0, 1, 0, 0], [6.0, 3.0, 0, 1, 0]], dtype=torch.float64)
    assert torch.allclose(fn.fn(u), AtMost()(u))
    assert torch.allclose(clf.model(u), Logits()(u))
    # and they save back to the same JSON (module paths as written; the classifier's default,
    # soft, written out)
    expected = json.loads(path.read_text())
    expected["constraints"][1]["hard"] = False
    assert cs.to_dict() == expected
    again = ConstraintSet.from_dict(cs.to_dict(), base=path.parent)
    assert again.to_dict() == cs.to_dict()


def test_learned_constraints_from_a_file_act_on_samples(tmp_path):
    """The function constraint a <= 3 (hard) is met by every sample (checked here on the data);
    the classifier (soft) is reported."""
    cs = load_constraints(_write_file(tmp_path))
    run = make_run("diffusion", TWO)
    batch = ConstrainedSampler(run, cs, method="projection", budget=2000).sample(12, seed=3)
    a = batch.data["a"].to_numpy(dtype=np.float64)
    b = batch.data["b"].to_numpy(dtype=np.float64)
    assert (a <= 3.0).all() and (a >= 0.5).all()
    on = batch.data["c"].to_numpy() == "x"
    assert (a[on] + b[on] <= 9).all()
    r = batch.constraint_report
    assert "p(class 1) >= 0.6" in r.soft and "p(class 1) >= 0.6" in r.soft_satisfied
    assert 0.0 <= r.soft_satisfied["p(class 1) >= 0.6"] <= 1.0
    assert "a_at_most_3(x) <= 0" in r.hard


def test_saving_a_learned_constraint_needs_its_path():
    with pytest.raises(ConfigError, match="path"):
        ConstraintSet([Function(AtMost())]).to_dict()
    with pytest.raises(ConfigError, match="path"):
        Classifier(Logits(), 1, 0.5).to_dict()


# ---------------------------------------------------------------------------------------------
# malformed constraints: a ConfigError that says what is wrong
MALFORMED = [
    ({"kind": "ranges", "column": "a", "low": 0}, "unknown kind 'ranges'"),
    ({"column": "a", "low": 0}, "unknown kind None"),
    ({"kind": "range", "column": "a", "low": 0, "hihg": 3}, "unknown keys ['hihg']"),
    ({"kind": "linear", "terms": {"a": 1}, "op": "<="}, "missing ['bound']"),
    ({"kind": "allowed", "column": "c"}, "missing ['categories']"),
    ({"kind": "implies", "if": {"kind": "equals", "column": "c", "value": "x"}}, "missing ['then']"),
    ({"kind": "classifier", "module": "m.pt", "target": 1}, "missing ['threshold']"),
    ({"kind": "range", "column": "a", "low": "0"}, "range low must be a finite number"),
    ({"kind": "range", "column": "a", "low": True}, "range low must be a finite number"),
    ({"kind": "range", "column": "a"}, "give low, high or both"),
    ({"kind": "range", "column": "a", "low": 5, "high": 1}, "low 5 > high 1"),
    ({"kind": "range", "column": 3, "low": 0}, "column name must be a non-empty string"),
    ({"kind": "linear", "terms": [["a", 1]], "op": "<=", "bound": 1}, "terms must be an object"),
    ({"kind": "linear", "terms": {"a": "1"}, "op": "<=", "bound": 1}, "coefficient of 'a'"),
    ({"kind": "linear", "terms": {"a": 1}, "op": "<", "bound": 1}, "op must be one of"),
    ({"kind": "linear", "terms": {"a": 1}, "op": "<=", "bound": None}, "bound must be a finite number"),
    ({"kind": "linear", "terms": {}, "op": "<=", "bound": 1}, "needs terms"),
    ({"kind": "allowed", "column": "c", "categories": "x"}, "categories must be a non-empty list"),
    ({"kind": "allowed", "column": "c", "categories": []}, "categories must be a non-empty list"),
    ({"kind": "range", "column": "a", "low": 0, "hard": "yes"}, "'hard' must be true or false"),
    ({"kind": "pixel_mass", "high": 3, "statistic": "median"}, "statistic must be 'mean' or 'sum'"),
    ({"kind": "pixel_mass", "high": 3, "region": [0, 4]}, "region must be an object"),
    ({"kind": "pixel_mass", "high": 3, "region": {"top": 1.5}}, "region top must be an integer"),
    ({"kind": "pixel_mass", "high": 3, "region": {"rows": 2}}, "region must be an object with keys"),
    ({"kind": "pixel_mass", "high": 3, "region": {"channels": 0}}, "channels must be a list"),
    ({"kind": "classifier", "module": "m.pt", "target": 1, "threshold": 1.5}, None),  # no file either
    ({"kind": "implies", "if": {"kind": "nope"}, "then": {"kind": "equals", "column": "c", "value": "x"}},
     "unknown kind 'nope'"),
    ("range a <= 3", "a constraint is a JSON object"),
]


@pytest.mark.parametrize("item, words", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_malformed_constraints_raise_config_error(item, words, tmp_path):
    path = tmp_path / "rules.json"
    good = {"kind": "range", "column": "a", "low": 0}
    path.write_text(json.dumps({"constraints": [good, item]}))
    with pytest.raises(ConfigError) as e:
        load_constraints(path)
    msg = str(e.value)
    assert msg.startswith("constraint 2"), msg  # it says which constraint of the file
    if words is not None:
        assert words in msg, msg


@pytest.mark.parametrize("text, words", [
    ('{"rules": []}', "unknown keys ['rules']"),
    ('{"constraints": {"kind": "range"}}', "a list of constraint objects"),
    ('{"constraints": [', "not valid JSON"),
    ('"range"', "a list of constraint objects"),
])
def test_malformed_files_raise_config_error(text, words, tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as e:
        load_constraints(path)
    assert words in str(e.value), str(e.value)


def test_a_missing_file_and_a_missing_module_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_constraints(tmp_path / "nowhere.json")
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"constraints": [{"kind": "function", "module": "missing/g.pt"}]}))
    with pytest.raises(ConfigError) as e:
        load_constraints(path)
    assert "cannot load the TorchScript module 'missing/g.pt'" in str(e.value)
    (tmp_path / "junk.pt").write_bytes(b"not a torchscript file")  # a file that is not a module
    path.write_text(json.dumps({"constraints": [{"kind": "classifier", "module": "junk.pt", "target": 0,
                                                 "threshold": 0.5}]}))
    with pytest.raises(ConfigError, match="cannot load the TorchScript module 'junk.pt'"):
        load_constraints(path)


def test_a_classifier_file_with_bad_settings_raises_config_error(tmp_path):
    torch.jit.save(torch.jit.script(Logits()), str(tmp_path / "clf.pt"))
    for settings, words in [({"target": 1, "threshold": 1.5}, "threshold must be in (0, 1)"),
                            ({"target": 1, "threshold": 0}, "threshold must be in (0, 1)"),
                            ({"target": -1, "threshold": 0.5}, "target must be a class index"),
                            ({"target": "1", "threshold": 0.5}, "target must be a class index"),
                            ({"target": 1, "threshold": "high"}, "threshold must be a finite number")]:
        path = tmp_path / "rules.json"
        path.write_text(json.dumps([{"kind": "classifier", "module": "clf.pt", **settings}]))
        with pytest.raises(ConfigError) as e:
            load_constraints(path)
        assert words in str(e.value) and str(e.value).startswith("constraint 1"), str(e.value)


# constraints that parse but do not fit the schema: ConfigError when bound to it (before sampling)
SCHEMA_MISFITS = [
    ("table", {"kind": "range", "column": "dose", "low": 0}, "unknown column 'dose'"),
    ("table", {"kind": "linear", "terms": {"a": 1, "dose": 1}, "op": "<=", "bound": 1}, "unknown column 'dose'"),
    ("table", {"kind": "allowed", "column": "colour", "categories": ["x"]}, "unknown categorical column 'colour'"),
    ("table", {"kind": "allowed", "column": "a", "categories": [1, 2]}, "column 'a' is numeric"),
    ("table", {"kind": "range", "column": "c", "low": 0}, "column 'c' is categorical"),
    ("table", {"kind": "range", "column": "label", "high": 1}, "column 'label' is categorical"),
    ("table", {"kind": "linear", "terms": {"c": 1}, "op": "<=", "bound": 1}, "column 'c' is categorical"),
    ("table", {"kind": "equals", "column": "c", "value": "w"}, "column 'c' has no category 'w'"),
    ("table", {"kind": "allowed", "column": "label", "categories": ["maybe"]}, "no class 'maybe'"),
    ("table", {"kind": "pixel_mass", "high": 3}, "image schemas only"),
    ("table", {"kind": "range", "column": "a", "high": 3, "region": {"top": 1}}, "image schemas only"),
    ("images", {"kind": "range", "column": "pixels", "high": 3, "region": {"top": 5, "bottom": 9}},
     "is not inside the 1 x 8 x 8 image"),
    ("images", {"kind": "pixel_mass", "high": 3, "region": {"left": 4, "right": 4}}, "is not inside"),
    ("images", {"kind": "pixel_mass", "high": 3, "region": {"channels": [1]}}, "is not inside"),
    ("images", {"kind": "range", "column": "a", "high": 3}, "has one column, 'pixels'"),
    ("images", {"kind": "linear", "terms": {"a": 1}, "op": "<=", "bound": 1}, "this is an image schema"),
]


@pytest.mark.parametrize("schema, item, words", SCHEMA_MISFITS, ids=[str(i) for i in range(len(SCHEMA_MISFITS))])
def test_constraints_that_do_not_fit_the_schema_raise_config_error(schema, item, words, tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"constraints": [item]}))
    cs = load_constraints(path)
    run = make_run("vae", TABLE if schema == "table" else IMAGES)
    calls = []
    run.model.generate = lambda *a, **k: calls.append(1)  # nothing may be sampled
    with pytest.raises(ConfigError) as e:
        ConstrainedSampler(run, cs)
    assert words in str(e.value), str(e.value)
    assert not calls
    with pytest.raises(ConfigError):  # the same when compiled directly
        cs.compile(Space(run.schema))
