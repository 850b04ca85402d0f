"""Training settings (all public: none is derived from private data)."""

from __future__ import annotations

from dataclasses import dataclass

from trustgen.errors import ConfigError
from trustgen.limits import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LR, MAX_SEED, MAX_STEPS
from trustgen.runtime import resolve_device

DEFAULT_LR = {"vae": 1e-3, "gan": 2e-4, "diffusion": 1e-3}


def _count(name: str, value: object, low: int, high: int, *, optional: bool = False) -> None:
    """``value`` is an integer in [low, high] (or None when ``optional``), else a ConfigError."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high:,}, got {value!r}")


@dataclass
class TrainConfig:
    """Settings of a training run.

    Attributes:
        epochs: passes over the data (ignored when ``steps`` is set).
        steps: total optimiser steps; overrides ``epochs``.
        lr: learning rate; None picks the family's default.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        checkpoint_every: write a checkpoint every N steps (0: only at the end).
    """

    epochs: int = 100
    steps: int | None = None
    batch_size: int = 128
    lr: float | None = None
    device: str = "auto"
    seed: int = 0
    amp: bool = True
    checkpoint_every: int = 0
    log_every: int = 50
    progress: bool = True

    def validate(self) -> None:
        _count("epochs", self.epochs, 1, MAX_EPOCHS, optional=self.steps is not None)
        _count("steps", self.steps, 1, MAX_STEPS, optional=True)
        _count("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _count("seed", self.seed, 0, MAX_SEED)
        _count("checkpoint_every", self.checkpoint_every, 0, MAX_STEPS)
        _count("log_every", self.log_every, 1, MAX_STEPS)
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool)
                                        and 0 < self.lr <= MAX_LR):
            raise ConfigError(f"lr must be a number in (0, {MAX_LR:g}], got {self.lr!r}")
        resolve_device(self.device)

    def total_steps(self, n: int) -> int:
        """Optimiser steps for ``n`` records (``steps``, or ``epochs`` passes of ``batch_size``)."""
        return self.steps if self.steps is not None else self.epochs * -(-n // self.batch_size)

    def learning_rate(self, family: str) -> float:
        return self.lr or DEFAULT_LR.get(family, 1e-3)
