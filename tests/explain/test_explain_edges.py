"""The edges of the explainers that a review found: exported classifiers (which can run code
when loaded, and have no eval switch), integer columns judged as released, inputs without
their label, feature names that collide with result columns, a black box that raises, exact
input values in CLUE's records, and an --out that holds the command's own inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.explain.conftest import SCHEMA, sides
from trustgen.cli import main
from trustgen.constraints.space import Space
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import ConfigError
from trustgen.explain import SchemaClassifier, clue, counterfactual
from trustgen.explain.report import _generator_labels, explain_records
from trustgen.explain.scorer import BlackBoxScorer
from trustgen.explain.search import prepare
from trustgen.pipeline import train
from trustgen.training import TrainConfig


class _OnUnits(torch.nn.Module):
    """A SchemaClassifier's network as a plain module of units (its own forward fixes the batch
    size when exported)."""

    def __init__(self, clf: SchemaClassifier) -> None:
        super().__init__()
        self.net, self.offset, self.scale = clf.net, clf.offset, clf.scale

    def forward(self, u):
        return self.net((u - self.offset) / self.scale)


def _export(module: torch.nn.Module, dim: int, path) -> None:
    if isinstance(module, SchemaClassifier):
        module = _OnUnits(module)
    n = torch.export.Dim("n", min=2)
    torch.export.save(torch.export.export(module.eval(), (torch.zeros(4, dim),), dynamic_shapes=({0: n},)), path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("edges")
    df = sides()
    train(df, "vae", TrainConfig(steps=600, batch_size=64, progress=False, seed=0), schema=SCHEMA, out=d / "run")
    clf = SchemaClassifier(SCHEMA).fit(df, steps=300)
    dim = Space(SCHEMA).dim
    _export(clf, dim, d / "clf.pt2")
    _export(torch.nn.Linear(dim + 1, 2), dim + 1, d / "wide.pt2")  # takes another number of columns
    _export(torch.nn.Linear(dim, 1), dim, d / "one.pt2")  # one output: not a classifier's logits
    df[df["side"] == "L"].iloc[:4].drop(columns="side").to_csv(d / "left.csv", index=False)
    return d


def explain(files, *args, out="out", input="left.csv"):
    return main(["explain", str(files / "run"), "--input", str(files / input), "--out", str(files / out), *args])


def test_an_exported_classifier_needs_trust_then_runs_on_the_gradient_path(files, capsys):
    assert explain(files, "--classifier", str(files / "clf.pt2"), "--target", "R", out="pt2") == 2
    err = capsys.readouterr().err
    assert "can run code" in err and len(err.strip().splitlines()) == 1 and not (files / "pt2").exists()
    assert explain(files, "--classifier", str(files / "clf.pt2"), "--trust-pickle", "--target", "R", "--json",
                   out="pt2") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["attribution"] == "integrated_gradients" and summary["validity"] >= 3 / 4


@pytest.mark.parametrize("name, message", [("wide.pt2", "does not take the run's records"),
                                           ("one.pt2", "expected [2, k] logits")])
def test_an_exported_module_of_the_wrong_shape_is_one_line(files, capsys, name, message):
    assert explain(files, "--classifier", str(files / name), "--trust-pickle", "--target", "1", out="bad") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (files / "bad").exists()


def test_an_input_without_labels_and_a_classifier_of_other_classes_is_refused(files, capsys):
    # three outputs: not the label's two classes, so the run would be conditioned on the inputs' labels
    _export(torch.nn.Linear(Space(SCHEMA).dim, 3), Space(SCHEMA).dim, files / "three.pt2")
    assert explain(files, "--classifier", str(files / "three.pt2"), "--trust-pickle", "--target", "2",
                   out="three") == 2
    err = capsys.readouterr().err
    assert "add the label column 'side'" in err and len(err.strip().splitlines()) == 1
    assert not (files / "three").exists()


def test_the_run_is_conditioned_on_the_target_matched_by_name():
    np.testing.assert_array_equal(_generator_labels(["R", "L"], SCHEMA, np.array([0, 1, 0]), labelled=False),
                                  [1, 0, 1])
    assert _generator_labels(["0", "1"], SCHEMA, np.array([0]), labelled=True) is None
    with pytest.raises(ConfigError, match="label column"):
        _generator_labels(["0", "1"], SCHEMA, np.array([0]), labelled=False)


def test_an_out_directory_holding_an_input_is_refused_and_the_input_survives(files, capsys):
    clf = ["--classifier", str(files / "clf.pt2"), "--trust-pickle", "--target", "R"]
    assert explain(files, *clf, out="keep") == 0
    capsys.readouterr()
    (files / "keep" / "rows.csv").write_bytes((files / "left.csv").read_bytes())
    assert explain(files, *clf, out="keep", input="keep/rows.csv") == 2
    assert "inside --out" in capsys.readouterr().err and (files / "keep" / "rows.csv").is_file()


def test_clue_options_are_refused_with_counterfactual_only_options(files, capsys):
    assert explain(files, "--classifier", str(files / "clf.pt2"), "--trust-pickle", "--clue", "--threshold", "0.9",
                   out="c") == 2
    assert "--clue takes neither" in capsys.readouterr().err


INTEGERS = TabularSchema([NumericColumn("n", 0, 9, integer=True), NumericColumn("distance", -6, 6),
                          CategoricalColumn("query", ("p", "q")), CategoricalColumn("side", ("L", "R"))],
                         label="side")


def _counts(seed: int = 0, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    side = rng.integers(0, 2, n)
    return pd.DataFrame({"n": np.clip(np.where(side == 1, 7, 2) + rng.integers(-1, 2, n), 0, 9),
                         "distance": rng.normal(0, 1, n), "query": rng.choice(["p", "q"], n),
                         "side": np.where(side == 1, "R", "L")})


@pytest.fixture(scope="module")
def counts():
    df = _counts()
    run = train(df, "vae", TrainConfig(steps=400, batch_size=64, progress=False, seed=0), schema=INTEGERS)
    return df, run, SchemaClassifier(INTEGERS).fit(df, steps=300)


def test_an_integer_column_is_judged_as_it_is_released(counts):
    """harden rounds integer columns: the candidate judged is the record released (seed 0)."""
    df, run, _ = counts
    problem = prepare(run, df.iloc[:64])
    with torch.no_grad():
        hard = problem.harden(problem.candidate(problem.start()))
    _, released = problem.released(hard)
    np.testing.assert_allclose(hard.numpy(), released.numpy(), atol=1e-6)


def test_feature_names_like_result_columns_are_kept_apart(counts, tmp_path):
    df, run, clf = counts
    rows = df[df["side"] == "L"].iloc[:4].assign(side="R").reset_index(drop=True)  # a placeholder label
    explain_records(run, clf, rows, tmp_path / "out", target="R", steps=100, labelled=False)
    table = pd.read_csv(tmp_path / "out" / "counterfactuals.csv")
    assert {"explain.query", "explain.distance", "query", "distance", "n"} <= set(table.columns)
    assert (table["n"] == table["n"].round()).all() and set(table["query"]) <= {"p", "q"}
    attributions = pd.read_csv(tmp_path / "out" / "attributions.csv")
    assert list(attributions.columns) == ["explain.query", "n", "distance", "query"]


def test_an_input_in_the_target_class_is_its_own_counterfactual(counts):
    df, run, clf = counts
    right = df[df["side"] == "R"].iloc[:5]
    res = counterfactual(clf, right, 1, run, steps=50)
    assert res.valid.all() and (res.changed == 0).all()
    pd.testing.assert_frame_equal(res.counterfactuals.reset_index(drop=True), right.reset_index(drop=True),
                                  check_dtype=False)


def test_a_target_name_in_the_api_is_a_config_error(counts):
    df, run, clf = counts
    with pytest.raises(ConfigError, match="class indices"):
        counterfactual(clf, df.iloc[:2], "R", run, steps=5)


def test_a_black_box_that_raises_is_one_line_without_the_record():
    class Broken:
        def predict_proba(self, x):
            raise ValueError(f"cannot handle {x.iloc[0].tolist()}")

    space = Space(SCHEMA)
    with pytest.raises(ConfigError) as e:
        BlackBoxScorer(Broken(), space).probs(torch.zeros(2, space.dim))
    assert "ValueError" in str(e.value) and "cannot handle" not in str(e.value) and "\n" not in str(e.value)


def test_clue_keeps_immutable_and_unchanged_values_exactly(labelled):
    df, _, headed = labelled
    rows = df.iloc[:6].copy()
    rows["a"] = rows["a"] + 1e-7 * np.arange(6)  # values that a float32 round trip would move
    res = clue(None, rows, headed, immutable=["a"], steps=30)
    np.testing.assert_array_equal(res.explanations["a"].to_numpy(), rows["a"].to_numpy())
