"""The bad-input suite of issue 14: one case per class of edge, each through ``trustgen.cli.main``.

Every case asserts the CLI contract: exit code 2, exactly one line on stderr that starts with
``trustgen: error:`` and names the problem, no traceback, and nothing written: the whole working
directory (files, their bytes and modes) is the same after the refused command as before it, so
no half-written output, temporary, lock or staging copy is left anywhere.

Deeper tests of each class live beside its mechanism (tests/data/test_bad_files.py,
tests/test_damaged_runs.py, tests/test_run_directory.py, tests/sampling/test_sample_command.py,
tests/models/test_option_ranges.py); this file is the one table that covers them all.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import stat
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from trustgen.cli import main
from trustgen.io import directory_lock, file_sha256

TINY = ["--option", "hidden=8", "--option", "latent_dim=2"]
SCHEMA = {"kind": "tabular", "source": "declared", "label": "y", "columns": [
    {"name": "a", "type": "numeric", "low": 0, "high": 10},
    {"name": "b", "type": "categorical", "categories": ["x", "z"]},
    {"name": "y", "type": "categorical", "categories": ["no", "yes"]}]}
ROWS = "".join(f"{i % 9},{'xz'[i % 2]},{'yes' if i % 3 else 'no'}\n" for i in range(24))


def write_table(d: Path, rows: str = ROWS, schema: dict | None = None, header: str = "a,b,y\n") -> None:
    (d / "d.csv").write_bytes((header + rows).encode() if isinstance(rows, str) else header.encode() + rows)
    (d / "s.json").write_text(json.dumps(schema or SCHEMA))


def train_args(d: Path, *extra: str, out: str = "out") -> list[str]:
    return ["train", "--data", str(d / "d.csv"), "--schema", str(d / "s.json"), "--model", "vae", "--steps", "2",
            "--batch-size", "8", *TINY, "--no-progress", "--out", str(d / out), *extra]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A finished non-private run on a table whose classes are names ('no', 'yes')."""
    d = tmp_path_factory.mktemp("base")
    write_table(d)
    assert main(train_args(d, out="run")) == 0
    return d / "run"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, mode and content hash."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                         file_sha256(p) if p.is_file() else None)
    return out


# ------------------------------------------------------------------------- case set-ups
def _copy_run(d: Path, run: Path) -> None:
    shutil.copytree(run, d / "run")
    write_table(d)


def _rewrite_run_json(d: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads((d / "run" / "run.json").read_text())
    change(meta)
    (d / "run" / "run.json").write_text(json.dumps(meta))


def _foreign_privacy_report(d: Path, run: Path) -> None:
    _copy_run(d, run)
    report = json.loads((d / "run" / "privacy.json").read_text())
    report["epsilon"] = 0.5  # another run's claim
    (d / "run" / "privacy.json").write_text(json.dumps(report))


def _damaged_model(d: Path, run: Path) -> None:
    _copy_run(d, run)
    (d / "run" / "model.pt").write_bytes((d / "run" / "model.pt").read_bytes()[:300])
    _rewrite_run_json(d, lambda m: m["files"].update({"model.pt": file_sha256(d / "run" / "model.pt")}))


def _pickled_model(d: Path, run: Path) -> None:
    """A torch file whose pickle names a global (here ``print``; an attacker's would run code)."""
    import torch

    _copy_run(d, run)
    torch.save({"weights": print}, d / "run" / "model.pt")
    _rewrite_run_json(d, lambda m: m["files"].update({"model.pt": file_sha256(d / "run" / "model.pt")}))


def _damaged_checkpoint(d: Path, run: Path) -> None:
    _copy_run(d, run)
    (d / "run" / ".private").mkdir(exist_ok=True)
    (d / "run" / ".private" / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a torch file")


def _schema(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def setup(d: Path, run: Path) -> None:
        schema = json.loads(json.dumps(SCHEMA))
        change(schema)
        write_table(d, schema=schema)
    return setup


def _npz(write: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def setup(d: Path, run: Path) -> None:
        write(d / "d.npz")
        (d / "s.json").write_text(json.dumps({"kind": "image", "source": "declared", "channels": 1, "height": 2,
                                              "width": 2, "low": 0, "high": 1}))
    return setup


def _image_train(d: Path) -> list[str]:
    return ["train", "--data", str(d / "d.npz"), "--schema", str(d / "s.json"), "--model", "vae", "--steps", "1",
            "--no-progress", "--out", str(d / "out")]


def _held_lock(d: Path, run: Path) -> Callable[[], None]:
    """Another trustgen process writing ``out``: a child holds its lock while the command runs."""
    write_table(d)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other writer: take the lock, say so, wait to be killed
        try:
            with directory_lock(d / "out"):
                os.write(ready_w, b"1")
                signal.pause()
        finally:
            os._exit(0)
    os.read(ready_r, 1)
    return lambda: (os.kill(pid, 9), os.waitpid(pid, 0))


def _set(path: str, value) -> Callable[[dict], None]:
    def change(meta: dict) -> None:
        *keys, last = path.split(".")
        node = meta
        for k in keys:
            node = node[k]
        node[last] = value
    return change


# ------------------------------------------------------------------------- the table
# (id, set-up(d, base_run), argv(d), words the one line must contain)
CASES = [
    # 1. writing a run: --out that is not a run, or a finished run, or being written
    ("out-not-a-run", lambda d, r: (write_table(d), (d / "out").mkdir(), (d / "out" / "notes.txt").write_text("x")),
     lambda d: train_args(d), "is not a trustgen run and is not empty"),
    ("out-finished-run", _copy_run, lambda d: train_args(d, out="run"), "pass --overwrite to replace it"),
    ("out-concurrent-writer", _held_lock, lambda d: train_args(d), "being written by another trustgen process"),
    ("resume-and-overwrite", lambda d, r: write_table(d), lambda d: train_args(d, "--resume", "--overwrite"),
     "give one of them"),
    # 2. binding the parts
    ("foreign-privacy-report", _foreign_privacy_report, lambda d: ["privacy", str(d / "run")],
     "privacy.json in"),
    # 3. what a run may point to: evaluate reads real data only from --real
    ("evaluate-without-real", _copy_run,
     lambda d: ["evaluate", str(d / "run"), "--samples", str(d / "d.csv"), "--out", str(d / "rep")],
     "--real"),
    # 4. sizes are bounded before allocation
    ("run-json-huge-option", lambda d, r: (_copy_run(d, r), _rewrite_run_json(d, _set("model_options.hidden", 10**9))),
     lambda d: ["sample", str(d / "run"), "-n", "3", "--out", str(d / "s.csv")], "'hidden' must be from 1 to 4096"),
    ("option-huge-depth", lambda d, r: write_table(d), lambda d: train_args(d, "--option", "depth=1000000"),
     "'depth' must be from 1 to 16"),
    ("sampler-steps-huge", lambda d, r: write_table(d),
     lambda d: [a if a != "vae" else "diffusion" for a in train_args(d, "--option", "sample_steps=1000000000")],
     "sampler steps must be an integer from 1"),
    ("schema-too-many-categories", _schema(lambda s: s["columns"][1].update(categories=[str(i) for i in range(20_000)])),
     lambda d: train_args(d), "at most 10,000 per column"),
    ("white-box-canaries-memory", lambda d, r: write_table(d),
     lambda d: ["audit", "--data", str(d / "d.csv"), "--schema", str(d / "s.json"), "--model", "vae", "--epsilon",
                "1", "--white-box", "--canaries", "1000000", "--runs", "1", "--steps", "1", "--batch-size", "8",
                "--no-progress"], "GB per step"),
    ("evaluate-seed-overflow", _copy_run,
     lambda d: ["evaluate", str(d / "run"), "--samples", str(d / "d.csv"), "--real", str(d / "d.csv"),
                "--seed", str(2**32), "--out", str(d / "rep")], "argument --seed: must be in"),
    ("n-too-many", _copy_run, lambda d: ["sample", str(d / "run"), "-n", str(10**12), "--out", str(d / "s.csv")],
     "more than one file takes"),
    # 5. output paths checked before any work (a path under a file can never be written)
    ("train-out-unwritable", lambda d, r: (write_table(d), (d / "f").write_text("x")),
     lambda d: train_args(d, out="f/run"), "is a file, not a directory"),
    ("sample-out-unwritable", lambda d, r: (_copy_run(d, r), (d / "f").write_text("x")),
     lambda d: ["sample", str(d / "run"), "-n", "3", "--out", str(d / "f" / "s.csv")], "cannot be created"),
    ("evaluate-out-unwritable", lambda d, r: (_copy_run(d, r), (d / "f").write_text("x")),
     lambda d: ["evaluate", str(d / "run"), "--samples", str(d / "d.csv"), "--real", str(d / "d.csv"),
                "--out", str(d / "f" / "rep")], "cannot be created"),
    ("audit-out-unwritable", lambda d, r: (write_table(d), (d / "f").write_text("x")),
     lambda d: ["audit", "--data", str(d / "d.csv"), "--schema", str(d / "s.json"), "--model", "vae",
                "--steps", "2", "--canaries", "4", "--no-progress", "--out", str(d / "f" / "a")], "cannot be created"),
    ("schema-infer-out-unwritable", lambda d, r: (write_table(d), (d / "f").write_text("x")),
     lambda d: ["schema", "infer", str(d / "d.csv"), "--out", str(d / "f" / "s.json")], "cannot be created"),
    ("out-name-too-long", lambda d, r: write_table(d), lambda d: train_args(d, out="L" * 300), "name too long"),
    ("data-name-too-long", lambda d, r: write_table(d),
     lambda d: [a if a != str(d / "d.csv") else str(d / ("L" * 300 + ".csv")) for a in train_args(d)],
     "name too long"),
    ("out-nul-byte", lambda d, r: write_table(d), lambda d: train_args(d, out="a\x00b"), "NUL byte"),
    ("out-is-the-input", lambda d, r: write_table(d),
     lambda d: ["schema", "infer", str(d / "d.csv"), "--out", str(d / "d.csv")], "is the command's input --data"),
    ("private-output-inside-a-run", _copy_run,
     lambda d: ["evaluate", str(d / "run"), "--samples", str(d / "d.csv"), "--real", str(d / "d.csv"),
                "--out", str(d / "run" / "report")], "inside the run directory"),
    ("out-symlink", lambda d, r: (write_table(d), (d / "real").mkdir(), (d / "link").symlink_to(d / "real")),
     lambda d: train_args(d, out="link"), "is a symbolic link"),
    ("out-under-a-symlink-loop", lambda d, r: (_copy_run(d, r), (d / "l1").symlink_to(d / "l2"),
                                               (d / "l2").symlink_to(d / "l1")),
     lambda d: ["sample", str(d / "run"), "-n", "3", "--out", str(d / "l1" / "s.csv")], "broken symbolic link"),
    ("out-path-too-long", lambda d, r: write_table(d), lambda d: train_args(d, out="/".join(["P" * 200] * 25)),
     "too long a path"),
    ("out-nested-never-made", lambda d, r: write_table(d, rows=ROWS + "1,x,maybe\n"),
     lambda d: train_args(d, out="a/b/run"), "not declared categories"),
    ("demo-out-not-a-demo", lambda d, r: ((d / "mine").mkdir(), (d / "mine" / "thesis.tex").write_text("x")),
     lambda d: ["demo", "--smoke", "--no-progress", "--out", str(d / "mine")], "holds no demo"),
    # 6. typed validation of options and config fields; schema keys; one record
    ("option-not-a-number", lambda d, r: write_table(d), lambda d: train_args(d, "--option", "hidden=abc"),
     "'hidden' must be of type int"),
    ("option-fraction", lambda d, r: write_table(d), lambda d: train_args(d, "--option", "latent_dim=2.5"),
     "'latent_dim' must be of type int"),
    ("option-negative", lambda d, r: write_table(d), lambda d: train_args(d, "--option", "hidden=-5"),
     "'hidden' must be from 1"),
    ("option-zero", lambda d, r: write_table(d), lambda d: train_args(d, "--option", "hidden=0"),
     "'hidden' must be from 1"),
    ("option-beta-negative", lambda d, r: write_table(d), lambda d: train_args(d, "--option", "beta=-1"),
     "'beta' must be in (0"),
    ("seed-overflow", lambda d, r: write_table(d), lambda d: train_args(d, "--seed", str(2**70)),
     "argument --seed: must be in"),
    ("checkpoint-every-negative", lambda d, r: write_table(d), lambda d: train_args(d, "--checkpoint-every", "-1"),
     "argument --checkpoint-every: must be in"),
    ("schema-typo-key", _schema(lambda s: s.update(lable=s.pop("label"))), lambda d: train_args(d),
     "did you mean 'label'"),
    ("schema-unknown-source", _schema(_set("source", "trust-me")), lambda d: train_args(d), "unknown schema source"),
    ("one-record", lambda d, r: write_table(d, rows="1,x,yes\n"), lambda d: train_args(d), "holds 1 record"),
    # 7. file formats
    ("csv-not-utf8", lambda d, r: write_table(d, rows="1,x,yes\n".encode() + b"2,\xff\xfe,no\n"),
     lambda d: train_args(d), "not UTF-8"),
    ("csv-ragged", lambda d, r: write_table(d, rows=ROWS + "1,x,yes,extra\n"), lambda d: train_args(d),
     "not a well-formed CSV"),
    ("csv-duplicate-columns", lambda d, r: write_table(d, header="a,a,y\n"), lambda d: train_args(d),
     "more than once"),
    ("schema-binary", lambda d, r: (write_table(d), (d / "s.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")),
     lambda d: train_args(d), "not a JSON text file"),
    ("schema-field-type", _schema(lambda s: s["columns"][0].update(low="eighteen")), lambda d: train_args(d),
     "'low' must be a finite number"),
    ("npz-pickle", _npz(lambda p: p.write_bytes(pickle.dumps({"x": [1, 2]}))), _image_train, "pickle"),
    ("npz-not-a-zip", _npz(lambda p: p.write_bytes(b"just text, not an archive")), _image_train, "d.npz"),
    ("npz-renamed-npy", _npz(lambda p: np.save(open(p, "wb"), np.zeros((3, 1, 2, 2)))), _image_train, ".npy"),
    ("npz-complex-pixels", _npz(lambda p: np.savez(open(p, "wb"), x=np.zeros((3, 1, 2, 2), complex))),
     _image_train, "complex"),
    ("model-pt-damaged", _damaged_model, lambda d: ["sample", str(d / "run"), "-n", "3", "--out", str(d / "s.csv")],
     "model weights"),
    ("model-pt-pickle", _pickled_model, lambda d: ["privacy", str(d / "run")], "never loads"),
    ("checkpoint-damaged", _damaged_checkpoint, lambda d: train_args(d, "--resume", out="run"), "checkpoint"),
    ("run-json-truncated", lambda d, r: (_copy_run(d, r), (d / "run" / "run.json").write_text('{"format": 3, "fam')),
     lambda d: ["privacy", str(d / "run")], "not valid JSON"),
    ("train-log-damaged", lambda d, r: (_copy_run(d, r), (d / "run" / "train_log.jsonl").write_text("{not json\n"),
                                        _rewrite_run_json(d, lambda m: m["files"].update(
                                            {"train_log.jsonl": file_sha256(d / "run" / "train_log.jsonl")}))),
     lambda d: ["privacy", str(d / "run")], "line 1 is not a JSON object"),
    ("run-json-label-prior", lambda d, r: (_copy_run(d, r), _rewrite_run_json(d, _set("label_prior", [0, 0]))),
     lambda d: ["sample", str(d / "run"), "-n", "3", "--out", str(d / "s.csv")], "label_prior must hold"),
    ("run-json-huge-integer", lambda d, r: (_copy_run(d, r), _rewrite_run_json(d, _set("format", 10**400))),
     lambda d: ["privacy", str(d / "run")], "'format' must be"),
    ("schema-span-overflow", _schema(lambda s: s["columns"][0].update(low=-1e308, high=1e308)),
     lambda d: train_args(d), "a span a float can hold"),
    ("run-json-wrong-type", lambda d, r: (_copy_run(d, r), _rewrite_run_json(d, _set("family", 3))),
     lambda d: ["privacy", str(d / "run")], "'family' must be a string"),
    # 8. bugs found on the way
    ("label-unknown-name", _copy_run,
     lambda d: ["sample", str(d / "run"), "-n", "3", "--label", "maybe", "--out", str(d / "s.csv")],
     "unknown label 'maybe'"),
    ("label-index-out-of-range", _copy_run,
     lambda d: ["sample", str(d / "run"), "-n", "3", "--label", "2", "--out", str(d / "s.csv")],
     "indices 0..1"),
    ("png-too-many", _copy_run, lambda d: ["sample", str(d / "run"), "-n", "10001", "--out", str(d / "s.png")],
     "at most 10,000"),
    ("resume-without-checkpoint", lambda d, r: (write_table(d), (d / "out").mkdir()),
     lambda d: train_args(d, "--resume"), "nothing to resume"),
]


@pytest.mark.parametrize("case, setup, argv, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, setup, argv, words, base_run, tmp_path, capsys,
                                                           recwarn):
    d = tmp_path / "work"
    d.mkdir()
    cleanup = setup(d, base_run)
    before = snapshot(d)
    capsys.readouterr()
    try:
        code = main(argv(d))
    finally:
        if callable(cleanup):
            cleanup()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("trustgen: error:"), err
    assert words in lines[0] and "Traceback" not in err, lines[0]
    assert "weights_only=False" not in err and "allow_pickle=True" not in err
    assert snapshot(d) == before, "the refused command changed the directory"


def test_a_label_index_selects_that_class_when_the_classes_are_names(base_run, tmp_path, capsys):
    """``--label 1`` on classes ('no', 'yes') is the index 1 ('yes'), not an unknown name."""
    out = tmp_path / "s.csv"
    assert main(["sample", str(base_run), "-n", "5", "--label", "1", "--seed", "0", "--out", str(out)]) == 0
    assert set(out.read_text().splitlines()[1:]) and all(r.endswith(",yes") for r in out.read_text().splitlines()[1:])


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_every_file_of_a_run_follows_the_umask_and_the_resume_state_is_owner_only(tmp_path, umask):
    """privacy.json used to be written 0644 and the other files 0600 whatever the umask."""
    write_table(tmp_path)
    old = os.umask(umask)
    try:
        assert main(train_args(tmp_path, "--checkpoint-every", "1")) == 0
    finally:
        os.umask(old)
    run = tmp_path / "out"
    for name in ("run.json", "model.pt", "schema.json", "train_log.jsonl", "privacy.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~umask, name
    assert stat.S_IMODE((run / ".private").stat().st_mode) == 0o700
    assert stat.S_IMODE((run / ".private" / "checkpoint.pt").stat().st_mode) == 0o600


@pytest.mark.parametrize("row, column", [("SECRET-NAME,x,yes", "a"), ("987654.25,x,yes", "a"),
                                         ("1,SECRET-CLINIC,yes", "b"), ("1,x,SECRET-DIAGNOSIS", "y")])
def test_a_refused_value_is_named_by_its_place_never_printed(tmp_path, capsys, row, column):
    """Messages land in terminals, logs and CI output: a private cell's value must not."""
    write_table(tmp_path, rows=ROWS + row + "\n")
    assert main(train_args(tmp_path)) == 2
    err = capsys.readouterr().err
    value = row.split(",")[["a", "b", "y"].index(column)]
    assert f"column {column!r}" in err and "row 25" in err and value not in err, err


@pytest.mark.parametrize("env, words", [({"RANK": "0", "WORLD_SIZE": "abc"}, "must be whole numbers"),
                                        ({"RANK": "0", "WORLD_SIZE": "1"}, "could not join the process group")])
def test_a_broken_distributed_launch_is_one_line(tmp_path, capsys, monkeypatch, env, words):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    write_table(tmp_path)
    assert main(train_args(tmp_path, "--distributed")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines
