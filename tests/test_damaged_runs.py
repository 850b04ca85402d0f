"""A damaged run directory is refused in one line (issue 14, item 7): model.pt, the resume
checkpoint and run.json, each truncated, replaced by other bytes, or altered.

run.json binds model.pt by SHA-256, so a damaged model.pt is tried twice: as it lands (the hash
differs: refused as not belonging to the run) and with run.json's hash rewritten to match (the
file itself must then be refused). No message may suggest loading a file unsafely.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from trustgen.cli import main
from trustgen.errors import RunError, TrustgenError
from trustgen.io import file_sha256, safe_torch_load
from trustgen.run import Run

TRAIN = ["train", "--data", "breast_cancer", "--model", "vae", "--steps", "2", "--batch-size", "16",
         "--option", "hidden=8", "--option", "latent_dim=2", "--no-progress"]


class NeverRun:
    """Pickles as a call to print: a loader that ran code from the file would print the marker."""

    def __reduce__(self):
        return (print, ("CODE FROM THE FILE RAN",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert (out / ".private" / "checkpoint.pt").is_file()  # a non-private run keeps its resume state
    return out


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    """A fresh copy of the trained run, to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def random_bytes(p: Path) -> None:
    p.write_bytes(os.urandom(4096))


def empty(p: Path) -> None:
    p.write_bytes(b"")


def plain_zip(p: Path) -> None:
    p.unlink()
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("weights.txt", "0.1 0.2")


def bad_name(p: Path) -> None:
    """A zip whose directory claims UTF-8 names but holds a byte that is not (found by the fuzzer:
    zipfile raises UnicodeDecodeError, not BadZipFile)."""
    p.unlink()
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/d\u00e4ta.pkl", b"x")
    p.write_bytes(p.read_bytes().replace("\u00e4".encode(), b"\xe1("))


def with_code(p: Path) -> None:
    torch.save({"encoder.0.weight": NeverRun()}, p)


def plain_pickle(p: Path) -> None:
    p.write_bytes(pickle.dumps(NeverRun()))


DAMAGE = {
    truncate: "is not a torch file written by trustgen",
    random_bytes: "is not a torch file written by trustgen",
    empty: "is empty (0 bytes)",
    plain_zip: "is a zip archive but not a torch file",
    bad_name: "is damaged (a zip archive whose directory cannot be read)",
    with_code: "refers to Python objects or code (builtins.print) that trustgen never loads",
    plain_pickle: "is not a torch file written by trustgen",
}


def rebind(run: Path, name: str = "model.pt") -> None:
    """Rewrite run.json's hash of ``name`` to match the file (as a forger would)."""
    meta = json.loads((run / "run.json").read_text())
    meta["files"][name] = file_sha256(run / name)
    (run / "run.json").write_text(json.dumps(meta))


def assert_one_line(rc: int, err: str, *words: str) -> None:
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("trustgen: error:"), err
    assert "Traceback" not in err and "weights_only" not in err
    for w in words:
        assert w in err, (w, err)


def sample_and_privacy(run: Path, tmp_path: Path, capsys, *words: str) -> None:
    """``trustgen sample`` (which must write nothing) and ``trustgen privacy`` both refuse ``run``."""
    out = tmp_path / "samples.csv"
    rc = main(["sample", str(run), "-n", "3", "--out", str(out)])
    assert_one_line(rc, capsys.readouterr().err, *words)
    assert not out.exists()
    rc = main(["privacy", str(run)])
    assert_one_line(rc, capsys.readouterr().err, *words)


# ------------------------------------------------------------------------------------ model.pt

@pytest.mark.parametrize("damage", list(DAMAGE), ids=lambda f: f.__name__)
def test_a_damaged_model_file_is_refused_by_its_hash_and_by_its_contents(run_dir, damage, capsys):
    damage(run_dir / "model.pt")
    with pytest.raises(RunError, match="model.pt .* does not belong to this run"):
        Run.load(run_dir)
    rebind(run_dir)
    with pytest.raises(RunError) as info:
        Run.load(run_dir)
    message = str(info.value)
    assert message.startswith(f"model weights {str(run_dir / 'model.pt')!r} {DAMAGE[damage]}")
    assert "\n" not in message and "weights_only" not in message and "re-create the run" in message
    assert "CODE FROM THE FILE RAN" not in capsys.readouterr().out


@pytest.mark.parametrize("damage", [truncate, with_code, empty], ids=lambda f: f.__name__)
def test_cli_refuses_a_damaged_model_file_in_one_line(run_dir, tmp_path, capsys, damage):
    damage(run_dir / "model.pt")
    rebind(run_dir)
    sample_and_privacy(run_dir, tmp_path, capsys, "model weights", DAMAGE[damage])


@pytest.mark.parametrize("state, words", [
    ({"not.a.weight": torch.zeros(3)}, "does not hold the weights of this run's vae model"),
    ("shapes", "does not hold the weights of this run's vae model"),
    ([torch.zeros(3)], "does not hold the weights"),
])
def test_a_model_file_with_other_weights_is_refused(run_dir, tmp_path, capsys, state, words):
    if state == "shapes":
        state = {k: torch.zeros(*(s + 1 for s in v.shape)) for k, v in torch.load(run_dir / "model.pt").items()}
    torch.save(state, run_dir / "model.pt")
    rebind(run_dir)
    with pytest.raises(RunError, match=words):
        Run.load(run_dir)
    sample_and_privacy(run_dir, tmp_path, capsys, words)


@pytest.mark.parametrize("damage", list(DAMAGE), ids=lambda f: f.__name__)
def test_safe_torch_load_names_what_the_file_should_be(tmp_path, damage, capsys):
    p = tmp_path / "f.pt"
    torch.save({"w": torch.zeros(2)}, p)
    damage(p)
    with pytest.raises(RunError) as info:
        safe_torch_load(p, what="resume checkpoint", hint="delete it")
    message = str(info.value)
    assert message.startswith(f"resume checkpoint {str(p)!r} {DAMAGE[damage]}") and message.endswith("; delete it")
    assert "CODE FROM THE FILE RAN" not in capsys.readouterr().out


def test_safe_torch_load_keeps_its_old_call_and_refuses_a_missing_file(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "f.pt")
    assert torch.equal(safe_torch_load(tmp_path / "f.pt")["w"], torch.ones(2))
    with pytest.raises(RunError, match="torch file .* does not exist; re-create it with trustgen"):
        safe_torch_load(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------ checkpoint

@pytest.mark.parametrize("damage, words", [
    (truncate, DAMAGE[truncate]),
    (with_code, DAMAGE[with_code]),
    (lambda p: torch.save({"family": "vae"}, p), "is not a trustgen checkpoint (it lacks ['train_config'"),
    (lambda p: torch.save([1, 2], p), "is not a trustgen checkpoint"),
])
def test_resuming_from_a_damaged_checkpoint_is_refused_and_leaves_the_run_as_it_was(run_dir, capsys, damage, words):
    ckpt = run_dir / ".private" / "checkpoint.pt"
    damage(ckpt)
    before = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in run_dir.rglob("*") if f.is_file()}
    rc = main([*TRAIN, "--out", str(run_dir), "--resume"])
    assert_one_line(rc, capsys.readouterr().err, "resume checkpoint", words, "without --resume")
    assert {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in run_dir.rglob("*") if f.is_file()} == before
    assert "CODE FROM THE FILE RAN" not in capsys.readouterr().out


# ------------------------------------------------------------------------------------ run.json

def edited(change):
    """Damage run.json by ``change`` to its parsed content (a hand edit that keeps it JSON)."""
    def damage(p: Path) -> None:
        meta = json.loads(p.read_text())
        change(meta)
        p.write_text(json.dumps(meta))
    return damage


def _set(key, value):
    return edited(lambda meta: meta.__setitem__(key, value))


def _drop(key):
    return edited(lambda meta: meta.pop(key))


@pytest.mark.parametrize("damage, words", [
    (truncate, "run file .* is not valid JSON .*damaged or truncated"),
    (random_bytes, "run file .* is not a JSON text file \\(not UTF-8"),
    (lambda p: p.write_text("[1, 2, 3]"), "must hold a JSON object .* at its top level, got a list"),
    (_drop("family"), "run.json in .* has no 'family' \\(a string\\)"),
    (_drop("data_spec"), "has no 'data_spec'"),
    (_drop("model_options"), "has no 'model_options'"),
    (_drop("train_config"), "has no 'train_config'"),
    (_set("family", 3), "'family' must be a string, got 3"),
    (_set("model_options", []), "'model_options' must be a JSON object .*, got \\[\\] \\(a list\\)"),
    (_set("caveats", "none"), "'caveats' must be a list"),
    (_set("sampling", 1), "'sampling' must be a JSON object"),
    (_set("format", True), "'format' must be a whole number"),
    (_set("format", 99), "run format 99 is not supported"),
    (_set("data_spec", {"kind": "tabular"}), "has a malformed data_spec"),
    (_set("family", "flow"), "flow"),
    (edited(lambda meta: meta["model_options"].__setitem__("hidden", "8")), "model_options do not build a vae model"),
])
def test_a_damaged_run_json_is_refused_in_one_line(run_dir, tmp_path, capsys, damage, words):
    damage(run_dir / "run.json")
    with pytest.raises(TrustgenError) as info:
        Run.load(run_dir)
    assert "\n" not in str(info.value) and re.search(words, str(info.value)), (words, str(info.value))
    sample_and_privacy(run_dir, tmp_path, capsys)


def test_an_undamaged_copy_still_loads(run_dir):
    assert Run.load(run_dir).family == "vae"
