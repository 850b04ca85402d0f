"""Runs on disk and the ``trustgen`` command, end to end on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from trustgen.cli import main
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema, save_schema
from trustgen.errors import RunError
from trustgen.pipeline import train
from trustgen.run import Run
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler

FAST = TrainConfig(steps=6, batch_size=32, progress=False)
TINY = {"vae": {"hidden": 16, "width": 8}, "gan": {"hidden": 16, "width": 8},
        "diffusion": {"hidden": 16, "width": 8, "sample_steps": 4}}


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
@pytest.mark.parametrize("dataset", ["breast_cancer", "digits"])
def test_run_reloads_and_samples_identically(family, dataset, tmp_path):
    run = train(dataset, family, FAST, model_options=TINY[family], out=tmp_path / "run")
    for f in ("run.json", "schema.json", "model.pt", "train_log.jsonl", "privacy.json", ".private/checkpoint.pt"):
        assert (tmp_path / "run" / f).is_file(), f
    loaded = Run.load(tmp_path / "run")
    a, b = Sampler(run).sample(20, seed=3), Sampler(loaded).sample(20, seed=3)
    assert np.array_equal(a.labels, b.labels)
    if dataset == "digits":
        assert np.array_equal(a.data.x, b.data.x) and a.data.x.min() >= 0 and a.data.x.max() <= 16
    else:
        pd.testing.assert_frame_equal(a.data, b.data)
        assert list(a.data.columns) == [c.name for c in run.schema.columns]
    assert not np.array_equal(Sampler(run).sample(20, seed=4).encoded.numpy(), a.encoded.numpy())
    assert loaded.privacy is not None and not loaded.privacy.is_private


def test_sampler_labels_by_name_index_and_prior(tmp_path):
    run = train("breast_cancer", "vae", FAST, model_options=TINY["vae"])
    assert set(Sampler(run).sample(10, labels="benign", seed=0).data["diagnosis"]) == {"benign"}
    assert set(Sampler(run).sample(10, labels=0, seed=0).data["diagnosis"]) == {"malignant"}
    assert set(Sampler(run).sample(10, labels="0", seed=0).data["diagnosis"]) == {"malignant"}  # as typed in a shell
    prior = Sampler(run).sample(4000, seed=0).labels.mean()
    assert abs(prior - run.label_prior[1]) < 0.03  # 4000 draws: sd 0.0076, so ~4 sd
    with pytest.raises(Exception, match="unknown label"):
        Sampler(run).sample(3, labels="unknown")


def test_incomplete_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="not a trustgen run"):
        Run.load(tmp_path)
    train("breast_cancer", "vae", FAST, model_options=TINY["vae"], out=tmp_path / "r")
    (tmp_path / "r" / "model.pt").unlink()
    with pytest.raises(RunError, match="model.pt is missing"):
        Run.load(tmp_path / "r")


def cli(*args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_sample_on_a_user_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"dose": rng.uniform(0, 5, 60), "visits": rng.integers(0, 9, 60),
                       "arm": rng.choice(["a", "b"], 60), "cured": rng.choice(["no", "yes"], 60)})
    df.to_csv(tmp_path / "d.csv", index=False)
    save_schema(TabularSchema([NumericColumn("dose", 0, 5), NumericColumn("visits", 0, 10, integer=True),
                               CategoricalColumn("arm", ("a", "b")), CategoricalColumn("cured", ("no", "yes"))],
                              label="cured"), tmp_path / "s.json")
    code, out, _ = cli("train", "--data", tmp_path / "d.csv", "--schema", tmp_path / "s.json", "--model", "diffusion",
                       "--steps", 5, "--option", "hidden=16", "--out", tmp_path / "run", "--json", "--no-progress",
                       capsys=capsys)
    assert code == 0 and json.loads(out)["family"] == "diffusion"
    code, out, _ = cli("sample", tmp_path / "run", "-n", 25, "--label", "yes", "--seed", 1,
                       "--out", tmp_path / "s.csv", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["label_counts"] == {"yes": 25}
    s = pd.read_csv(tmp_path / "s.csv")
    assert list(s.columns) == ["dose", "visits", "arm", "cured"] and len(s) == 25 and (s["cured"] == "yes").all()
    assert s["visits"].between(0, 10).all() and s["dose"].between(0, 5).all()


def test_cli_image_outputs_npz_and_png(tmp_path, capsys):
    assert cli("train", "--data", "digits", "--model", "vae", "--steps", 3, "--option", "width=8",
               "--out", tmp_path / "run", "--no-progress", capsys=capsys)[0] == 0
    assert cli("sample", tmp_path / "run", "-n", 30, "--seed", 0, "--out", tmp_path / "s.npz", capsys=capsys)[0] == 0
    z = np.load(tmp_path / "s.npz")
    assert z["x"].shape == (30, 1, 8, 8) and z["y"].shape == (30,) and 0 <= z["x"].min() and z["x"].max() <= 16
    assert cli("sample", tmp_path / "run", "-n", 30, "--out", tmp_path / "g.png", capsys=capsys)[0] == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, words", [
    (["train", "--data", "digits", "--model", "flow", "--out", "x"], "invalid choice"),
    (["train", "--data", "nope.csv", "--model", "vae", "--out", "x"], "neither a built-in dataset"),
    (["train", "--data", "digits", "--model", "vae", "--epochs", "0", "--out", "x"], "epochs"),
    (["sample", "missing-run", "-n", "3", "--out", "s.csv"], "not a trustgen run"),
    (["sample", "missing-run", "-n", "3", "--out", "s.txt"], "--out must end in"),
    (["train"], "required"),
])
def test_cli_bad_arguments_exit_2_with_one_line(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(*args, capsys=capsys)
    assert code == 2 and words in err and err.strip().count("\n") == 0



def test_cli_schema_infer_marks_draft(tmp_path, capsys):
    pd.DataFrame({"a": [1.5, 2.0], "b": ["x", "y"]}).to_csv(tmp_path / "d.csv", index=False)
    code, out, _ = cli("schema", "infer", tmp_path / "d.csv", "--label", "b", "--json", capsys=capsys)
    obj = json.loads(out)
    assert code == 0 and obj["schema"]["source"] == "data-derived" and "NOT private" in obj["warning"]


def test_python_m_trustgen_help_runs():
    r = subprocess.run([sys.executable, "-m", "trustgen", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "train" in r.stdout and "sample" in r.stdout


def test_help_imports_no_torch_or_sklearn():
    """--help answers fast because the command's parser imports none of the heavy stages."""
    code = "import sys, trustgen.cli as c; c.build_parser(); print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_demo_smoke_writes_grid_and_summary(tmp_path, capsys):
    code, out, _ = cli("demo", "--smoke", "--out", tmp_path / "demo", "--json", "--no-progress", capsys=capsys)
    summary = json.loads(out)
    assert code == 0 and 0 <= summary["tstr_accuracy_on_holdout"] <= 1 and 0 <= summary["label_coverage"] <= 10
    assert 0 < summary["epsilon"] <= 10.0 and "differential privacy" in summary["text"]  # the demo is private
    report = json.loads((tmp_path / "demo" / "run" / "privacy.json").read_text())
    assert report["epsilon"] == pytest.approx(summary["epsilon"], abs=1e-4)
    assert (tmp_path / "demo" / "samples.png").is_file() and (tmp_path / "demo" / "summary.json").is_file()


def test_a_table_png_shows_the_samples_alone_unless_real_data_is_passed(tmp_path, capsys, monkeypatch):
    """`trustgen sample --out x.png` releases samples only: it must not read the training rows."""
    import trustgen.data.loaders as loaders

    code, _, _ = cli("train", "--data", "breast_cancer", "--model", "vae", "--steps", 2, "--option", "hidden=8",
                     "--no-progress", "--out", tmp_path / "run", capsys=capsys)
    assert code == 0
    real_load = loaders.load_data

    def no_private_reads(*a, **k):
        raise AssertionError("the sample command read the training data")

    monkeypatch.setattr(loaders, "load_data", no_private_reads)
    assert cli("sample", tmp_path / "run", "-n", 50, "--out", tmp_path / "m.png", capsys=capsys)[0] == 0
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(loaders, "load_data", real_load)
    assert cli("sample", tmp_path / "run", "-n", 50, "--real", "breast_cancer", "--out", tmp_path / "r.png",
               capsys=capsys)[0] == 0
    assert cli("sample", tmp_path / "run", "-n", 5, "--real", "breast_cancer", "--out", tmp_path / "r.csv",
               capsys=capsys)[0] == 2


def _commands(parser, prefix=()):
    """(name, parser) of every command and subcommand of the CLI."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_option_of_every_command_has_a_help_text_that_shows_its_default():
    import argparse

    from trustgen.cli import build_parser

    checked = 0
    for name, sub in _commands(build_parser()):
        text = sub.format_help()
        for action in sub._actions:
            if action.help == "show this help message and exit" or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (name, action.dest)
            default = action.default
            has_default = not (default is None or default is False or default == [])
            if has_default and action.option_strings:
                helped = sub._get_formatter()._expand_help(action) if action.help else ""
                assert "default" in helped, (name, action.dest, helped)
            checked += 1
        assert "usage:" in text
    assert checked > 60  # every command's options were seen


def test_ctrl_c_is_a_line_and_exit_130_not_a_traceback(monkeypatch, capsys):
    """Ctrl-C during a command: one line on stderr and the shell's code for an interrupt."""
    from trustgen import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_check_paths", interrupted)
    assert main(["privacy", "somewhere"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("trustgen: interrupted") and err.count("\n") == 1 and "Traceback" not in err
