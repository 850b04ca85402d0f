"""Training settings (all public: none is derived from private data)."""

from __future__ import annotations

from dataclasses import dataclass

from trustgen.errors import ConfigError
from trustgen.runtime import resolve_device

DEFAULT_LR = {"vae": 1e-3, "gan": 2e-4, "diffusion": 1e-3}


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
        if self.steps is None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        resolve_device(self.device)

    def total_steps(self, n: int) -> int:
        """Optimiser steps for ``n`` records (``steps``, or ``epochs`` passes of ``batch_size``)."""
        return self.steps if self.steps is not None else self.epochs * -(-n // self.batch_size)

    def learning_rate(self, family: str) -> float:
        return self.lr or DEFAULT_LR.get(family, 1e-3)
