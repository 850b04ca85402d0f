"""``trustgen sample`` at the edges: bounds on -n, labels, the .png count, streaming, progress.

Every refusal: exit code 2, one line on stderr, no traceback, no file.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cli_checks import refused
from tiny_runs import IMAGES, TABLE, make_run
from trustgen.cli import main
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema

INT_CLASSES = TabularSchema([NumericColumn("a", 0, 10), CategoricalColumn("label", (0, 1))], label="label",
                            source="declared")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("runs")
    return {"table": make_run("vae", TABLE, "cpu").save(d / "table"),
            "int_table": make_run("vae", INT_CLASSES, "cpu").save(d / "int_table"),
            "images": make_run("vae", IMAGES, "cpu").save(d / "images"),
            "diffusion": make_run("diffusion", IMAGES, "cpu").save(d / "diffusion")}


@pytest.mark.parametrize("n, suffix, words", [
    ("0", ".csv", "argument -n: must be at least 1, got 0"),
    ("-5", ".csv", "must be at least 1"),
    ("2.5", ".csv", "expects a whole number of samples, got '2.5'"),
    ("1e12", ".csv", "1,000,000,000,000 samples are more than one file takes (at most 1,000,000,000)"),
    ("1000000001", ".csv", "more than one file takes"),
    ("10001", ".png", "a .png of marginals is drawn from at most 10,000 samples, not 10,001: write .csv for more"),
])
def test_n_out_of_bounds_is_refused_before_any_work(runs, tmp_path, capsys, n, suffix, words):
    refused(capsys, ["sample", runs["table"], "-n", n, "--out", tmp_path / f"s{suffix}"], words,
             tmp_path / f"s{suffix}")


def test_a_png_grid_over_400_images_isrefused(runs, tmp_path, capsys):
    refused(capsys, ["sample", runs["images"], "-n", 401, "--out", tmp_path / "g.png"],
             "a .png grid shows at most 400 images, not 401: write .npz for more", tmp_path / "g.png")


def test_the_png_holds_every_sample_the_command_says_it_wrote(runs, tmp_path, capsys, png_images):
    code = main(["sample", str(runs["images"]), "-n", "100", "--label", "3", "--seed", "0",
                 "--out", str(tmp_path / "threes.png")])
    assert code == 0 and capsys.readouterr().out.strip() == f"wrote 100 samples to {tmp_path / 'threes.png'}"
    assert png_images["n"] == 100


@pytest.mark.parametrize("run, label, value", [("table", "1", "yes"), ("table", "no", "no"),
                                               ("int_table", "1", 1), ("int_table", "0", 0)])
def test_label_by_index_or_name(runs, tmp_path, capsys, run, label, value):
    code = main(["sample", str(runs[run]), "-n", "12", "--label", label, "--out", str(tmp_path / "s.csv"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["n"] == 12 and list(out["label_counts"].values()) == [12]
    assert (pd.read_csv(tmp_path / "s.csv")["label"] == value).all()


@pytest.mark.parametrize("label, words", [
    ("2", "label '2' is neither a class name nor a class index: this run has 2 classes ['no', 'yes'], with "
          "indices 0..1"),
    ("maybe", "unknown label 'maybe'"),
])
def test_a_label_that_selects_nothing_is_refused_with_the_right_reason(runs, tmp_path, capsys, label, words):
    refused(capsys, ["sample", runs["table"], "-n", 5, "--label", label, "--out", tmp_path / "s.csv"], words,
             tmp_path / "s.csv")


def test_a_csv_is_written_batch_by_batch_never_all_at_once(runs, tmp_path, capsys, monkeypatch):
    import trustgen.sampling.writers as writers
    from trustgen.sampling.sampler import Sampler

    sizes = []
    real_write = writers._write_csv

    def recording(f, batches):
        real_write(f, (sizes.append(len(b.encoded)) or b for b in batches))

    monkeypatch.setattr(writers, "_write_csv", recording)
    monkeypatch.setattr(Sampler, "sample", lambda *a, **k: pytest.fail("sample() holds every sample in memory"))
    code = main(["sample", str(runs["table"]), "-n", "2500", "--seed", "3", "--out", str(tmp_path / "s.csv")])
    assert code == 0, capsys.readouterr().err
    assert sizes == [1000, 1000, 500]  # at most one batch in memory
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2500


def test_a_streamed_npz_from_the_command_loads_like_the_samples(runs, tmp_path, capsys):
    from trustgen.run import Run
    from trustgen.sampling.sampler import Sampler

    assert main(["sample", str(runs["images"]), "-n", "1203", "--seed", "8", "--out", str(tmp_path / "s.npz")]) == 0
    batch = Sampler(Run.load(runs["images"])).sample(1203, seed=8)
    with np.load(tmp_path / "s.npz") as z:
        assert np.array_equal(z["x"], batch.data.x.astype(np.float32)) and np.array_equal(z["y"], batch.labels)


def test_progress_goes_to_stderr_only_when_sampling_is_long(runs, tmp_path, capsys, monkeypatch):
    import tqdm.auto

    seen = {}
    real_tqdm = tqdm.auto.tqdm

    def spy(*a, **k):
        seen.update(k)
        k["delay"] = 0  # show it at once: this sampling is short
        return real_tqdm(*a, **k)

    monkeypatch.setattr(tqdm.auto, "tqdm", spy)
    argv = ["sample", str(runs["diffusion"]), "-n", "30", "--sample-steps", "4", "--out", str(tmp_path / "s.npz")]
    assert main(argv + ["--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n"] == 30  # stdout holds the JSON object only
    assert seen["delay"] > 0 and seen["disable"] is False and "4/4" in captured.err  # 1 batch x 4 steps
    assert main(argv + ["--no-progress"]) == 0
    assert seen["disable"] is True and capsys.readouterr().err == ""


def test_every_sample_option_shows_its_default_in_the_help(capsys):
    assert main(["sample", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    for option in ("-n N", "--label", "--seed", "--device", "--out", "--real", "--sampler", "--sample-steps", "--eta",
                   "--guidance", "--deterministic", "--no-progress", "--json"):
        part = text.split(f" {option} ", 1)[1].split(" --", 1)[0].lower()
        assert "default" in part or "required" in part, (option, part)
