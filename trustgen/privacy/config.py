"""What a user asks of DP training: :class:`PrivacyConfig`.

A config holds only the user's choices (the budget, the clipping norm, the accountant, the
clipping mode). What follows from them for one dataset and one model (the sample rate, the
delta, the calibrated noise, the Opacus mode) is a :class:`trustgen.privacy.plan.PrivacyPlan`,
built by :func:`trustgen.privacy.plan.plan_privacy`.

Example:
    >>> cfg = PrivacyConfig(epsilon=1.0)
    >>> cfg.validate()
    >>> (cfg.delta, cfg.max_grad_norm, cfg.accountant, cfg.clipping)
    (None, 1.0, 'prv', 'auto')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trustgen.errors import ConfigError, PrivacyError

ClippingChoice = Literal["auto", "ghost", "hooks"]
CLIPPING_CHOICES: tuple[str, ...] = ("auto", "ghost", "hooks")


@dataclass
class PrivacyConfig:
    """What a user asks of DP training.

    Attributes:
        epsilon: target epsilon; the noise is calibrated so the planned steps reach it exactly.
        delta: target delta; None picks ``default_delta(n)`` (well below 1/n).
        max_grad_norm: per-example clipping norm C.
        accountant: ``"prv"`` (tight, default) or ``"rdp"``.
        clipping: ``"auto"`` picks the fastest correct Opacus mode for the model.
        secret_seed: seed of the DP noise and of Poisson sampling. Leave it None: it is then
            drawn from the operating system's entropy and kept only in the (private) resume
            checkpoint. Anyone who knows it can replay the noise and the batches, which voids
            the guarantee, so a fixed value is for tests only and the report says so.
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: Literal["prv", "rdp"] = "prv"
    clipping: ClippingChoice = "auto"
    secret_seed: int | None = None

    def validate(self) -> None:
        """Raise :class:`PrivacyError` (or :class:`ConfigError` for the clipping mode) on a bad setting."""
        if not (isinstance(self.epsilon, (int, float)) and self.epsilon > 0) or self.epsilon != self.epsilon:
            raise PrivacyError(f"epsilon must be a positive number, got {self.epsilon!r}")
        if not self.max_grad_norm > 0:
            raise PrivacyError(f"max_grad_norm must be positive, got {self.max_grad_norm!r}")
        if self.accountant not in ("prv", "rdp"):
            raise PrivacyError(f"unknown accountant {self.accountant!r} (known: prv, rdp)")
        if self.clipping not in CLIPPING_CHOICES:
            raise ConfigError(f"unknown clipping mode {self.clipping!r} (known: auto, ghost, hooks)")


__all__ = ["CLIPPING_CHOICES", "ClippingChoice", "PrivacyConfig"]
