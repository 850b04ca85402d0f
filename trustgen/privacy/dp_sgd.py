"""DP-SGD for trustgen models: per-example clipping through Opacus, noise and sampling here.

Per-example clipping, three ways: trustgen's own book-keeping (``bookkeeping``,
:mod:`trustgen.privacy.book_keeping`: one backward pass, the fastest for every trustgen model,
see benchmarks/dp_overhead.py), or Opacus, with per-example gradients (``hooks``: every layer
Opacus supports, Bayesian layers) or ghost clipping (``ghost``: a second backward pass, for a
user's all-Linear network).

What this module does itself, so that it is checkpointable and testable:

* Poisson sampling of each batch (:func:`poisson_batch`) and Gaussian noise ``N(0, (sigma C)^2)``
  added once to the clipped sum, which is then divided by the *expected* batch size (as Opacus
  does), both drawn from a cryptographically secure, step-addressed source
  (:mod:`trustgen.privacy.secure_random`: ChaCha20 under a 256-bit key from OS entropy);
* several processes (``torch.distributed``, gloo or NCCL): clipped sums are all-reduced and
  the same noise is added on every rank, i.e. once;
* empty Poisson batches: a noise-only step (the correct DP-SGD update for a batch of none),
  where Opacus modes crash or cannot skip a step (shared/STACK-NOTES.md).

An example may occupy several rows of the private module's batch (diffusion's K noise draws
on images, the GAN's real/fake pair on images): rows are example-major and their per-row
gradients are summed into one per-example gradient *before* clipping
(``rows_per_example``). On tables those rows sit on a sequence axis instead, which Opacus's
Linear grad samplers already sum within the example.

Example:
    >>> import torch
    >>> from trustgen.privacy.secure_random import SecureRandom, new_key
    >>> net = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> dp = PrivateGradients(net, max_grad_norm=1.0, noise_multiplier=0.0, expected_batch_size=4,
    ...                       mode="hooks", noise=SecureRandom(new_key()))
    >>> loss = net(torch.randn(4, 3)).squeeze(1) ** 2       # one loss per example
    >>> opt.zero_grad(); _ = dp.backward(loss, opt); opt.step()
    >>> dp.close()
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator, Literal

import torch
from torch import nn

from trustgen.errors import ConfigError
from trustgen.privacy.book_keeping import BookKeeping, unsupported_layers
from trustgen.privacy.secure_random import SecureRandom
from trustgen.runtime import dist_info, spare_core
from trustgen.models.base import GenerativeModel

ClippingMode = Literal["bookkeeping", "ghost", "hooks"]


def choose_mode(model: GenerativeModel | nn.Module) -> ClippingMode:
    """The fastest correct clipping mode for ``model`` (what ``clipping="auto"`` means).

    Book-keeping (:mod:`trustgen.privacy.book_keeping`: one backward, no second pass, no
    non-private weight gradients) costs 1.2-1.75x a non-private step on the table models (most
    of it the secure noise) and 1.25-1.57x on the conv image models, where Opacus ghost clipping
    costs 1.5-3x (tables) and 4-8x (images) and hooks 5-120x (benchmarks/dp_overhead.py, CPU). So:

    * a trustgen model: book-keeping whenever every layer with parameters is one it supports
      (Linear, Conv2d, GroupNorm), which covers every family on tables and images, several rows
      per example and per-group clipping; hooks for Bayesian layers (their grad sampler is
      checked against a per-example loop in hooks mode) and other layers;
    * any other ``nn.Module`` (a user's own network): ghost when every layer with parameters is
      an ``nn.Linear`` (the measured, exact case), hooks otherwise (conv, norm, embedding and
      recurrent layers: hooks handles every layer Opacus supports, empty batches included).
      Book-keeping is not chosen for them because it refuses a layer output modified in place
      (``nn.ReLU(inplace=True)``), which is common in users' networks; ask for it by name.

    Example:
        >>> choose_mode(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)))
        'ghost'
        >>> choose_mode(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 1)))
        'hooks'
    """
    if isinstance(model, GenerativeModel):
        return "hooks" if model.bayesian or unsupported_layers(model.private_module()) else "bookkeeping"
    return "ghost" if all(isinstance(m, nn.Linear) for m in _layers_with_parameters(model)) else "hooks"


def _layers_with_parameters(module: nn.Module) -> list[nn.Module]:
    """The sub-modules that own trainable parameters themselves (not through children)."""
    return [m for m in module.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]


def poisson_batch(n: int, sample_rate: float, rng: SecureRandom, step: int, part: int = 0) -> torch.Tensor:
    """Indices of step ``step``'s Poisson batch: each of ``n`` records enters independently with
    probability ``sample_rate`` (the sampling the privacy accountant assumes), decided by the
    secret source at address ``("poisson", step, part)`` (``part``: the rank of a shard)."""
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.nonzero(rng.uniform(n, "poisson", step, part) < sample_rate).flatten()


def _quiet_full_backward_hook_warning():
    # torch 2.13 warns on every backward under Opacus hooks; filter that one message only.
    warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed")


class PrivateGradients:
    """Turns a per-example loss into a clipped, noised gradient on ``module``'s parameters.

    Args:
        module: the sub-module that touches private data (its parameters get DP gradients).
        max_grad_norm: clipping norm C of each example's whole gradient (all parameters).
        noise_multiplier: sigma; the noise std on the summed gradient is ``sigma * C``.
        expected_batch_size: ``sample_rate * n``; the noisy sum is divided by it.
        mode: ``"ghost"`` or ``"hooks"`` (see the module docstring).
        rows_per_example: consecutive rows of the module's batch that form one example.
        noise: the secret source of the Gaussian noise; step ``k``'s noise is drawn at address
            ``("dp-noise", k)``, so it depends on the key and the step only.
        step: the number of noisy steps already taken (set it when resuming).
        clip_groups: per-group clipping (hooks mode): ``[(parameters, share), ...]``, every
            trainable parameter in exactly one group, shares summing to 1. Each example's
            gradient on group ``g`` is clipped to ``C * sqrt(share_g)``, so its whole gradient
            still has norm at most ``C``: the same sensitivity, the same noise, the same
            accounting. It keeps a small part (a classifier beside a generator) from being
            drowned by a large one whose gradients would otherwise take the whole norm.
        prefetch_noise: draw the next step's noise on a thread of its own while this step's
            clipping and the next forward run. ``None`` (the default): on a GPU, and on a CPU
            where torch's threads leave a core free (:func:`trustgen.runtime.spare_core`). Not
            where they take every core: with 2 threads on 2 cores the image VAE's DP step took
            122 ms with the noise thread and 77 ms without (1.77x against 1.53x its non-private
            step, measured), because the thread preempts one of torch's threads mid-operation.
    """

    def __init__(self, module: nn.Module, *, max_grad_norm: float, noise_multiplier: float,
                 expected_batch_size: float, mode: ClippingMode, rows_per_example: int = 1,
                 noise: SecureRandom, step: int = 0, clip_groups=None, prefetch_noise: bool | None = None) -> None:
        from opacus.grad_sample import GradSampleModule, GradSampleModuleFastGradientClipping

        from trustgen.privacy import bayes_grad_sampler  # noqa: F401 - registers the Bayesian layers' sampler

        if mode not in ("bookkeeping", "ghost", "hooks"):
            raise ConfigError(f"unknown clipping mode {mode!r} (known: bookkeeping, ghost, hooks)")
        if mode == "ghost" and rows_per_example != 1:
            raise ConfigError("ghost clipping needs one row per example; use mode='hooks'")
        _quiet_full_backward_hook_warning()
        self.module = module
        self.C = float(max_grad_norm)
        self.sigma = float(noise_multiplier)
        self.expected_batch_size = float(expected_batch_size)
        self.mode = mode
        self.rows = rows_per_example
        if not isinstance(noise, SecureRandom):
            raise ConfigError("DP noise must come from a trustgen.privacy.secure_random.SecureRandom")
        self.noise = noise
        self.step = int(step)
        if prefetch_noise is None:
            on_cpu = all(p.device.type == "cpu" for p in module.parameters())
            prefetch_noise = not on_cpu or spare_core()
        self.prefetch_noise = bool(prefetch_noise)
        self._pending = None  # (source, step, future) of the next step's noise, drawn ahead
        self._pool = None
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.group_of, self.group_norms = self._check_groups(clip_groups, mode)
        self.gsm = self.book = None
        if mode == "bookkeeping":
            self.book = BookKeeping(module, rows_per_example)
        elif mode == "ghost":
            self.gsm = GradSampleModuleFastGradientClipping(module, loss_reduction="mean", max_grad_norm=self.C,
                                                            use_ghost_clipping=True)
        else:
            self.gsm = GradSampleModule(module, loss_reduction="sum")

    def backward(self, loss_per_example: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
        """Set ``p.grad = (sum_i clip_C(g_i) + N(0, sigma^2 C^2)) / expected_batch_size``.

        Returns the per-example gradient norms *before* clipping, for tests only: they are
        statistics of private records, so they are never stored, logged or released.
        """
        b = loss_per_example.shape[0]
        if loss_per_example.dim() != 1:
            raise ConfigError(f"DP-SGD needs one loss per example (shape [B]), got {tuple(loss_per_example.shape)}")
        if b == 0:
            self.discard(loss_per_example)
            self.noise_only_step()
            return None
        if self.mode == "bookkeeping":
            sq, summer = self.book.per_example(loss_per_example, self.params)
            each = sq.clamp(min=0).sqrt()
            norms = each.norm(dim=1)
            summer(self._coefficients(norms, each))
        elif self.mode == "ghost":
            from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

            # Two backward passes: per-example norms (hooks), then the loss reweighted by
            # min(1, C / norm_i): p.grad is the sum of clipped per-example gradients.
            DPTensorFastGradientClipping(self.gsm, optimizer, loss_per_example, "mean").backward()
            norms = self.gsm.get_norm_sample().detach()
        else:
            loss_per_example.sum().backward()
            per_example = [p.grad_sample.reshape(b, self.rows, *p.shape).sum(1) for p in self.params]
            each = torch.stack([g.flatten(1).norm(dim=1) for g in per_example], 1)  # [B, params]
            norms = each.norm(dim=1)
            for p, g, coef in zip(self.params, per_example, self._coefficients(norms, each)):
                p.grad = torch.einsum("b,b...->...", coef, g)
                p.grad_sample = None
        self._add_noise_and_scale()
        return norms.detach()

    def _coefficients(self, norms: torch.Tensor, each: torch.Tensor) -> list[torch.Tensor]:
        """Each parameter's per-example clipping factors, from the whole norms ``[B]`` and the
        norms per parameter ``[B, params]`` (per-group clipping)."""
        if self.group_of is None:
            return [self.clip_coefficients(norms)] * len(self.params)
        k = len(self.group_norms)
        by_group = torch.stack([each[:, self.group_of == j].norm(dim=1) for j in range(k)], 0)
        per_group = (self.group_norms[:, None].to(by_group) / (by_group + 1e-6)).clamp(max=1.0)
        return [per_group[j] for j in self.group_of.tolist()]

    def _check_groups(self, groups, mode):
        """``(group index per parameter, clipping norm per group)``, or ``(None, None)``."""
        if groups is None:
            return None, None
        if mode == "ghost":
            raise ConfigError("per-group clipping needs clipping mode 'hooks' or 'bookkeeping' "
                              "(ghost clipping clips whole gradients)")
        index = {id(p): j for j, (params, _) in enumerate(groups) for p in params if p.requires_grad}
        shares = [float(share) for _, share in groups]
        if any(not 0 < s <= 1 for s in shares) or abs(sum(shares) - 1.0) > 1e-9:
            raise ConfigError(f"clipping shares must be in (0, 1] and sum to 1, got {shares}")
        counted = sum(sum(1 for p in params if p.requires_grad) for params, _ in groups)
        if counted != len(index) or set(index) != {id(p) for p in self.params}:
            raise ConfigError("clipping groups must hold every trainable parameter of the module exactly once")
        group_of = torch.tensor([index[id(p)] for p in self.params])
        return group_of, self.C * torch.tensor(shares, dtype=torch.float64).sqrt()

    def clip_coefficients(self, norms: torch.Tensor) -> torch.Tensor:
        """``min(1, C / norm_i)`` per example (hooks and book-keeping; ghost mode has Opacus's own, the same)."""
        return (self.C / (norms + 1e-6)).clamp(max=1.0)

    def discard(self, loss: torch.Tensor) -> None:
        """Drop a forward pass that will not become a step, leaving no gradient behind.

        Opacus records every forward through the module; a record left behind breaks (ghost) or
        corrupts (hooks) the next step, and only a backward consumes it.
        """
        if self.book is not None:
            self.book.clear()  # its records hold the graph; dropping them drops the forward
        elif loss.requires_grad:
            loss.sum().backward()
        for p in self.params:
            p.grad = None
            if hasattr(p, "grad_sample"):
                p.grad_sample = None

    def noise_only_step(self) -> None:
        """The DP-SGD gradient of an empty batch: noise alone (clipped sum is zero)."""
        for p in self.params:
            p.grad = torch.zeros_like(p)
            if hasattr(p, "grad_sample"):
                p.grad_sample = None
        self._add_noise_and_scale()

    def _add_noise_and_scale(self) -> None:
        # Several processes: sum the clipped sums of all ranks first. Every rank then adds the
        # same noise vector (drawn from the same key at the same step address on all ranks), so the noise
        # enters once, not once per rank, and the parameters stay identical everywhere.
        if dist_info()[1] > 1:
            import torch.distributed as dist

            for p in self.params:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        std = self.sigma * self.C
        noise = self.noise_of_step(self.step) if std > 0 else [None] * len(self.params)
        # In place and fused over parameters: every mode leaves p.grad a tensor of its own.
        grads = [p.grad for p in self.params]
        if std > 0:
            torch._foreach_add_(grads, [z.to(g) for z, g in zip(noise, grads)], alpha=std)
        torch._foreach_div_(grads, self.expected_batch_size)
        self.step += 1

    def noise_of_step(self, step: int) -> list[torch.Tensor]:
        """The standard normal noise of step ``step``, one tensor per parameter (drawn in one
        go from the secure source: the same on every rank, whatever earlier steps drew)."""
        sizes = [p.numel() for p in self.params]
        flat = self._drawn(step, sum(sizes))
        if self.prefetch_noise:
            # The next step's noise depends on the key and the step number only, so it can be
            # drawn now, on a second thread, while this step's clipping and the next forward
            # run (it was 20-35% of a DP step on the table models, benchmarks/dp_overhead.py).
            # It stays in this process's memory, like the key itself.
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trustgen-dp-noise")
            self._pending = (self.noise, step + 1,
                             self._pool.submit(self.noise.normal, (sum(sizes),), "dp-noise", step + 1))
        return [z.view(p.shape) for z, p in zip(flat.split(sizes), self.params)]

    def _drawn(self, step: int, n: int) -> torch.Tensor:
        """Step ``step``'s flat noise: the one drawn ahead if it is for this source and step
        (a resumed run replaces both), else drawn now."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] is self.noise and pending[1] == step:
            return pending[2].result()
        return self.noise.normal((n,), "dp-noise", step)

    @contextlib.contextmanager
    def hooks_disabled(self) -> Iterator[None]:
        """For backwards through the module that are not private steps (the GAN generator's
        step): without this Opacus would record per-example gradients from them."""
        if self.book is not None:
            self.book.enabled = False
        else:
            self.gsm.disable_hooks()
        try:
            yield
        finally:
            if self.book is not None:
                self.book.enabled = True
            else:
                self.gsm.enable_hooks()

    def close(self) -> None:
        """Remove the clipping hooks and per-example state from the module; stop the noise thread."""
        self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self.book is not None:
            self.book.close()
        else:
            self.gsm._close()


__all__ = ["ClippingMode", "PrivateGradients", "choose_mode", "poisson_batch"]
