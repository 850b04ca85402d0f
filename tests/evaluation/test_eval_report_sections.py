"""Report sections one by one: each function returns a Section computed from EvaluationInputs."""

from __future__ import annotations

import numpy as np
import pytest

from trustgen.data.encoders import ImageData
from trustgen.data.schema import ImageSchema
from trustgen.errors import ConfigError, DataError
from trustgen.evaluation.labels import PRIVATE_NOTICE
from trustgen.evaluation.report_diversity import diversity_section
from trustgen.evaluation.report_fairness import fairness_section
from trustgen.evaluation.report_fidelity import fidelity_section
from trustgen.evaluation.report_figures import write_figures
from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_privacy_attacks import privacy_attacks_section
from trustgen.evaluation.report_privacy_guarantee import privacy_guarantee_section
from trustgen.evaluation.report_section import NO_RECORDS_NOTICE, Section
from trustgen.evaluation.report_utility import utility_section
from tests.evaluation.conftest import SMALL_SCHEMA, small_table

SECTION_KEYS = ["private_data_used", "notice", "data", "tested_on_training_data", "status", "metrics", "skipped",
                "notes", "seconds"]


def _check(section: Section, title: str) -> dict:
    assert isinstance(section, Section) and section.title == title
    d = section.to_dict()
    assert list(d)[:len(SECTION_KEYS)] == SECTION_KEYS and list(d)[len(SECTION_KEYS):] == list(section.extra)
    assert d["status"] in ("ok", "partial", "skipped")
    assert d["notice"] == (PRIVATE_NOTICE if d["private_data_used"] else NO_RECORDS_NOTICE)
    assert all(r["section"] == title and r["private_data_used"] == d["private_data_used"] for r in section.rows)
    return d


def test_every_table_section_returns_a_section(tables, tmp_path):
    fid = fidelity_section(tables)
    assert _check(fid, "fidelity")["status"] == "ok" and "classifier_two_sample_auc" in fid.metrics
    util = utility_section(tables)
    assert _check(util, "utility")["tested_on_training_data"] is False and set(util.metrics["gap"]) == {
        "logistic", "random_forest"}
    att = privacy_attacks_section(tables)
    assert set(_check(att, "privacy attacks")) >= {"features", "mia_setup"} and "density_ratio_mia" in att.metrics
    fair = fairness_section(tables, "g")
    assert _check(fair, "fairness")["metrics"]["positive_labels"] == ["b"]  # the last class of a binary label
    div = diversity_section(tables)
    assert isinstance(_check(div, "diversity")["metrics"]["collapsed"], bool)
    figs = write_figures(tmp_path, tables, fid)
    assert [f["file"] for f in figs] == ["marginals.png", "marginal_distances.png", "pair_distances.png",
                                         "correlation.png", "correlation_difference.png"]
    assert all((tmp_path / f["file"]).read_bytes()[:4] == b"\x89PNG" for f in figs)


def test_sections_without_holdout_or_sensitive_say_so(tables):
    no_hold = EvaluationInputs.from_data(SMALL_SCHEMA, small_table(120, 2), small_table(100, 0), None, seed=0)
    util = utility_section(no_hold)
    assert util.tested_on_training_data and util.status == "partial" and "trtr" in util.skipped
    att = privacy_attacks_section(no_hold)
    assert "density_ratio_mia" in att.skipped and "mia_setup" not in att.extra
    fair = fairness_section(tables, None)
    assert _check(fair, "fairness")["status"] == "skipped" and fair.rows == []
    with pytest.raises(ConfigError, match="not a class"):
        fairness_section(tables, "g", positive_label="c")


def test_privacy_guarantee_section_reads_no_records():
    s = privacy_guarantee_section(None)
    d = _check(s, "privacy guarantee")
    assert d["private_data_used"] is False and d["status"] == "skipped" and s.rows == []


def test_try_metric_marks_failures_skipped_and_finish_sets_status():
    s = Section("fidelity", "somewhere")

    def fail() -> float:
        raise DataError("one class")

    assert s.try_metric("bad", fail) is None
    assert s.finish().status == "skipped" and s.skipped == {"bad": "failed: one class"}
    s.metrics["good"] = 1.0
    assert s.finish().status == "partial"
    with pytest.raises(ValueError):  # only trustgen errors are reasons to skip; bugs propagate
        s.try_metric("bug", lambda: int("x"))


def test_image_sections_share_one_feature_extractor():
    rng = np.random.default_rng(0)
    schema = ImageSchema(1, 8, 8, 0.0, 16.0, classes=tuple(str(i) for i in range(3)))

    def images(n: int) -> ImageData:
        y = np.arange(n) % 3
        return ImageData((rng.uniform(0, 4, (n, 1, 8, 8)) + 4 * y[:, None, None, None]).astype(np.float32), y)
    inputs = EvaluationInputs.from_data(schema, images(60), images(60), images(30), seed=0)
    fid = fidelity_section(inputs)
    assert _check(fid, "fidelity")["feature_space"] == fid.metrics["feature_space"]
    feats = inputs.image_features()
    div = diversity_section(inputs)
    assert inputs.image_features() is feats  # fitted once, read by fidelity and diversity
    assert div.metrics["label_classifier"]["tested_on"] == "real holdout"
    assert utility_section(inputs).metrics["test_data"] == "holdout"
