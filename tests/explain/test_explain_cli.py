"""``trustgen explain`` on the labelled clusters (a run on disk, classifiers in every accepted
file kind) and on digits: what the directory holds, that the attributions in the file add up to
the classifier's change, and that every refusal is exit code 2, one stderr line and no output."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.explain.conftest import SCHEMA, sides
from trustgen.cli import main
from trustgen.data.datasets import load_digits
from trustgen.data.encoders import ImageData
from trustgen.explain import SchemaClassifier, load_classifier
from trustgen.pipeline import train
from trustgen.training import TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("explain")
    df = sides()
    train(df, "vae", TrainConfig(steps=600, batch_size=64, progress=False, seed=0), schema=SCHEMA, out=d / "run")
    SchemaClassifier(SCHEMA).fit(df, steps=300).save(d / "clf.pt")
    SchemaClassifier(SCHEMA, bayesian=True).fit(df, steps=300).save(d / "bayes.pt")
    cols = ColumnTransformer([("site", OneHotEncoder(), ["site"])], remainder="passthrough")
    with open(d / "lr.pkl", "wb") as f:  # a pipeline on the feature columns; its classes_ are L, R
        pickle.dump(make_pipeline(cols, LogisticRegression()).fit(df[["a", "b", "site"]], df["side"]), f)
    df[df["side"] == "L"].iloc[:6].drop(columns="side").to_csv(d / "left.csv", index=False)
    return d


def explain(files, *args, out="out"):
    return main(["explain", str(files / "run"), "--input", str(files / "left.csv"), "--out", str(files / out), *args])


def test_counterfactuals_attributions_figure_and_summary(files, capsys):
    assert explain(files, "--classifier", str(files / "clf.pt"), "--target", "R", "--immutable", "site",
                   "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "counterfactual" and summary["validity"] >= 5 / 6
    assert summary["classes"] == ["L", "R"] and "private" in summary["privacy"]
    out = files / "out"
    assert sorted(p.name for p in out.iterdir()) == ["attributions.csv", "attributions.png", "counterfactuals.csv",
                                                     "explanation.json"]
    assert (out / "attributions.png").read_bytes()[:8] == PNG_MAGIC
    cf = pd.read_csv(out / "counterfactuals.csv")
    left = pd.read_csv(files / "left.csv")
    assert (cf["site"] == left["site"]).all() and (cf["target"] == "R").all()
    assert (cf.loc[cf["valid"], "p_target_after"] > 0.5).all()
    # Integrated Gradients, input as the baseline: a row's attributions add up to the logit's change
    attr = pd.read_csv(out / "attributions.csv")
    clf = load_classifier(files / "clf.pt")
    with torch.no_grad():
        gap = (clf(clf.units(cf[["a", "b", "site", "target"]].rename(columns={"target": "side"})))[:, 1]
               - clf(clf.units(left.assign(side="L")))[:, 1]).numpy()
    np.testing.assert_allclose(attr[["a", "b", "site"]].sum(axis=1), gap, atol=0.02)


def test_a_pickled_black_box_needs_trust_and_then_works(files, capsys):
    assert explain(files, "--classifier", str(files / "lr.pkl"), "--target", "R", out="bb") == 2
    err = capsys.readouterr().err
    assert "runs the code inside it" in err and len(err.strip().splitlines()) == 1 and not (files / "bb").exists()
    assert explain(files, "--classifier", str(files / "lr.pkl"), "--trust-pickle", "--target", "flip", "--json",
                   out="bb") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["attribution"] == "feature_ablation" and summary["method"] == "sampling"
    assert summary["validity"] >= 5 / 6


def test_clue_from_the_command_line(files, capsys):
    assert explain(files, "--classifier", str(files / "bayes.pt"), "--clue", "--json", out="clue") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "clue" and summary["entropy_after_mean"] <= summary["entropy_before_mean"]
    table = pd.read_csv(files / "clue" / "clues.csv")
    assert {"entropy_before", "entropy_after", "epistemic_before", "prediction_after"} <= set(table.columns)


@pytest.mark.parametrize("args, message", [
    (["--classifier", "{f}/clf.pt", "--target", "Q"], "not one of the classifier's classes"),
    (["--classifier", "{f}/clf.pt", "--clue"], "no posterior"),
    (["--classifier", "{f}/left.csv", "--target", "R"], "unknown kind of file"),
    (["--classifier", "{f}/nope.pt", "--target", "R"], "nope.pt"),
    (["--classifier", "{f}/clf.pt", "--target", "R", "--immutable", "zz"], "not a feature"),
    (["--classifier", "{f}/clf.pt", "--target", "R", "--max-inputs", "2"], "at most --max-inputs 2"),
])
def test_refusals_are_one_line_and_leave_nothing(files, capsys, args, message):
    args = [a.format(f=files) for a in args]
    assert explain(files, *args, out="refused") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (files / "refused").exists()


def test_outputs_that_would_leak_or_destroy_are_refused(files, capsys):
    clf = ["--classifier", str(files / "clf.pt"), "--target", "R"]
    assert explain(files, *clf, out="run/explained") == 2
    assert "inside the run directory" in capsys.readouterr().err
    other = files / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert explain(files, *clf, out="mine") == 2
    assert "directory of other files" in capsys.readouterr().err and (other / "notes.txt").read_text() == "keep me"
    other_schema = SchemaClassifier(load_digits()[1])
    other_schema.save(files / "digits.pt")
    assert explain(files, "--classifier", str(files / "digits.pt"), "--target", "R", out="x") == 2
    assert "another schema" in capsys.readouterr().err


def test_images_get_an_npz_and_a_figure(tmp_path, capsys):
    data, schema = load_digits()
    train(ImageData(data.x[:400], data.y[:400]), "vae", TrainConfig(steps=30, batch_size=64, progress=False),
          schema=schema, out=tmp_path / "run")
    SchemaClassifier(schema, hidden=16).fit(ImageData(data.x[:400], data.y[:400]), steps=30).save(tmp_path / "c.pt")
    np.savez(tmp_path / "in.npz", x=data.x[500:503])  # no labels: not needed
    assert main(["explain", str(tmp_path / "run"), "--classifier", str(tmp_path / "c.pt"), "--input",
                 str(tmp_path / "in.npz"), "--target", "3", "--steps", "20", "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    with np.load(tmp_path / "out" / "counterfactuals.npz") as z:  # no pickles inside
        assert z["x"].shape == (3,) + schema.shape and z["attributions"].shape == (3,) + schema.shape
        assert list(z["target"]) == ["3"] * 3
    assert (tmp_path / "out" / "counterfactuals.png").read_bytes()[:8] == PNG_MAGIC
