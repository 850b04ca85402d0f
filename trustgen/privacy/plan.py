"""DP planning as data: what a :class:`PrivacyConfig` means for one dataset and one model.

:func:`plan_privacy` is the one place that turns the user's request (target epsilon, delta or
none, clipping choice) and the public facts of a run (number of records, expected batch size,
number of steps, the model) into a :class:`PrivacyPlan`: the Poisson sample rate, the delta, the
noise multiplier calibrated so that the planned steps reach the target epsilon exactly (never
more), the number of steps, the clipping mode and, for labelled data, the noise of the DP
label histogram (whose epsilon alone is ``label_budget * epsilon``; DP-SGD's noise is calibrated
so that histogram and steps *composed* reach the target). A plan is frozen plain data:
checkpoints store :meth:`PrivacyPlan.to_dict`, and a resumed run compares plans for equality.

Example:
    >>> from torch import nn
    >>> from trustgen.privacy.config import PrivacyConfig
    >>> plan = plan_privacy(PrivacyConfig(epsilon=8.0, accountant="rdp"), n=1_000, batch_size=10,
    ...                     steps=1_000, model=nn.Linear(3, 1))
    >>> plan.sample_rate, plan.delta, plan.steps, plan.mode
    (0.01, 1e-05, 1000, 'ghost')
    >>> PrivacyPlan.from_dict(plan.to_dict()) == plan
    True
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

from trustgen.errors import ConfigError, DataError, PrivacyError
from trustgen.models.base import GenerativeModel
from trustgen.privacy.accounting import (
    Segment,
    calibrate_noise,
    check_delta,
    check_delta_range,
    check_noise_multiplier,
    check_sample_rate,
    default_delta,
    epsilon_of_history,
)
from trustgen.privacy.config import AUTO_MARGINAL_BUDGETS, PrivacyConfig
from trustgen.privacy.book_keeping import unsupported_layers
from trustgen.privacy.dp_sgd import ClippingMode, choose_mode
from trustgen.privacy.marginal_histogram import pairs_worth_releasing, precise_release, worth_releasing

CLIPPING_MODES: tuple[str, ...] = ("bookkeeping", "ghost", "hooks")
#: A share chosen by the plan (``marginal_budget=None``) leaves DP-SGD at least this much of
#: epsilon beside the label histogram's share (the shares' epsilons alone, as they are stated).
AUTO_TRAINING_LEFT = 0.25


@dataclass(frozen=True)
class PrivacyPlan:
    """The settings of one DP-SGD run, all public (none is derived from private records).

    Attributes:
        sample_rate: Poisson sample rate q = expected batch size / number of records.
        delta: the delta of the guarantee.
        noise_multiplier: sigma, calibrated so ``steps`` steps spend the target epsilon.
        steps: the planned number of noisy steps.
        mode: the per-example clipping mode, ``"bookkeeping"``, ``"ghost"`` or ``"hooks"``.
        label_noise_multiplier: sigma of the Gaussian label histogram (L2 sensitivity 1), the
            accountant segment ``(label_noise_multiplier, 1.0, 1)`` recorded before the first
            step; None when no histogram is released (no labels, or ``label_budget = 0``).
        marginal_noise_multiplier: sigma of the Gaussian histogram of the feature columns'
            1-way marginals (:mod:`trustgen.privacy.marginal_histogram`), the segment
            ``(marginal_noise_multiplier, 1.0, 1)`` recorded after the label histogram; None
            when none is released.
        marginal_pairs: the number of pair tables counted in that release beside the 1-way
            marginals (0: none; the noise is then ``sigma * sqrt(d + PAIR_WEIGHT^2 P)``).
        marginal_budget: the share of epsilon that release spends alone (the user's, or the one
            the plan chose); 0 when none is released.
    """

    sample_rate: float
    delta: float
    noise_multiplier: float
    steps: int
    mode: ClippingMode
    label_noise_multiplier: float | None = None
    marginal_noise_multiplier: float | None = None
    marginal_pairs: int = 0
    marginal_budget: float = 0.0

    def __post_init__(self) -> None:
        # Normalise to plain Python (a checkpoint loaded with weights_only refuses numpy scalars).
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        object.__setattr__(self, "delta", check_delta_range(self.delta))
        object.__setattr__(self, "noise_multiplier", check_noise_multiplier(self.noise_multiplier))
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise PrivacyError(f"PrivacyPlan.steps must be an integer >= 1, got {self.steps!r}.")
        object.__setattr__(self, "steps", int(self.steps))
        if self.mode not in CLIPPING_MODES:
            raise ConfigError(f"PrivacyPlan.mode must be one of {CLIPPING_MODES}, got {self.mode!r}.")
        if self.label_noise_multiplier is not None:
            object.__setattr__(self, "label_noise_multiplier", check_noise_multiplier(self.label_noise_multiplier))
        if self.marginal_noise_multiplier is not None:
            object.__setattr__(self, "marginal_noise_multiplier",
                               check_noise_multiplier(self.marginal_noise_multiplier))
        if isinstance(self.marginal_pairs, bool) or not isinstance(self.marginal_pairs, numbers.Integral) \
                or self.marginal_pairs < 0 or (self.marginal_pairs and self.marginal_noise_multiplier is None):
            raise PrivacyError(f"PrivacyPlan.marginal_pairs must be an integer >= 0 (0 without a marginal "
                               f"histogram), got {self.marginal_pairs!r}.")
        object.__setattr__(self, "marginal_pairs", int(self.marginal_pairs))
        m = self.marginal_budget
        # (0 with a histogram: a plan written before the share was stored)
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not 0 <= m < 1 \
                or (m > 0 and self.marginal_noise_multiplier is None):
            raise PrivacyError(f"PrivacyPlan.marginal_budget must be a share in [0, 1), 0 without a marginal "
                               f"histogram, got {m!r}")
        object.__setattr__(self, "marginal_budget", float(m))

    @property
    def label_segment(self) -> Segment | None:
        """The accountant segment of the label histogram (one full-data Gaussian release), or None."""
        return None if self.label_noise_multiplier is None else (self.label_noise_multiplier, 1.0, 1)

    @property
    def marginal_segment(self) -> Segment | None:
        """The accountant segment of the marginal histogram, or None."""
        return None if self.marginal_noise_multiplier is None else (self.marginal_noise_multiplier, 1.0, 1)

    @property
    def histogram_segments(self) -> list[Segment]:
        """The releases made before the first step, in the order the accountant records them."""
        return [s for s in (self.label_segment, self.marginal_segment) if s is not None]

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain Python values.

        Example:
            >>> d = PrivacyPlan(0.01, 1e-5, 1.0, 100, "hooks").to_dict()
            >>> d["noise_multiplier"], d["mode"], d["label_noise_multiplier"]
            (1.0, 'hooks', None)
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyPlan:
        """Inverse of :meth:`to_dict`; raises :class:`PrivacyError` on missing or unknown keys."""
        if not isinstance(data, Mapping):
            raise PrivacyError(f"a privacy plan must be a dict from PrivacyPlan.to_dict(), got {type(data).__name__}.")
        names = [f.name for f in dataclasses.fields(cls)]
        # A checkpoint written before the label histogram existed had no label noise.
        # ... and one written before the marginal histogram, no marginal noise; before pair
        # tables, none.
        # ... and one written before the marginal share was stored, none (plan_matches
        # compares such a plan by its noise).
        missing = [k for k in names if k not in data and k not in ("label_noise_multiplier",
                                                                    "marginal_noise_multiplier", "marginal_pairs",
                                                                    "marginal_budget")]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise PrivacyError(
                f"privacy plan has missing keys {missing} and unknown keys {unknown}: it was not "
                f"made by PrivacyPlan.to_dict() (or the checkpoint is damaged)."
            )
        return cls(**{k: data[k] for k in names if k in data})


def plan_privacy(config: PrivacyConfig, *, n: int, batch_size: int, steps: int,
                 model: GenerativeModel | nn.Module, n_classes: int = 0,
                 marginal_bins: tuple[int, ...] = (), pair_cells: tuple[int, ...] = ()) -> PrivacyPlan:
    """Validate ``config`` for this run and calibrate its noise.

    Args:
        config: the user's request (target epsilon, delta or None, clipping choice...).
        n: number of records (privacy units) in the private data; treated as public.
        batch_size: expected batch size; the Poisson sample rate is ``batch_size / n``.
        steps: planned number of noisy steps.
        model: a trustgen :class:`~trustgen.models.base.GenerativeModel` (its
            ``private_training_issues()`` must be empty) or any ``nn.Module`` trained in a
            user's own loop (checked with Opacus's ``ModuleValidator``; see
            :func:`module_issues`). ``clipping="auto"`` resolves through
            :func:`trustgen.privacy.dp_sgd.choose_mode`.
        n_classes: number of label classes of the data (public, from the schema); with two or
            more and ``config.label_budget > 0`` the plan includes the DP label histogram.
        marginal_bins: the bins of every feature column whose 1-way marginal is counted (public,
            from the schema). With ``config.marginal_budget > 0`` the plan includes the DP
            marginal histogram, unless its noise would leave no column worth correcting
            (:func:`~trustgen.privacy.marginal_histogram.worth_releasing`: few records, many
            columns); then its share goes back to training, and the report says none was released.
            With ``config.marginal_budget=None`` it takes the first share of
            :data:`~trustgen.privacy.config.AUTO_MARGINAL_BUDGETS` whose release is precise
            (:func:`~trustgen.privacy.marginal_histogram.precise_release`), else the largest
            worth releasing, among those that leave training :data:`AUTO_TRAINING_LEFT` beside
            the label's share (none if none is worth it); ``PrivacyPlan.marginal_budget`` is the
            share taken.
        pair_cells: the cells of every pair table that may be counted in the same release
            (:func:`~trustgen.privacy.marginal_histogram.pair_layout`); they are, where
            :func:`~trustgen.privacy.marginal_histogram.pairs_worth_releasing` says so (the
            histogram's epsilon is the same either way: its noise grows instead).

    Returns:
        The :class:`PrivacyPlan`; its epsilon after ``steps`` steps (and the label histogram, if
        any, composed with them) is within 0.5% below the target.

    Raises:
        PrivacyError: on a bad budget or delta (``>= 1/n``), or a budget that cannot be met.
        ConfigError: if the model cannot be trained with DP-SGD, the clipping mode is unknown or
            unsuited, the batch size or steps are not positive integers, or the batch size exceeds ``n``.
        DataError: if ``n < 1``.

    Example:
        >>> from trustgen.privacy.config import PrivacyConfig
        >>> plan_privacy(PrivacyConfig(1.0), n=10, batch_size=20, steps=5, model=nn.Linear(2, 1))
        Traceback (most recent call last):
        ...
        trustgen.errors.ConfigError: batch size 20 exceeds the 10 records; lower --batch-size
    """
    config.validate()
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise DataError(f"no training data ({n!r} examples)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    mode = choose_mode(model) if config.clipping == "auto" else config.clipping
    if isinstance(model, GenerativeModel):
        # The family's own limits, and the layers of its private part: a backbone registered
        # by a user (e.g. with BatchNorm) must not slip past the per-example checks.
        issues = list(model.private_training_issues()) + module_issues(model.private_module(), mode)
        if mode == "ghost" and model.clipping_groups() is not None:
            issues.append("its label head is clipped apart from the rest (per-group clipping), which ghost "
                          "clipping cannot do: use --clipping hooks or auto")
    else:
        issues = module_issues(model, mode)
    if issues:
        raise ConfigError(f"{type(model).__name__} cannot be trained with differential privacy: "
                          + "; ".join(issues))
    q = batch_size / n
    if q > 1:
        raise ConfigError(f"batch size {batch_size} exceeds the {n} records; lower --batch-size")
    delta = default_delta(n) if config.delta is None else config.delta
    check_delta(delta, n)
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 0:
        raise ConfigError(f"n_classes must be an integer >= 0, got {n_classes!r}")
    label_sigma = None
    if n_classes >= 2 and config.label_budget > 0:
        # The histogram alone gets its share; DP-SGD then gets whatever keeps the *composition*
        # at the target, which is more than (1 - share) * epsilon: PRV/RDP compose Gaussians
        # much better than adding their epsilons.
        label_sigma = _histogram_noise("the label histogram", config.label_budget, config.epsilon, delta,
                                       config.accountant)
    bins = list(marginal_bins)
    if any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in bins):
        raise ConfigError(f"marginal_bins must be positive integers, got {marginal_bins!r}")
    marginal_sigma, marginal_share = None, 0.0
    label_share = config.label_budget if label_sigma is not None else 0.0
    if not bins:
        shares = []
    elif config.marginal_budget is None:  # the plan's choice, in increasing order (below)
        shares = [s for s in AUTO_MARGINAL_BUDGETS if label_share + s <= 1 - AUTO_TRAINING_LEFT]
    else:
        if config.marginal_budget > 0 and label_share + config.marginal_budget >= 1:
            raise PrivacyError(f"label_budget {config.label_budget:g} and marginal_budget {config.marginal_budget:g} "
                               "leave nothing of epsilon for training: together they must stay below 1")
        shares = [config.marginal_budget] if config.marginal_budget > 0 else []
    for share in shares:
        try:
            sigma_m = _histogram_noise("the marginal histogram", share, config.epsilon, delta, config.accountant)
        except PrivacyError:
            if config.marginal_budget is not None:
                raise
            continue  # the plan's own choice: a share too small to calibrate is not worth releasing
        if worth_releasing(bins, sigma_m, n):
            marginal_sigma, marginal_share = sigma_m, float(share)
            # Choosing, the plan goes on to a larger share (less noise) until the release is
            # precise; past the last, the largest worth releasing stays. At the noise floor a
            # larger share would buy the same release and report more spent: it stops there.
            if precise_release(bins, sigma_m, n) or sigma_m <= HISTOGRAM_SIGMA_MIN:
                break
    cells = list(pair_cells)
    if any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in cells):
        raise ConfigError(f"pair_cells must be positive integers, got {pair_cells!r}")
    pairs = len(cells) if marginal_sigma is not None and pairs_worth_releasing(bins, cells, marginal_sigma, n) else 0
    prior = tuple((s, 1.0, 1) for s in (label_sigma, marginal_sigma) if s is not None)
    sigma = calibrate_noise(config.epsilon, delta, q, steps, config.accountant, prior=prior)
    return PrivacyPlan(sample_rate=q, delta=delta, noise_multiplier=sigma, steps=steps, mode=mode,
                       label_noise_multiplier=label_sigma, marginal_noise_multiplier=marginal_sigma,
                       marginal_pairs=pairs, marginal_budget=marginal_share)


#: The least noise multiplier a histogram (labels, marginals) is given. Below it a full-data
#: Gaussian release spends more than 50 or so of epsilon alone, and Opacus's PRV accountant, asked to
#: compose one (sigma 0.08 or 0.054 at sample rate 1) with DP-SGD's steps, did not return within
#: minutes (found by a fuzzer at epsilon 1000; 0.1 returned in 8 s). A share so large then spends
#: less than stated, and the composed epsilon, which the report gives, counts what it spends.
HISTOGRAM_SIGMA_MIN = 0.1


def _histogram_noise(what: str, share: float, epsilon: float, delta: float, accountant: str) -> float:
    """The noise multiplier of one full-data Gaussian release spending ``share * epsilon``
    alone (at least :data:`HISTOGRAM_SIGMA_MIN`); a share too small to calibrate is refused
    naming the share, not DP-SGD's steps."""
    if epsilon_of_history([(HISTOGRAM_SIGMA_MIN, 1.0, 1)], delta, accountant) <= share * epsilon:
        return HISTOGRAM_SIGMA_MIN  # the least noise already spends no more than the share
    try:
        return max(calibrate_noise(share * epsilon, delta, 1.0, 1, accountant), HISTOGRAM_SIGMA_MIN)
    except PrivacyError:
        raise PrivacyError(f"{what}'s share {share:g} of epsilon {epsilon:g} ({share * epsilon:g}) is too small to "
                           "calibrate: its noise would exceed any usable level. Raise epsilon, or lower or zero "
                           "the share.") from None


def plan_differences(saved: Mapping[str, Any], plan: PrivacyPlan) -> list[str]:
    """How the plan a checkpoint stored (:meth:`PrivacyPlan.to_dict`) differs from ``plan``,
    one ``"field <saved> in the checkpoint, <now> now"`` per field (empty: they match). Fields
    an older checkpoint did not store take their defaults, as :meth:`PrivacyPlan.from_dict`
    reads them, rather than showing as ``None``. A plan written before the marginal share was
    stored has none; its noise multiplier says the same, so it matches where everything else
    does (such a run resumes rather than being refused)."""
    old = PrivacyPlan.from_dict(saved)
    if "marginal_budget" not in saved and old.marginal_noise_multiplier == plan.marginal_noise_multiplier:
        old = dataclasses.replace(old, marginal_budget=plan.marginal_budget)
    was, now = old.to_dict(), plan.to_dict()
    return [f"{k} {was[k]!r} in the checkpoint, {v!r} now" for k, v in now.items() if was[k] != v]


def plan_matches(saved: Mapping[str, Any], plan: PrivacyPlan) -> bool:
    """Whether the plan a checkpoint stored is ``plan`` (see :func:`plan_differences`)."""
    return not plan_differences(saved, plan)


def module_issues(module: nn.Module, mode: ClippingMode) -> list[str]:
    """Why a plain ``nn.Module`` cannot be trained with DP-SGD in ``mode`` (empty if it can).

    The checks: it is an ``nn.Module`` with trainable parameters; Opacus's ``ModuleValidator``
    accepts it (training mode; no BatchNorm, which mixes the examples of a batch; Opacus's own
    LSTM/GRU/attention layers); and ghost clipping meets no ``nn.Embedding`` (measured: it
    crashes on an empty Poisson batch).

    Example:
        >>> module_issues(nn.Linear(2, 1), "ghost")
        []
        >>> issues = module_issues(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), "hooks")
        >>> issues[0].startswith("BatchNorm cannot support training with differential privacy")
        True
    """
    if not isinstance(module, nn.Module):
        return [f"it is a {type(module).__name__}, not a torch nn.Module"]
    if not any(p.requires_grad for p in module.parameters()):
        return ["it has no trainable parameters: there is nothing to train privately"]
    from opacus.validators import ModuleValidator

    issues = [str(e) for e in ModuleValidator.validate(module, strict=False)]
    # Opacus lets a BatchNorm without parameters through (affine=False), yet it still mixes the
    # examples of a batch: one record then moves every other record's gradient.
    if not issues and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        issues.append("BatchNorm mixes the examples of a batch (even without parameters), so clipping "
                      "each example's gradient does not bound one record's influence; use GroupNorm")
    if issues:
        issues.append("opacus.validators.ModuleValidator.fix(module) replaces unsupported layers "
                      "(BatchNorm by GroupNorm, LSTM by DPLSTM); call module.train() before training")
    if mode == "bookkeeping":
        issues.extend(unsupported_layers(module))
    if mode == "ghost" and any(isinstance(m, nn.Embedding) for m in module.modules()):
        issues.append("ghost clipping fails on an empty Poisson batch through nn.Embedding; use "
                      "clipping='hooks' (or 'auto')")
    return issues


__all__ = ["AUTO_TRAINING_LEFT", "CLIPPING_MODES", "HISTOGRAM_SIGMA_MIN", "PrivacyPlan", "module_issues", "plan_differences", "plan_matches", "plan_privacy"]
