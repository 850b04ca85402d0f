"""Resume checkpoints: everything needed to continue a run bit-exactly.

A checkpoint holds the weights, optimiser states, both RNG streams, the data order and,
under DP, the privacy plan, the accountant and the secret noise stream. That last part is a
secret (whoever has it can replay the noise), so a DP checkpoint is deleted once training is
complete and never ships with the run (see :class:`~trustgen.training.trainer.Trainer`).
Loaded with ``weights_only=True``: a checkpoint never runs code.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from trustgen.errors import RunError
from trustgen.io import atomic_torch_save, safe_torch_load

CHECKPOINT_FORMAT = 1
# What load_checkpoint reads: a file without them was not written by save_checkpoint.
CHECKPOINT_KEYS = ("family", "train_config", "model", "optimizers", "data_gen", "noise_gen", "step", "perm", "pos",
                   "history")
# Settings that may change on resume: where it runs and how far it goes.
RESUMABLE_CHANGES = ("progress", "device", "epochs", "steps")


@dataclass
class LoopState:
    """Where the loop is: the step, the data order of this epoch, and the log so far."""

    step: int
    perm: torch.Tensor
    pos: int = 0
    history: list = field(default_factory=list)


def save_checkpoint(path: Path, *, model, config, opts: dict, data_gen: torch.Generator,
                    noise_gen: torch.Generator, state: LoopState, privacy: dict | None) -> None:
    """Write the checkpoint atomically, readable by its owner only. ``privacy``: plan,
    accountant and noise stream (DP only)."""
    atomic_torch_save({
        "format": CHECKPOINT_FORMAT,
        "family": model.family,
        "train_config": asdict(config),
        "model": model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in opts.items()},
        "data_gen": data_gen.get_state(),
        "noise_gen": noise_gen.get_state(),
        "step": state.step, "perm": state.perm, "pos": state.pos, "history": state.history,
        "privacy": privacy,
    }, path, private=True)  # weights, data order and (under DP) the secret streams: owner only


def load_checkpoint(path: Path, *, model, config, opts: dict, data_gen: torch.Generator,
                    noise_gen: torch.Generator, n: int, total: int, private: bool) -> tuple[LoopState, Any]:
    """Restore weights, optimisers and streams in place; return the loop state and the saved
    privacy part (None without DP). Refuses a checkpoint of another model, data or setting."""
    fresh = "delete it and train again without --resume"
    ck = safe_torch_load(path, what="resume checkpoint", hint=fresh)
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise RunError(f"resume checkpoint {str(path)!r} is not a trustgen checkpoint (it lacks {missing}); {fresh}")
    if ck.get("family") != model.family:
        raise RunError(f"checkpoint {str(path)!r} is for a {ck.get('family')} model, not {model.family}")
    if len(ck["perm"]) != n:
        raise RunError(f"checkpoint {str(path)!r} was made on {len(ck['perm'])} examples, not {n}: "
                       "resume with the same data")
    saved = {k: v for k, v in ck["train_config"].items() if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in asdict(config).items() if k in saved}
    if saved != now:
        raise RunError(f"checkpoint settings {saved} differ from the current ones {now}: resume with the same settings")
    if (ck.get("privacy") is None) == private:
        raise RunError("the checkpoint and this run disagree on differential privacy: resume with the same settings")
    model.load_state_dict(ck["model"])
    for k, o in opts.items():
        o.load_state_dict(ck["optimizers"][k])
    data_gen.set_state(ck["data_gen"])
    noise_gen.set_state(ck["noise_gen"])
    if ck["step"] > total:
        warnings.warn(f"checkpoint is at step {ck['step']}, past the planned {total} steps")
    return LoopState(ck["step"], ck["perm"], ck["pos"], ck["history"]), ck.get("privacy")
