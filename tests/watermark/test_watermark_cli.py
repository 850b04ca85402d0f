"""trustgen keygen / sample --watermark-key / detect, end to end on a tiny image run."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from trustgen.cli import main


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("wm")
    assert main(["train", "--data", "digits", "--model", "vae", "--steps", "3", "--option", "width=4",
                 "--option", "hidden=16", "--no-progress", "--out", str(d / "run")]) == 0
    assert main(["keygen", "--out", str(d / "key")]) == 0
    assert main(["keygen", "--out", str(d / "other")]) == 0
    assert main(["sample", str(d / "run"), "-n", "40", "--seed", "0", "--watermark-key", str(d / "key"),
                 "--no-progress", "--out", str(d / "marked.npz")]) == 0
    assert main(["sample", str(d / "run"), "-n", "40", "--seed", "0", "--no-progress",
                 "--out", str(d / "plain.npz")]) == 0
    return d


def _detect(capsys, *argv):
    capsys.readouterr()
    code = main(["detect", *map(str, argv), "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def test_the_right_key_detects_every_sample_and_the_file(image_run, capsys):
    code, r = _detect(capsys, image_run / "marked.npz", "--key", image_run / "key", "--run", image_run / "run")
    assert code == 0 and r["detected"] and r["samples_detected"] == 40 and r["p_value"] < 1e-6
    assert set(r["tests"]) == {"dither", "latent"} and len(r["per_sample"]) == 40
    assert all(s["detected"] and s["p_value"] <= 1e-6 for s in r["per_sample"])


@pytest.mark.parametrize("file, key", [("marked.npz", "other"), ("plain.npz", "key")])
def test_another_key_or_an_unmarked_file_is_not_detected(image_run, capsys, file, key):
    code, r = _detect(capsys, image_run / file, "--key", image_run / key, "--run", image_run / "run")
    assert code == 0 and not r["detected"] and r["samples_detected"] == 0


def test_without_the_run_the_value_test_alone_runs_and_says_what_it_skipped(image_run, capsys):
    code, r = _detect(capsys, image_run / "marked.npz", "--key", image_run / "key",
                      "--schema", image_run / "run" / "schema.json")
    assert code == 0 and r["detected"] and set(r["tests"]) == {"dither"} and "latent" in r["skipped"]


def test_the_key_is_owner_only_and_never_written_with_the_samples_or_the_run(image_run):
    key = json.loads((image_run / "key").read_text())
    assert stat.S_IMODE(os.stat(image_run / "key").st_mode) == 0o600
    blobs = [p.read_bytes() for p in image_run.rglob("*") if p.is_file() and p.name not in ("key", "other")]
    assert not any(key["secret"].encode() in b or bytes.fromhex(key["secret"]) in b for b in blobs)
    assert set(np.load(image_run / "marked.npz").files) == {"x", "y"}


@pytest.mark.parametrize("argv, words", [
    (["sample", "{run}", "-n", "5", "--watermark-key", "{d}/key", "--out", "{d}/g.png"], "not a data file"),
    (["sample", "{run}", "-n", "5", "--watermark-key", "{d}/run/run.json", "--out", "{d}/x.npz"],
     "not a trustgen watermark key"),
    (["detect", "{d}/marked.npz", "--key", "{d}/nope", "--run", "{run}"], "does not exist"),
    (["detect", "{d}/marked.npz", "--key", "{d}/key"], "give --run"),
    (["keygen", "--out", "{d}/key"], "never overwritten"),
    (["detect", "{d}/marked.npz", "--key", "{d}/key", "--run", "{run}", "--fpr", "0"], "--fpr: must be in"),
])
def test_bad_watermark_arguments_exit_2_with_one_line(image_run, capsys, argv, words):
    before = sorted(p.name for p in image_run.iterdir())
    code = main([a.format(run=image_run / "run", d=image_run) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert sorted(p.name for p in image_run.iterdir()) == before


def test_a_watermarked_table_is_detected_after_deletion_shuffling_and_column_reordering(tmp_path, capsys):
    import pandas as pd

    assert main(["train", "--data", "breast_cancer", "--model", "vae", "--steps", "3", "--option", "hidden=8",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert main(["keygen", "--out", str(tmp_path / "key")]) == 0
    assert main(["sample", str(tmp_path / "run"), "-n", "250", "--seed", "1", "--watermark-key",
                 str(tmp_path / "key"), "--no-progress", "--out", str(tmp_path / "t.csv")]) == 0
    df = pd.read_csv(tmp_path / "t.csv").sample(frac=0.8, random_state=0)  # 20% deleted, shuffled
    df[df.columns[::-1]].to_csv(tmp_path / "edited.csv", index=False)
    code, r = _detect(capsys, tmp_path / "edited.csv", "--key", tmp_path / "key",
                      "--schema", tmp_path / "run" / "schema.json")
    assert code == 0 and r["detected"] and r["p_value"] < 1e-6 and set(r["tests"]) == {"table"}
    assert len(r["per_sample"]) == 1  # the table test decides on the table as a whole
    code, r = _detect(capsys, tmp_path / "edited.csv", "--key", tmp_path / "key", "--run", tmp_path / "run")
    assert code == 0 and r["detected"] and len(r["per_sample"]) == 200 and set(r["tests"]) == {"table", "latent"}


def test_a_dp_run_is_watermarked_without_touching_its_guarantee(tmp_path, capsys):
    """Watermarking is post-processing of the DP release: the run and its report are unchanged."""
    assert main(["train", "--data", "breast_cancer", "--model", "vae", "--steps", "3", "--epsilon", "5",
                 "--option", "hidden=8", "--no-progress", "--out", str(tmp_path / "dp")]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "dp").iterdir() if p.is_file()}
    assert main(["keygen", "--out", str(tmp_path / "key")]) == 0
    assert main(["sample", str(tmp_path / "dp"), "-n", "200", "--seed", "0", "--watermark-key",
                 str(tmp_path / "key"), "--no-progress", "--out", str(tmp_path / "t.csv")]) == 0
    code, r = _detect(capsys, tmp_path / "t.csv", "--key", tmp_path / "key", "--run", tmp_path / "dp")
    assert code == 0 and r["detected"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "dp").iterdir() if p.is_file()} == before


def test_a_table_without_a_continuous_column_is_refused_before_sampling(tmp_path, capsys):
    import pandas as pd

    pd.DataFrame({"n": [i % 5 for i in range(30)], "y": ["a", "b"] * 15}).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "s.json").write_text(json.dumps({"kind": "tabular", "source": "declared", "label": "y", "columns": [
        {"name": "n", "type": "integer", "low": 0, "high": 10},
        {"name": "y", "type": "categorical", "categories": ["a", "b"]}]}))
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--schema", str(tmp_path / "s.json"), "--model", "vae",
                 "--steps", "2", "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert main(["keygen", "--out", str(tmp_path / "key")]) == 0
    capsys.readouterr()
    code = main(["sample", str(tmp_path / "run"), "-n", "5", "--watermark-key", str(tmp_path / "key"),
                 "--out", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no continuous numeric column" in err[0] and not (tmp_path / "t.csv").exists()
