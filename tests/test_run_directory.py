"""A run directory is one artefact: written whole, by one writer, its files bound by hashes.

The kill tests inject a process death (``os._exit``) before every file-system operation of
``Run.save`` in turn, in a forked child, until a save completes: after each death the directory
must load as the old complete run or the new complete run, never a mix.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

import trustgen.io as tio
from trustgen.errors import RunError
from trustgen.io import directory_lock
from trustgen.pipeline import train
from trustgen.privacy.report import PrivacyReport
from trustgen.run import Run
from trustgen.training import TrainConfig


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """An old run and a new one (other weights, a DP-looking report) of the same model."""
    old = train("breast_cancer", "vae", TrainConfig(steps=2, batch_size=16, progress=False),
                model_options={"hidden": 8, "latent_dim": 2})
    new = dataclasses.replace(old, model=type(old.model)(old.model.spec, old.model.config))
    new.model.load_state_dict({k: v + 1 for k, v in old.model.state_dict().items()})
    new.privacy = dataclasses.replace(PrivacyReport.from_dict(old.privacy.to_dict()), steps=999)
    return old, new


def _fingerprint(run: Run) -> tuple[float, int]:
    return float(sum(v.double().sum() for v in run.model.state_dict().values())), run.privacy.steps


MUTATIONS = [("os", "replace"), ("os", "rename"), ("os", "unlink"), ("os", "rmdir"), ("os", "fsync"),
             ("os", "mkdir"), ("tio", "_exchange")]


def _die_before_operation(k: int) -> None:
    """In the child: count file-system mutations; exit hard just before the k-th."""
    count = [0]
    for owner, name in MUTATIONS:
        target = os if owner == "os" else tio
        real = getattr(target, name)

        def wrapped(*a, _real=real, **kw):
            count[0] += 1
            if count[0] == k:
                os._exit(9)
            return _real(*a, **kw)

        setattr(target, name, wrapped)


@pytest.mark.parametrize("exchange", [True, False], ids=["atomic-exchange", "rename-aside"])
def test_a_kill_before_any_operation_of_save_leaves_the_old_or_the_new_complete_run(two_runs, tmp_path, exchange,
                                                                                    monkeypatch):
    old, new = two_runs
    if not exchange:
        monkeypatch.setattr(tio, "_exchange", lambda a, b: False)
    want = {_fingerprint(old): "old", _fingerprint(new): "new"}
    p = tmp_path / "run"
    seen = []
    for k in range(1, 200):
        shutil.rmtree(p, ignore_errors=True)
        old.save(p)
        pid = os.fork()
        if pid == 0:  # child: save the new run, dying before operation k
            try:
                _die_before_operation(k)
                new.save(p)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        got = want.get(_fingerprint(Run.load(p)))
        assert got is not None, f"kill before operation {k}: a mix of the old and the new run"
        seen.append(got)
        leftovers = [f.name for f in tmp_path.iterdir() if f.name != "run"]
        if os.waitstatus_to_exitcode(status) == 0:
            break
        old.save(p)  # the next save sweeps what the killed one left
        assert [f.name for f in tmp_path.iterdir()] == ["run"], leftovers
    assert seen[-1] == "new" and "old" in seen and k > 5  # the kills did land inside the save


def test_a_second_writer_is_refused_while_the_first_holds_the_directory(two_runs, tmp_path):
    old, _ = two_runs
    p = tmp_path / "run"
    with directory_lock(p):
        pid = os.fork()
        if pid == 0:
            try:
                old.save(p)
                os._exit(0)
            except RunError as e:
                os._exit(3 if "being written by another trustgen process" in str(e) else 4)
            finally:
                os._exit(5)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
        old.save(p)  # the holder itself may write (the lock is re-entrant in its process)
    assert not (tmp_path / ".run.lock").exists()
    Run.load(p)


@pytest.mark.parametrize("victim", ["privacy.json", "model.pt", "schema.json", "train_log.jsonl"])
def test_a_file_copied_from_another_run_is_refused(two_runs, tmp_path, victim):
    old, new = two_runs
    old.save(tmp_path / "a")
    new.save(tmp_path / "b")
    if victim == "schema.json":  # same schema in both runs: edit it instead
        text = (tmp_path / "a" / victim).read_text()
        (tmp_path / "a" / victim).write_text(text.replace("\n", "\n ", 1))
    elif victim == "train_log.jsonl":
        (tmp_path / "a" / victim).write_text('{"step": 1, "loss": 0.0}\n')
    else:
        shutil.copy(tmp_path / "b" / victim, tmp_path / "a" / victim)
    with pytest.raises(RunError, match=f"{victim}.*does not belong to this run"):
        Run.load(tmp_path / "a")


def test_a_privacy_report_added_to_a_run_without_one_is_refused(two_runs, tmp_path):
    old, new = two_runs
    bare = dataclasses.replace(old, privacy=None)
    bare.save(tmp_path / "a")
    new.save(tmp_path / "b")
    shutil.copy(tmp_path / "b" / "privacy.json", tmp_path / "a" / "privacy.json")
    with pytest.raises(RunError, match="privacy.json.*not part of this run"):
        Run.load(tmp_path / "a")


def test_save_replaces_the_whole_directory_and_keeps_only_what_it_is_told(two_runs, tmp_path):
    old, _ = two_runs
    p = tmp_path / "run"
    old.save(p)
    (p / "stray.txt").write_text("x")
    (p / ".private").mkdir()
    (p / ".private" / "checkpoint.pt").write_bytes(b"state")
    old.save(p, keep=(".private",))
    assert not (p / "stray.txt").exists() and (p / ".private" / "checkpoint.pt").read_bytes() == b"state"
    old.save(p)
    assert not (p / ".private").exists()
    assert _fingerprint(Run.load(p)) == _fingerprint(old)


def test_a_second_training_into_a_directory_being_trained_into_is_refused_before_any_work(tmp_path):
    """Another process holds the run directory (as a training in progress does): train refuses."""
    p = tmp_path / "run"
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with directory_lock(p):
                os.write(ready_w, b"1")
                os.read(done_r, 1)  # hold the lock until the parent has tried
        finally:
            os._exit(0)
    os.read(ready_r, 1)
    try:
        with pytest.raises(RunError, match="being written by another trustgen process"):
            train("breast_cancer", "vae", TrainConfig(steps=1, batch_size=8, progress=False), out=p)
        assert not p.exists()
    finally:
        os.write(done_w, b"1")
        os.waitpid(pid, 0)


def test_a_copy_a_killed_save_left_beside_a_dp_run_is_swept_with_its_secret_checkpoint(tmp_path):
    """A kill between the swap and the removal of the replaced copy leaves it beside the run; it
    holds that training's checkpoint (the noise key). The next training sweeps it, and a DP run
    refuses to finish while any such copy remains."""
    from trustgen.privacy.config import PrivacyConfig

    leftover = tmp_path / ".run.x1y2.staging" / ".private"
    leftover.mkdir(parents=True)
    (leftover / "checkpoint.pt").write_bytes(b"secret key")
    train("breast_cancer", "vae", TrainConfig(steps=2, batch_size=64, progress=False), model_options={"hidden": 8},
          privacy=PrivacyConfig(4.0, secret_seed=1), out=tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("existed", [False, True])
def test_a_training_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, monkeypatch, existed):
    """No empty run directory or resume folder is left by a failed training (the fuzzer found an
    empty OUT/.private/ after a loss that diverged at the first step)."""
    from trustgen.errors import TrainingError
    from trustgen.training import Trainer

    def diverge(self, *a, **k):
        (tmp_path / "out" / ".private" / ".checkpoint.pt.x.tmp").write_bytes(b"half a checkpoint")
        raise TrainingError("vae loss became nan at step 1")

    monkeypatch.setattr(Trainer, "fit", diverge)
    if existed:
        (tmp_path / "out").mkdir()
    with pytest.raises(TrainingError):
        train("breast_cancer", "vae", TrainConfig(steps=2, progress=False), model_options={"hidden": 8},
              out=tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if existed else [])
    assert not existed or not any((tmp_path / "out").iterdir())
