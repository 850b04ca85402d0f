"""What a user asks of DP training: :class:`PrivacyConfig`.

A config holds only the user's choices (the budget, the clipping norm, the accountant, the
clipping mode). What follows from them for one dataset and one model (the sample rate, the
delta, the calibrated noise, the Opacus mode) is a :class:`trustgen.privacy.plan.PrivacyPlan`,
built by :func:`trustgen.privacy.plan.plan_privacy`.

Example:
    >>> cfg = PrivacyConfig(epsilon=1.0)
    >>> cfg.validate()
    >>> (cfg.delta, cfg.max_grad_norm, cfg.accountant, cfg.clipping, cfg.label_budget)
    (None, 1.0, 'prv', 'auto', 0.2)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

from trustgen.errors import ConfigError, PrivacyError

ClippingChoice = Literal["auto", "bookkeeping", "ghost", "hooks"]
CLIPPING_CHOICES: tuple[str, ...] = ("auto", "bookkeeping", "ghost", "hooks")

#: Default share of epsilon for the DP label frequencies. The histogram's noise is set by its
#: share alone (sigma 17 records per class at epsilon 1, PRV, default delta; 71 at 0.05), but
#: composed by PRV/RDP a Gaussian costs DP-SGD far less than its share: at 0.2, DP-SGD's noise
#: rises by 2-3% (breast_cancer, rare, randhie plans at epsilon 1 and 10), at 0.05 by 0.1%. A
#: class rate's noise is about sigma / records: at 0.05 it was 1 percentage point on 7,000
#: records (rare: label gaps up to 1.4 pp) and 15 on 398 (breast_cancer); at 0.2, a quarter of it.
DEFAULT_LABEL_BUDGET: float = 0.2

#: Default share of epsilon for the 1-way marginals of the feature columns. Measured at epsilon 1
#: on a 10,000-row table with banded, skewed and rare values (benchmarks/fidelity.py, "rare"): at
#: 0.25 the corrected DP-VAE's mean 2-way distance on a holdout was 0.063-0.067 (0.091 at 0.1,
#: 0.147 uncorrected; AIM 0.067) with TSTR no lower.
DEFAULT_MARGINAL_BUDGET: float = 0.25
#: With ``marginal_budget=None`` (the default) the plan takes the first of these shares whose
#: release is precise (:func:`~trustgen.privacy.marginal_histogram.precise_release`), else the
#: largest worth making (:func:`~trustgen.privacy.marginal_histogram.worth_releasing`): the
#: default where the table has records enough for it, more on a smaller table, none beyond the last.
#: Measured on breast_cancer at epsilon 1 (398 records, 30 columns; DP-VAE, split seeds 0-2, 2-way
#: distance on a holdout): 0.449 at 0.25 (no better than releasing nothing, 0.453, and TSTR lower),
#: 0.345 at 0.4, 0.309 at 0.5, 0.293 at 0.6 with TSTR 0.03-0.07 lower (benchmarks/README.md,
#: "Small tables").
AUTO_MARGINAL_BUDGETS: tuple[float, ...] = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


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
        label_budget: share of ``epsilon`` in [0, 1) for the label frequencies used to sample
            labels: a Gaussian histogram of the class counts whose epsilon *alone* is
            ``label_budget * epsilon``, composed with DP-SGD in the same accountant (the total
            stays ``epsilon``). 0 keeps a uniform label prior. Unused (nothing is spent) when the
            data has fewer than two classes.
        marginal_budget: share of ``epsilon`` in [0, 1) for the 1-way marginals of the feature
            columns (one Gaussian histogram of every column's bins, and where the table is narrow
            and the noise small enough every pair of columns' cells,
            :mod:`trustgen.privacy.marginal_histogram`), composed the same way; sampling then
            corrects the samples towards them. 0 releases none. None (default): the first of
            :data:`AUTO_MARGINAL_BUDGETS` whose release is precise, else the largest whose noise
            leaves the columns worth correcting. Unused for images, and when the noise would
            leave no column worth correcting (the plan then gives the share back).
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: Literal["prv", "rdp"] = "prv"
    clipping: ClippingChoice = "auto"
    secret_seed: int | None = None
    label_budget: float = DEFAULT_LABEL_BUDGET
    marginal_budget: float | None = None

    def validate(self) -> None:
        """Raise :class:`PrivacyError` (or :class:`ConfigError` for the clipping mode) on a bad setting."""
        if not (isinstance(self.epsilon, (int, float)) and self.epsilon > 0) or self.epsilon != self.epsilon:
            raise PrivacyError(f"epsilon must be a positive number, got {self.epsilon!r}")
        if not self.max_grad_norm > 0:
            raise PrivacyError(f"max_grad_norm must be positive, got {self.max_grad_norm!r}")
        if self.accountant not in ("prv", "rdp"):
            raise PrivacyError(f"unknown accountant {self.accountant!r} (known: prv, rdp)")
        b = self.label_budget
        if isinstance(b, bool) or not isinstance(b, numbers.Real) or not (math.isfinite(b) and 0 <= b < 1):
            raise PrivacyError(f"label_budget must be a share of epsilon in [0, 1) (e.g. 0.2; 0: uniform labels), "
                               f"got {b!r}")
        m = self.marginal_budget
        if m is not None and (isinstance(m, bool) or not isinstance(m, numbers.Real)
                              or not (math.isfinite(m) and 0 <= m < 1)):
            raise PrivacyError(f"marginal_budget must be a share of epsilon in [0, 1) (e.g. 0.1; 0: no marginals; "
                               f"None: chosen by the plan), got {m!r}")
        if self.clipping not in CLIPPING_CHOICES:
            raise ConfigError(f"unknown clipping mode {self.clipping!r} (known: auto, bookkeeping, ghost, hooks)")


__all__ = ["AUTO_MARGINAL_BUDGETS", "CLIPPING_CHOICES", "ClippingChoice", "DEFAULT_LABEL_BUDGET", "DEFAULT_MARGINAL_BUDGET",
           "PrivacyConfig"]
