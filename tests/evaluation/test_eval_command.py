"""``trustgen evaluate``: the command end to end on tiny runs, its output contract and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trustgen.cli import main
from trustgen.sampling import Sampler
from trustgen.sampling.writers import write_samples
from trustgen.data.loaders import load_data
from trustgen.data.encoders import ImageData
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema, save_schema
from trustgen.pipeline import train
from trustgen.training import TrainConfig

FAST = TrainConfig(steps=8, batch_size=32, progress=False)
TINY = {"hidden": 16, "width": 8}
SECTIONS = ("privacy_report", "fidelity", "utility", "privacy_attacks", "fairness", "diversity")
PRIVATE = "computed on private data: not differentially private"


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.uniform(10, 190, n)
    sex = rng.choice(["f", "m"], n)
    return pd.DataFrame({"age": rng.integers(18, 90, n).astype(float), "income": income, "sex": sex,
                         "approved": np.where(income + rng.normal(0, 30, n) > 100, "yes", "no")})


@pytest.fixture(scope="module")
def tabular(tmp_path_factory) -> dict:
    """A tiny tabular run trained on train.csv, with 200 samples and a disjoint holdout."""
    d = tmp_path_factory.mktemp("tab")
    schema = TabularSchema([NumericColumn("age", 0, 100), NumericColumn("income", 0, 200),
                            CategoricalColumn("sex", ("f", "m")), CategoricalColumn("approved", ("no", "yes"))],
                           label="approved")
    save_schema(schema, d / "schema.json")
    _table(160, 0).to_csv(d / "train.csv", index=False)
    _table(80, 1).to_csv(d / "holdout.csv", index=False)
    run = train(str(d / "train.csv"), "vae", FAST, schema=d / "schema.json", model_options=TINY, out=d / "run")
    write_samples(Sampler(run).sample(200, seed=0), d / "samples.csv", schema=run.schema)
    return {"dir": d, "run": d / "run", "samples": d / "samples.csv", "holdout": d / "holdout.csv",
            "train": d / "train.csv"}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict:
    """A tiny conditional image run on 200 digits, with 200 samples and a 100-image holdout."""
    d = tmp_path_factory.mktemp("img")
    data, schema = load_data("digits")
    save_schema(schema, d / "schema.json")
    np.savez(d / "train.npz", x=data.x[:200], y=data.y[:200])
    np.savez(d / "holdout.npz", x=data.x[200:300], y=data.y[200:300])
    run = train(str(d / "train.npz"), "vae", FAST, schema=d / "schema.json", model_options=TINY, out=d / "run")
    write_samples(Sampler(run).sample(200, labels=np.arange(200) % 10, seed=0), d / "samples.npz", schema=run.schema)
    return {"dir": d, "run": d / "run", "samples": d / "samples.npz", "holdout": d / "holdout.npz",
            "train": d / "train.npz"}


def _check_files(out: Path, report: dict) -> str:
    assert json.loads((out / "report.json").read_text()) == report
    page = (out / "report.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs and sorted(srcs) == sorted(f["file"] for f in report["figures"])
    for src in srcs:
        assert not src.startswith(("/", "http")), "figures must be relative files beside the HTML"
        png = out / src
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    return page


def _check_private_labels(report: dict, page: str) -> None:
    assert report["private_data_used"] is True and report["private_data_notice"] == PRIVATE
    for name in SECTIONS[1:]:
        assert report[name]["private_data_used"] is True and report[name]["notice"] == PRIVATE, name
    assert report["privacy_report"]["private_data_used"] is False  # DP accounting reads no records
    assert all(row["private_data_used"] for row in report["metric_table"] if row["section"] != "privacy guarantee")
    assert 'class="banner"' in page and PRIVATE in page


def _plain_types(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain_types(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain_types(v) for v in obj)
    return obj is None or type(obj) in (bool, int, float, str)


def test_tabular_end_to_end_with_holdout_and_sensitive(tabular, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["evaluate", str(tabular["run"]), "--samples", str(tabular["samples"]), "--real", str(tabular["train"]),
               "--holdout", str(tabular["holdout"]), "--sensitive", "sex", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)  # exactly one JSON object on stdout, nothing else
    assert "evaluate:" in captured.err  # progress goes to stderr
    for name in SECTIONS:
        assert name in report, name
    assert report["tested_on_training_data"] is False and report["inputs"]["n_holdout"] == 80
    assert report["real_matches_training_data"] is True  # the file the run recorded by hash
    fid = report["fidelity"]["metrics"]
    assert set(fid["column_distances"]) == {"age", "income", "sex", "approved"}
    assert 0 <= fid["classifier_two_sample_auc"] <= 1 and 0 <= fid["correlation_difference"] <= 2
    util = report["utility"]["metrics"]
    assert set(util["tstr"]) == set(util["trtr"]) == {"logistic", "random_forest"}
    assert report["utility"]["tested_on_training_data"] is False
    att = report["privacy_attacks"]["metrics"]
    assert {"holdout_median", "synth_exact_copy_share"} <= set(att["distance_to_closest_record"])
    assert 0 <= att["density_ratio_mia"]["auc"] <= 1
    fair = report["fairness"]["metrics"]
    assert set(fair["group_representation"]) == {"f", "m"}
    assert set(fair["parity_gaps"]) == {"logistic", "random_forest"}
    assert isinstance(report["diversity"]["metrics"]["collapsed"], bool)
    assert _plain_types(report)
    assert {f["file"] for f in report["figures"]} == {"marginals.png", "marginal_distances.png", "pair_distances.png",
                                                      "correlation.png", "correlation_difference.png", "utility.png",
                                                      "dcr.png", "membership_roc.png", "fairness.png", "diversity.png"}
    assert all(row["direction"] for row in report["metric_table"])
    page = _check_files(out, report)
    _check_private_labels(report, page)
    assert "lower is better" in page and "closer to 0.5 is better" in page


def test_no_holdout_skips_with_reasons_and_says_tested_on_training_data(tabular, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["evaluate", str(tabular["run"]), "--samples", str(tabular["samples"]), "--real", str(tabular["train"]),
               "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "tested on training data" in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["tested_on_training_data"] is True
    assert report["inputs"]["real"] == str(tabular["train"])
    skipped = {(s["section"], s["metric"]) for s in report["skipped"]}
    assert ("utility", "trtr") in skipped and ("privacy_attacks", "density_ratio_mia") in skipped
    assert all("holdout" in s["reason"] for s in report["skipped"] if s["section"] != "fairness")
    assert report["utility"]["tested_on_training_data"] is True and "tstr" in report["utility"]["metrics"]
    assert "trtr" not in report["utility"]["metrics"]
    dcr = report["privacy_attacks"]["metrics"]["distance_to_closest_record"]
    assert "synth_exact_copy_share" in dcr and "holdout_median" not in dcr
    tstr_rows = [r for r in report["metric_table"] if r["metric"].startswith("TSTR")]
    assert tstr_rows and all("tested on training data" in r["data"] for r in tstr_rows)
    page = _check_files(out, report)
    assert "tested on training data" in page and "Skipped metrics" in page


def test_image_end_to_end(images, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["evaluate", str(images["run"]), "--samples", str(images["samples"]), "--real", str(images["train"]),
               "--holdout", str(images["holdout"]), "--out", str(out), "--json", "--seed", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["run"]["kind"] == "image" and report["inputs"]["seed"] == 1
    fid = report["fidelity"]["metrics"]
    assert fid["frechet_distance"] >= 0 and set(fid["prdc"]) == {"precision", "recall", "density", "coverage"}
    assert "FeatureExtractor" in fid["feature_space"] and "real training images" in fid["feature_space"]
    assert set(report["utility"]["metrics"]["tstr"]) == {"logistic", "random_forest"}
    assert "density_ratio_mia" in report["privacy_attacks"]["metrics"]
    div = report["diversity"]["metrics"]
    assert len(div["label_coverage"]["per_class_share"]) == 10 and "cluster_coverage" in div
    assert div["label_classifier"]["tested_on"] == "real holdout"
    assert report["fairness"]["status"] == "skipped"
    assert {f["file"] for f in report["figures"]} == {"samples.png", "real.png", "utility.png", "dcr.png",
                                                      "membership_roc.png", "diversity.png"}  # no fairness for images
    assert _plain_types(report)
    _check_private_labels(report, _check_files(out, report))


def test_python_api_flags_a_copying_generator(tabular):
    from trustgen.evaluation.report import evaluate

    # "samples" that are the training rows themselves: every one is an exact copy
    report = evaluate(tabular["run"], tabular["train"], tabular["train"], holdout=tabular["holdout"], out=None)
    dcr = report["privacy_attacks"]["metrics"]["distance_to_closest_record"]
    assert dcr["synth_exact_copy_share"] == 1.0 and dcr["synth_closer_than_holdout_median_share"] == 1.0
    assert dcr["holdout_exact_copy_share"] == 0.0
    assert report["files"] is None and report["figures"] == []


def test_bad_samples_columns_exit_2(tabular, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.read_csv(tabular["samples"]).drop(columns=["income"]).to_csv(bad, index=False)
    rc = main(["evaluate", str(tabular["run"]), "--samples", str(bad), "--real", str(tabular["train"]),
               "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "income" in err[0] and "samples" in err[0]
    assert not (tmp_path / "rep" / "report.json").exists()

    from trustgen.errors import DataError
    from trustgen.evaluation.report import evaluate

    with pytest.raises(DataError, match="samples"):
        evaluate(tabular["run"], bad, tabular["train"])


def test_image_samples_for_a_tabular_run_exit_2(tabular, images, tmp_path, capsys):
    rc = main(["evaluate", str(tabular["run"]), "--samples", str(images["samples"]), "--real", str(tabular["train"]),
               "--out", str(tmp_path)])
    assert rc == 2 and "samples" in capsys.readouterr().err


def test_missing_run_exit_2(tmp_path, capsys):
    rc = main(["evaluate", str(tmp_path / "nope"), "--samples", "s.csv", "--real", "t.csv", "--out",
               str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a trustgen run directory" in err

    from trustgen.errors import RunError
    from trustgen.evaluation.report import evaluate

    with pytest.raises(RunError):
        evaluate(tmp_path / "nope", "s.csv", "t.csv")


@pytest.mark.parametrize("extra, message", [
    (["--sensitive", "colour"], "not a column"),
    (["--sensitive", "income"], "distinct values"),
    (["--holdout", "TRAIN"], "training data itself"),
])
def test_bad_options_exit_2(tabular, tmp_path, capsys, extra, message):
    extra = [str(tabular["train"]) if e == "TRAIN" else e for e in extra]
    rc = main(["evaluate", str(tabular["run"]), "--samples", str(tabular["samples"]), "--real", str(tabular["train"]),
               "--out", str(tmp_path), *extra])
    assert rc == 2 and message in capsys.readouterr().err


def test_sensitive_on_images_and_in_memory_runs_raise(images, tmp_path):
    from trustgen.errors import ConfigError
    from trustgen.evaluation.report import evaluate

    with pytest.raises(ConfigError, match="tabular"):
        evaluate(images["run"], images["samples"], images["train"], sensitive="label")
    data, schema = load_data("digits")
    run = train(ImageData(data.x[:40], data.y[:40]), "vae", TrainConfig(steps=1, batch_size=20, progress=False),
                schema=schema, model_options=TINY)
    with pytest.raises(ConfigError, match="pass the real training data"):
        evaluate(run, images["samples"])
    report = evaluate(run, images["samples"], real=ImageData(data.x[:40], data.y[:40]))
    assert report["inputs"]["real"] == "in-memory real training data"
    assert report["real_matches_training_data"] is None and report["run"]["data"] == "in-memory"


def test_evaluate_needs_real_and_reads_no_file_a_run_names(tabular, tmp_path, capsys, monkeypatch):
    """--real is required (argparse: exit 2, one line), and the run's recorded name is never read."""
    meta = json.loads((tabular["run"] / "run.json").read_text())
    assert meta["data"]["name"] == "train.csv" and len(meta["data"]["sha256"]) == 64  # no path is recorded
    code = main(["evaluate", str(tabular["run"]), "--samples", str(tabular["samples"]), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--real" in err[0]
    assert not (tmp_path / "r").exists()

    from trustgen.errors import ConfigError
    from trustgen.evaluation.report import evaluate

    monkeypatch.chdir(tabular["dir"])  # train.csv is right here: still not read implicitly
    with pytest.raises(ConfigError, match="pass the real training data"):
        evaluate(tabular["run"], tabular["samples"])


def test_a_real_file_other_than_the_recorded_one_is_reported_not_refused(tabular, tmp_path, capsys):
    other = tmp_path / "train.csv"  # same name, other rows: the hash tells them apart
    _table(160, 7).to_csv(other, index=False)
    out = tmp_path / "rep"
    rc = main(["evaluate", str(tabular["run"]), "--samples", str(tabular["samples"]), "--real", str(other),
               "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["real_matches_training_data"] is False
    assert any("not the training data the run recorded" in n for n in report["notes"])
    assert "is not the training data this run recorded" in captured.out
    same = tmp_path / "copy.csv"  # a byte-identical copy under another name matches
    same.write_bytes(tabular["train"].read_bytes())

    from trustgen.evaluation.report import evaluate, matches_training_data
    from trustgen.run import Run, TrainingData

    recorded = Run.load(tabular["run"]).data
    assert matches_training_data(same, recorded) is True and matches_training_data(other, recorded) is False
    assert matches_training_data("breast_cancer", recorded) is False  # a built-in is not the recorded file
    assert matches_training_data("digits", TrainingData("digits")) is True
    assert matches_training_data("breast_cancer", TrainingData("digits")) is False
    assert matches_training_data(same, TrainingData("digits")) is None  # a file may hold a built-in's rows
    assert matches_training_data(same, TrainingData("/old/runs/train.csv")) is None  # older runs: a name only
    with pytest.warns(UserWarning, match="not the training data the run recorded"):
        evaluate(tabular["run"], tabular["samples"], other)


def test_every_evaluate_option_shows_its_default_in_the_help(capsys):
    assert main(["evaluate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    for option in ("--samples", "--real", "--holdout", "--sensitive", "--out", "--seed", "--json"):
        part = text.split(f" {option} ", 1)[1].split(" --", 1)[0].lower()
        assert "default" in part or "required" in part, (option, part)
