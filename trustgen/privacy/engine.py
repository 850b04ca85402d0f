"""DP-SGD for your own training loop: :func:`make_private` wraps a module, its optimiser and its data.

This is the Opacus-style entry point for networks that are not trustgen models. It wraps the
caller's objects instead of replacing them: the module keeps its own ``forward`` (Opacus hooks
record per-example gradients), the optimiser keeps its own update rule. What it adds is
everything DP-SGD needs around them, planned once:

* the plan (:func:`trustgen.privacy.plan.plan_privacy`): sample rate ``q = batch_size / n``, delta,
  the noise multiplier calibrated so that exactly ``steps`` steps spend the target epsilon, and
  the clipping mode;
* a :class:`PoissonSampler` over the caller's tensors (each record joins each batch
  independently with probability ``q``, which is what the accountant assumes);
* :meth:`PrivateTraining.step`, which turns one loss per example into the clipped, noised
  gradient (:class:`trustgen.privacy.dp_sgd.PrivateGradients`), applies it, and records the step
  in the :class:`trustgen.privacy.accountant.Accountant`; it refuses to go past the plan;
* :meth:`PrivateTraining.report`, the :class:`trustgen.privacy.report.PrivacyReport` of the run.

The noise and the batch sampling come from a ChaCha20 keystream under a 256-bit key from the
operating system's entropy (:mod:`trustgen.privacy.secure_random`), never from torch's global
seed; ``secret_seed`` derives the key for tests only (the report then says the guarantee holds
only while that seed stays secret).

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)  # the initial weights only; DP noise and batches use OS entropy
    >>> x = torch.randn(1_000, 3)
    >>> y = x @ torch.tensor([1.0, -2.0, 0.5])
    >>> net = nn.Linear(3, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> private = make_private(net, opt, x, y, epsilon=8.0, steps=100, batch_size=50, accountant="rdp")
    >>> for xb, yb in private.sampler:                   # Poisson batches, as many as planned
    ...     loss = (net(xb).squeeze(1) - yb) ** 2         # one loss per example, never reduced
    ...     private.step(loss)                            # clip, noise, optimizer.step(), account
    >>> 0.99 * 8.0 <= private.epsilon() <= 8.0
    True
    >>> private.report().steps
    100
    >>> private.close()                                   # remove Opacus's hooks from net
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, NamedTuple

import torch
from torch import nn

from trustgen.errors import ConfigError, DataError, PrivacyError, TrainingError
from trustgen.runtime import dist_info
from trustgen.privacy.accountant import Accountant
from trustgen.privacy.config import ClippingChoice, PrivacyConfig
from trustgen.privacy.dp_sgd import PrivateGradients, poisson_batch
from trustgen.privacy.plan import PrivacyPlan, plan_privacy
from trustgen.privacy.report import PrivacyReport, dp_sgd_caveats
from trustgen.privacy.secure_random import SecureRandom, key_from_seed, new_key


class Batch(NamedTuple):
    """One Poisson batch: ``x[idx]`` and ``y[idx]`` (``y`` is None when no labels were given)."""

    x: torch.Tensor
    y: torch.Tensor | None


@dataclass
class PoissonSampler:
    """Poisson batches of ``(x, y)``: each record joins each batch independently with probability ``q``.

    Batch sizes are therefore Binomial(n, q), and a batch may be empty: train on it anyway
    (:meth:`PrivateTraining.step` turns an empty batch into its noise-only step). Iterating yields
    the batches still planned (``steps - drawn``); :meth:`next_batch` draws one.

    Attributes:
        x, y: the private data (``y`` may be None); batches stay on their device.
        sample_rate: q.
        steps: the planned number of batches (one per DP step).
        rng: the secret source that decides batch membership (batch k at address ("poisson", k)).
        drawn: batches drawn so far.
        last_size: the size of the latest batch.
    """

    x: torch.Tensor = field(repr=False)  # private records: never in a repr or a log line
    y: torch.Tensor | None = field(repr=False)
    sample_rate: float
    steps: int
    rng: SecureRandom = field(repr=False)
    drawn: int = 0
    last_size: int = 0

    def next_batch(self) -> Batch:
        """Draw the next Poisson batch."""
        idx = poisson_batch(len(self.x), self.sample_rate, self.rng, self.drawn).to(self.x.device)
        self.drawn += 1
        self.last_size = len(idx)
        return Batch(self.x[idx], None if self.y is None else self.y[idx])

    def __iter__(self) -> Iterator[Batch]:
        while self.drawn < self.steps:
            yield self.next_batch()

    def __len__(self) -> int:
        return max(self.steps - self.drawn, 0)


@dataclass
class PrivateTraining:
    """A module trained with DP-SGD in the caller's own loop (made by :func:`make_private`).

    Attributes:
        plan: sample rate, delta, noise multiplier, planned steps, clipping mode.
        gradients: the per-example clipping and noise on the module.
        sampler: the Poisson batches; draw exactly one per :meth:`step`.
        accountant: the privacy spent so far.
        optimizer: the caller's optimiser (stepped by :meth:`step`).
        config: the request the plan was made for (target epsilon, clipping norm, ...).
    """

    plan: PrivacyPlan
    gradients: PrivateGradients
    sampler: PoissonSampler
    accountant: Accountant
    optimizer: torch.optim.Optimizer
    config: PrivacyConfig

    def step(self, loss_per_example: torch.Tensor) -> None:
        """One DP-SGD step on the latest batch: clip, noise, ``optimizer.step()``, account.

        Args:
            loss_per_example: shape ``[B]``, one loss per example of the batch just drawn from
                :attr:`sampler` (never reduced: each example's gradient is clipped on its own).

        Raises:
            PrivacyError: if the planned steps are spent, or not exactly one batch was drawn
                for this step (skipping or reusing batches breaks the Poisson accounting).
            ConfigError: if the loss is not one value per example of the batch.
            TrainingError: if the noised gradient is NaN/inf (training diverged).
        """
        refusal = self._refusal(loss_per_example)
        if refusal is not None:
            self.gradients.discard(loss_per_example)  # the forward pass must not leak into a later step
            raise refusal
        self.optimizer.zero_grad(set_to_none=True)
        self.gradients.backward(loss_per_example, self.optimizer)
        # The noised gradient now exists: count the step before anything else can fail.
        self.accountant.step(self.plan.noise_multiplier, self.plan.sample_rate)
        for p in self.gradients.params:  # inspect only the noised gradient (a DP release)
            if p.grad is not None and not torch.isfinite(p.grad).all():
                self.optimizer.zero_grad(set_to_none=True)
                raise TrainingError("the DP gradient became NaN/inf: training diverged. Lower the learning "
                                    "rate or max_grad_norm.")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _refusal(self, loss: torch.Tensor) -> Exception | None:
        taken = self.accountant.steps
        if taken >= self.plan.steps:
            return PrivacyError(
                f"all {self.plan.steps} planned steps are taken (epsilon {self.epsilon():.4g}, target "
                f"{self.config.epsilon:g}): another step would spend more than the budget. Plan more "
                f"steps in make_private(steps=...) for a new run, or stop here."
            )
        if self.sampler.drawn != taken + 1:
            return PrivacyError(
                f"{self.sampler.drawn} batches were drawn for {taken + 1} steps: draw exactly one batch "
                f"from the sampler for each step and train on it, empty or not. Skipping, choosing or "
                f"reusing batches breaks the Poisson sampling the accountant assumes."
            )
        if loss.dim() != 1 or len(loss) != self.sampler.last_size:
            return ConfigError(f"DP-SGD needs one loss per example of the batch (shape [{self.sampler.last_size}]), "
                               f"got shape {tuple(loss.shape)}: do not reduce the loss (no .mean() or .sum()).")
        return None

    @property
    def steps_left(self) -> int:
        """Planned steps not yet taken."""
        return self.plan.steps - self.accountant.steps

    def epsilon(self) -> float:
        """Epsilon spent so far, at the plan's delta (0.0 before the first step)."""
        return self.accountant.epsilon(self.plan.delta)

    def report(self) -> PrivacyReport:
        """The :class:`PrivacyReport` of the steps taken so far (at least one)."""
        c = self.config
        module = type(self.gradients.module).__name__
        caveats = dp_sgd_caveats(mode=self.plan.mode, max_grad_norm=c.max_grad_norm,
                                 fixed_secret_seed=c.secret_seed is not None) + [
            f"Trained in the caller's own loop (make_private): the guarantee covers the parameters of "
            f"{module}; losses, metrics or anything else computed from private batches outside "
            f"PrivateTraining.step are not covered."]
        return PrivacyReport.from_accountant(
            self.accountant, delta=self.plan.delta, max_grad_norm=c.max_grad_norm, target_epsilon=c.epsilon,
            sampling_scheme="poisson", private_modules=[module], caveats=caveats)

    def close(self) -> None:
        """Remove Opacus's hooks from the module (it trains and runs as before afterwards)."""
        self.gradients.close()

    def __enter__(self) -> PrivateTraining:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_private(module: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor | None = None, *, epsilon: float, delta: float | None = None, steps: int,
                 batch_size: int, max_grad_norm: float = 1.0, accountant: Literal["prv", "rdp"] = "prv",
                 clipping: ClippingChoice = "auto", secret_seed: int | None = None) -> PrivateTraining:
    """Plan DP-SGD for ``steps`` steps of ``module`` on ``(x, y)`` to spend exactly ``epsilon``.

    See the module docstring for a complete loop.

    Args:
        module: the network (any ``nn.Module`` Opacus supports; BatchNorm is refused).
        optimizer: its optimiser; every parameter it updates must belong to ``module`` (the
            others would get non-private gradients).
        x, y: the private data, ``[N, ...]`` and ``[N]`` or None; one row is one privacy unit.
        epsilon, delta: the target guarantee; ``delta=None`` picks ``default_delta(N)``.
        steps: the number of DP steps the run will take (the noise is calibrated for them).
        batch_size: the expected batch size; the Poisson sample rate is ``batch_size / N``.
        max_grad_norm: the per-example clipping norm C.
        accountant: ``"prv"`` (tight, default) or ``"rdp"`` (faster calibration).
        clipping: ``"auto"`` (ghost when every layer with parameters is ``nn.Linear``, where it is
            ~30x faster; hooks otherwise), or ``"ghost"`` / ``"hooks"``. Ghost needs one forward
            pass per layer per step: a network that reuses a layer must use hooks.
        secret_seed: for tests only (see :class:`~trustgen.privacy.config.PrivacyConfig`).

    Returns:
        A :class:`PrivateTraining`.

    Raises:
        PrivacyError, ConfigError, DataError: on a setting or data that cannot give the guarantee,
            before any work is done.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or len(x) == 0:
        raise DataError("x must be a non-empty tensor with one record per row")
    if y is not None and (not isinstance(y, torch.Tensor) or len(y) != len(x)):
        raise DataError(f"{len(x)} records but {len(y) if hasattr(y, '__len__') else y!r} labels: "
                        "pass one label per row of x (a tensor), or y=None")
    own = {id(p) for p in module.parameters()}
    foreign = [p for g in optimizer.param_groups for p in g["params"] if id(p) not in own]
    if foreign:
        raise ConfigError(f"the optimizer updates {len(foreign)} parameter tensors that are not in the module: "
                          "their gradients would not be private. Give make_private the module that holds "
                          "every trained parameter.")
    if dist_info()[1] > 1:
        raise ConfigError("make_private runs in one process; for several processes train with "
                          "trustgen's Trainer (its noise and sampling streams are shared across ranks).")
    config = PrivacyConfig(epsilon=epsilon, delta=delta, max_grad_norm=max_grad_norm, accountant=accountant,
                           clipping=clipping, secret_seed=secret_seed)
    plan = plan_privacy(config, n=len(x), batch_size=batch_size, steps=steps, model=module)
    rng = SecureRandom(new_key() if secret_seed is None else key_from_seed(secret_seed))
    gradients = PrivateGradients(module, max_grad_norm=max_grad_norm, noise_multiplier=plan.noise_multiplier,
                                 expected_batch_size=plan.sample_rate * len(x), mode=plan.mode, noise=rng)
    sampler = PoissonSampler(x, y, plan.sample_rate, plan.steps, rng)
    return PrivateTraining(plan=plan, gradients=gradients, sampler=sampler, accountant=Accountant(accountant),
                           optimizer=optimizer, config=config)


__all__ = ["Batch", "PoissonSampler", "PrivateTraining", "make_private"]
