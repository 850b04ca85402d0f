"""What a run records about its training data: a name and a content hash, never a path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import RunError
from trustgen.io import file_sha256
from trustgen.pipeline import train
from trustgen.run import Run, TrainingData
from trustgen.training import TrainConfig

FAST = TrainConfig(steps=1, batch_size=16, progress=False)
SCHEMA = TabularSchema([NumericColumn("a", 0, 1), CategoricalColumn("y", ("no", "yes"))], label="y",
                       source="declared")
FORMAT1 = Path(__file__).parent / "regression" / "format1_runs" / "vae-tabular"


def _csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.uniform(0, 1, 32), "y": rng.choice(["no", "yes"], 32)}).to_csv(path, index=False)
    return path


def test_a_file_is_recorded_by_base_name_and_hash(tmp_path):
    (tmp_path / "private").mkdir()
    data = _csv(tmp_path / "private" / "train.csv")
    train(str(data), "vae", FAST, schema=SCHEMA, model_options={"hidden": 8}, out=tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["data"] == {"name": "train.csv", "sha256": file_sha256(data)}
    assert str(tmp_path) not in (tmp_path / "run" / "run.json").read_text()  # no path, not even in part
    assert Run.load(tmp_path / "run").data == TrainingData("train.csv", file_sha256(data))


def test_a_dp_run_records_no_hash_of_its_private_file(tmp_path):
    """The hash is computed from every record outside the DP mechanism: whoever can guess the file
    but one record would confirm that record by hashing each guess."""
    from trustgen.privacy.config import PrivacyConfig

    data = _csv(tmp_path / "train.csv")
    train(str(data), "vae", TrainConfig(steps=2, batch_size=8, progress=False), schema=SCHEMA,
          model_options={"hidden": 8}, out=tmp_path / "run", privacy=PrivacyConfig(5.0))
    text = (tmp_path / "run" / "run.json").read_text()
    assert json.loads(text)["data"] == {"name": "train.csv", "sha256": None}
    assert file_sha256(data) not in "".join(p.read_text(errors="replace") for p in (tmp_path / "run").iterdir()
                                            if p.is_file())


def test_built_in_and_in_memory_data_have_no_hash(tmp_path):
    assert TrainingData.of_source("breast_cancer", private=False) == TrainingData("breast_cancer", None)
    run = train(pd.read_csv(_csv(tmp_path / "d.csv")), "vae", FAST, schema=SCHEMA, model_options={"hidden": 8})
    assert run.data == TrainingData("in-memory") and run.metadata()["data"] == {"name": "in-memory", "sha256": None}
    assert run.data_name == "in-memory"  # the name, for code written before the record


def test_older_runs_with_a_plain_string_still_load(tmp_path):
    with pytest.warns(UserWarning, match="not bound by hashes"):
        assert Run.load(FORMAT1).data == TrainingData("in-memory", None)  # format 1
    train(str(_csv(tmp_path / "d.csv")), "vae", FAST, schema=SCHEMA, model_options={"hidden": 8}, out=tmp_path / "r")
    meta_path = tmp_path / "r" / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["data"] = "/home/someone/data/train.csv"  # format 3 as written before the record
    meta_path.write_text(json.dumps(meta))
    assert Run.load(tmp_path / "r").data == TrainingData("/home/someone/data/train.csv", None)


@pytest.mark.parametrize("bad", [{"name": "x"}, {"name": 3, "sha256": None}, {"name": "x", "sha256": "abc"},
                                 {"name": "x", "sha256": None, "path": "/etc/passwd"}, ["x"], 7])
def test_a_malformed_record_is_refused_on_load(bad):
    with pytest.raises(RunError, match="run.json's \"data\" must be"):
        TrainingData.from_json(bad)
