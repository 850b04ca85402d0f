"""The report layer: plain-JSON conversion, reproducibility, HTML rendering and labelling."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.evaluation.report import PRIVATE_NOTICE, evaluate, render_html
from trustgen.io import json_value
from trustgen.pipeline import train
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler


@pytest.fixture(scope="module")
def run_and_data():
    rng = np.random.default_rng(0)
    n = 120
    x = rng.uniform(0, 10, n)
    df = pd.DataFrame({"x": x, "z": x + rng.normal(0, 1, n) + 5,
                       "label": np.where(x > 5, "b", "a")})
    schema = TabularSchema([NumericColumn("x", 0, 10), NumericColumn("z", -5, 25),
                            CategoricalColumn("label", ("a", "b"))], label="label")
    run = train(df.iloc[:80], "vae", TrainConfig(steps=8, batch_size=32, progress=False), schema=schema,
                model_options={"hidden": 16})
    samples = Sampler(run).sample(100, seed=0).data
    return run, df.iloc[:80].reset_index(drop=True), df.iloc[80:].reset_index(drop=True), samples


def test_report_json_rule_converts_numpy_and_non_finite():
    # evaluate() cleans the report with trustgen.io.json_value: the values metrics can produce
    out = json_value({np.int64(1): np.float32(0.5), "a": (np.bool_(True), np.arange(2)), "inf": math.inf,
                      "nan": float("nan"), "frame_key": {np.str_("k"): None}})
    assert out == {"1": 0.5, "a": [True, [0, 1]], "inf": "inf", "nan": None, "frame_key": {"k": None}}
    assert type(out["a"][0]) is bool and type(out["a"][1][0]) is int
    json.dumps(out, allow_nan=False)


def test_same_seed_same_report_and_no_files_without_out(run_and_data, tmp_path, monkeypatch):
    run, real, holdout, samples = run_and_data
    monkeypatch.chdir(tmp_path)
    a = evaluate(run, samples, real=real, holdout=holdout, seed=3)
    b = evaluate(run, samples, real=real, holdout=holdout, seed=3)
    assert [r["value"] for r in a["metric_table"]] == [r["value"] for r in b["metric_table"]]
    assert list(tmp_path.iterdir()) == []  # out=None writes nothing
    assert a["inputs"]["real"] == "in-memory real training data"
    json.dumps(a, allow_nan=False)


def test_every_metric_row_states_direction_range_and_data(run_and_data):
    run, real, holdout, samples = run_and_data
    report = evaluate(run, samples, real=real, holdout=holdout, sensitive="label")
    sections = {r["section"] for r in report["metric_table"]}
    assert {"fidelity", "utility", "privacy attacks", "fairness", "diversity"} <= sections
    for row in report["metric_table"]:
        assert row["direction"] and row["range"] and row["data"], row
        assert isinstance(row["value"], (bool, int, float, str)), row
    gap = report["utility"]["metrics"]["gap"]
    for model, scores in report["utility"]["metrics"]["tstr"].items():
        trtr = report["utility"]["metrics"]["trtr"][model]
        assert gap[model]["accuracy"] == pytest.approx(trtr["accuracy"] - scores["accuracy"])


def test_html_is_escaped_self_contained_and_labelled(run_and_data):
    run, real, holdout, samples = run_and_data
    report = evaluate(run, samples, real=real)
    report["inputs"]["samples"] = "<script>alert(1)</script>"
    page = render_html(report)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    assert page.count(PRIVATE_NOTICE) >= 5  # banner + one badge per private section
    assert "tested on training data" in page.lower()


REPORT_KEYS = ["format", "version", "trustgen_version", "private_data_used", "private_data_notice",
               "tested_on_training_data", "real_matches_training_data", "run", "inputs", "notes", "privacy_report", "fidelity", "utility",
               "privacy_attacks", "fairness", "diversity", "metric_table", "skipped", "figures", "files", "seconds"]
SECTION_KEYS = ["private_data_used", "notice", "data", "tested_on_training_data", "status", "metrics", "skipped",
                "notes", "seconds"]


def test_report_layout_is_unchanged(run_and_data):
    # The layout of report.json as it was before the sections moved into one module each (issue 14
    # added "real_matches_training_data", and "data_sha256" under "run"; issue 19 the binned marginal
    # distances and the label-rate gap).
    run, real, holdout, samples = run_and_data
    report = evaluate(run, samples, real=real, holdout=holdout, sensitive="label")
    assert list(report) == REPORT_KEYS
    extras = {"privacy_report": ["summary", "report"], "privacy_attacks": ["features", "mia_setup"]}
    for key in REPORT_KEYS[10:16]:
        assert list(report[key]) == SECTION_KEYS + extras.get(key, []), key
    assert list(report["fidelity"]["metrics"]) == ["column_distances", "column_distance_mean", "column_distance_max",
                                                   "worst_column", "correlation_difference",
                                                   "one_way_marginal_distance", "two_way_marginal_distance",
                                                   "label_rate_gap", "classifier_two_sample_auc"]
    assert list(report["utility"]["metrics"]) == ["task", "models", "test_data", "tstr", "trtr", "gap"]
    assert list(report["fairness"]["metrics"]) == ["sensitive", "group_representation", "max_abs_representation_diff",
                                                   "positive_labels", "test_data", "parity_gaps"]
    assert list(report["diversity"]["metrics"]) == ["cluster_coverage", "cluster_space", "collapsed"]
    assert [r["section"] for r in report["metric_table"]][0] == "privacy guarantee"
    assert all(list(r) == ["section", "metric", "value", "direction", "range", "data", "private_data_used"]
               for r in report["metric_table"])
