"""Sampling from a Run, with explicit, typed points where later stages act.

The flow for each batch is fixed so that plug-ins compose predictably::

    labels -> z = model.sample_noise -> noise hooks (a watermark keys z)
        -> model.generate(z, labels, sampler=config, step_hooks=...)   (per-step hooks: diffusion)
        -> output hooks (constraint projection, satisfaction flags) -> decode -> SampleBatch

How to sample (:class:`~trustgen.sampling.config.SamplerConfig`) is chosen here, at sampling
time; a run only carries defaults (what it was trained with, for runs written before).

Example:
    >>> batch = Sampler(run).sample(100, labels=3, seed=0)  # doctest: +SKIP
    >>> batch.labels[:3]  # doctest: +SKIP
    array([3, 3, 3])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from trustgen.data.encoders import Data, make_encoder
from trustgen.errors import ConfigError
from trustgen.run import Run
from trustgen.sampling.config import SamplerConfig
from trustgen.sampling.hooks import (
    NoiseHook, OutputHook, StepHook, apply_noise_hooks, apply_output_hooks, checked_step_hook,
)
from trustgen.sampling.labels import LabelTake, fixed, label_source
from trustgen.privacy.marginal_histogram import marginal_layout
from trustgen.sampling.marginal_fit import OVERSAMPLE, MarginalFit
from trustgen.sampling.schedulers import reverse_step_count

DIFFUSION_ONLY = ("kind", "steps", "eta", "guidance", "clip")


@dataclass
class SampleBatch:
    """Samples and everything known about how they were made.

    Attributes:
        data: decoded samples (a DataFrame with the schema's columns, or ImageData).
        labels: integer class of each sample (None for unconditional models).
        encoded: the model-space samples ``[n, ...]``.
        noise: the latent noise each sample was generated from (after noise hooks).
        seed: the seed of the sampling stream (None if unseeded).
        watermark_key_id: the key id a noise hook reported; None when no watermark was applied.
        constraints_satisfied: per-sample AND of the output hooks' flags; None when none ran.
        config: the sampler settings used.
        constraint_report: how constrained samples were made
            (:class:`~trustgen.sampling.constrained.ConstraintReport`); None without constraints.
        uncertainty: per-sample spread across posterior draws ``[n]``; None unless asked
            (:func:`trustgen.uncertainty.posterior.with_uncertainty`).
        uncertainty_map: that spread per value ``[n, C, H, W]`` (images) or ``[n, dim]``
            (tables, encoded units); None unless asked.
        label_disagreement: ``[n]``, runs with a label head; None otherwise.
    """

    data: Data
    labels: np.ndarray | None
    encoded: torch.Tensor
    noise: torch.Tensor
    seed: int | None
    watermark_key_id: str | None = None
    constraints_satisfied: np.ndarray | None = None
    config: SamplerConfig | None = None
    constraint_report: Any = None
    uncertainty: np.ndarray | None = None
    uncertainty_map: np.ndarray | None = None
    label_disagreement: np.ndarray | None = None


class _Chunk(NamedTuple):
    """One generation batch before decoding (CPU tensors; ``ok`` None without output hooks)."""

    x: torch.Tensor
    z: torch.Tensor
    y: torch.Tensor | None
    key_id: str | None
    ok: torch.Tensor | None


class Sampler:
    """Draws samples from a :class:`~trustgen.run.Run`.

    Args:
        run: the trained run.
        config: how to sample; None uses the run's defaults.
        noise_hooks: applied in order to the latent noise (watermarking acts here).
        step_hooks: applied in order at every step of a reverse process (diffusion only).
        output_hooks: applied in order to encoded samples (constraints act here).
        batch_size: samples generated per forward pass.
        progress: called as ``progress(done, total)`` after every network pass (a batch, or a
            reverse step of a batch for diffusion), for a progress bar; None (default): silent.
        marginal_fit: correct samples towards the run's 1-way marginals
            (:mod:`trustgen.sampling.marginal_fit`: a pool of ``OVERSAMPLE`` times as many, of
            which the kept ones match the marginals). None (default) and True: when the run
            has marginals and the labels are drawn from its prior (explicit labels switch it
            off); True also refuses a run without marginals; False: never.
    """

    def __init__(self, run: Run, *, config: SamplerConfig | None = None, noise_hooks: Sequence[NoiseHook] = (),
                 step_hooks: Sequence[StepHook] = (), output_hooks: Sequence[OutputHook] = (),
                 batch_size: int = 1000, progress: Callable[[int, int], None] | None = None,
                 marginal_fit: bool | None = None) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if marginal_fit not in (None, True, False):
            raise ConfigError(f"marginal_fit must be None, True or False, got {marginal_fit!r}")
        if marginal_fit and run.marginals is None:
            raise ConfigError("marginal_fit=True needs a run with marginals: train it without DP, or with DP and "
                              "marginal_budget > 0 (--marginal-budget)")
        self.marginal_fit = MarginalFit(run) if marginal_fit is not False and run.marginals is not None \
            and marginal_layout(run.schema) else None
        self.run = run
        self.config = config if config is not None else SamplerConfig.from_dict(run.sampling)
        self.noise_hooks = tuple(noise_hooks)
        self.step_hooks = tuple(checked_step_hook(h) for h in step_hooks)
        self.output_hooks = tuple(output_hooks)
        self.batch_size = batch_size
        self.progress = progress
        if run.family != "diffusion":
            changed = [f for f in DIFFUSION_ONLY if getattr(self.config, f) != getattr(SamplerConfig(), f)]
            if changed:
                raise ConfigError(f"sampler settings {changed} apply to diffusion models only; this run is a "
                                  f"{run.family}")
            run.model.no_step_hooks(self.step_hooks)

    def resolve_labels(self, n: int, labels: Any, generator: torch.Generator) -> torch.Tensor | None:
        """Turn ``labels`` (None, a class index or name, or a sequence) into ``[n]`` indices.

        None draws from the run's label prior (uniform if it has none); see
        :func:`~trustgen.sampling.labels.class_index` for names and indices."""
        return label_source(n, labels, self.run.schema.classes, self.run.label_prior, generator)(n)

    @staticmethod
    def _generator(seed: int | None) -> torch.Generator:
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        return gen

    def _oversample(self, labels: Any) -> int:
        """How many samples the pool holds per kept one: the marginal fit's, when it applies
        (labels drawn from the prior), else 1."""
        return OVERSAMPLE if self.marginal_fit is not None and labels is None else 1

    def _passes(self, n: int) -> int:
        """Network passes to generate ``n`` samples: one per batch, or one per reverse step per
        batch for diffusion (the unit of ``progress``)."""
        batches = -(-n // self.batch_size)
        if self.run.family != "diffusion":
            return batches
        cfg = self.config
        return batches * reverse_step_count(cfg.kind, cfg.steps, self.run.model.config.timesteps)

    @torch.no_grad()
    def _chunks(self, n: int, take: LabelTake, gen: torch.Generator, oversample: int = 1) -> Iterator[_Chunk]:
        """Noise, hooks and generation for ``n`` samples, one batch at a time, in one fixed order
        of draws from ``gen`` (labels from ``take``): what :meth:`sample` and :meth:`stream` share.
        With ``oversample > 1`` each batch is chosen by the marginal fit from a pool that many
        times as large (``take`` then hands out the pool's labels)."""
        model = self.run.model
        model.eval()
        dev = model.device
        key_id = None
        total, done = self._passes(n), 0  # a pool is one (larger) pass per batch

        def tick(state=None):
            nonlocal done
            done += 1
            self.progress(done, total)
            return None if state is None else state.output  # a step hook that changes nothing

        step_hooks = self.step_hooks
        if self.progress is not None and self.run.family == "diffusion":
            step_hooks = step_hooks + (tick,)
        for s in range(0, n, self.batch_size):
            keep = min(self.batch_size, n - s)
            m = keep * oversample
            y = take(m)
            yb = None if y is None else y.to(dev)
            z = model.sample_noise(m, gen)
            z, key = apply_noise_hooks(self.noise_hooks, z, yb, gen)
            if s and key != key_id:
                raise ConfigError("the noise hooks reported different key ids across batches")
            key_id = key
            x = model.generate(z, yb, generator=gen, sampler=self.config, step_hooks=step_hooks)
            x, ok = apply_output_hooks(self.output_hooks, x, yb)
            if self.progress is not None and self.run.family != "diffusion":
                tick()
            if oversample > 1:
                # values move only where no hook has read them (a constraint's flag, a watermark's key)
                move = not self.output_hooks and not self.noise_hooks
                rows, kept = self.marginal_fit.keep(x.float().cpu(), None if y is None else y.cpu(), keep, gen, move)
                x, z, y = kept.to(x.device), z[rows.to(z.device)], None if y is None else y[rows.to(y.device)]
                ok = None if ok is None else ok[rows.to(ok.device)]
            yield _Chunk(x.float().cpu(), z.float().cpu(), None if y is None else y.cpu(), key_id,
                         None if ok is None else ok.cpu())

    def _batch(self, x, z, y_np, seed, key_id, ok) -> SampleBatch:
        data = make_encoder(self.run.schema).inverse_transform(x.numpy().astype(np.float64), y_np)
        return SampleBatch(data, y_np, x, z, seed, key_id, ok, self.config.resolved(self.run.model.spec.kind))

    def _start(self, n: Any, labels: Any, seed: int | None) -> tuple[int, LabelTake, torch.Generator]:
        """Check ``n`` and ``labels`` and seed the stream: every error comes before any work."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"the number of samples must be a positive integer, got {n!r}")
        gen = self._generator(seed)
        pool = int(n) * self._oversample(labels)
        return int(n), label_source(pool, labels, self.run.schema.classes, self.run.label_prior, gen), gen

    def sample(self, n: int, *, labels: Any = None, seed: int | None = None) -> SampleBatch:
        """Draw ``n`` samples (labels: None draws from the run's prior; a class; or one per sample),
        held in memory together; :meth:`stream` hands out the same samples batch by batch."""
        n, take, gen = self._start(n, labels, seed)
        chunks = list(self._chunks(n, take, gen, self._oversample(labels)))
        x, z = torch.cat([c.x for c in chunks]), torch.cat([c.z for c in chunks])
        y = None if chunks[0].y is None else torch.cat([c.y for c in chunks]).numpy()
        ok = None if chunks[0].ok is None else torch.cat([c.ok for c in chunks]).numpy()
        return self._batch(x, z, y, seed, chunks[-1].key_id, ok)

    def stream(self, n: int, *, labels: Any = None, seed: int | None = None) -> Iterator[SampleBatch]:
        """The samples of ``sample(n, labels=labels, seed=seed)``, as one :class:`SampleBatch` per
        generation batch (``batch_size`` samples, the last one shorter), so memory stays flat
        for any ``n``.

        Guarantee: for the same run, settings, seed and device, the batches concatenated equal
        ``sample(n)`` exactly (encoded samples, noise, labels, decoded data, flags): both draw
        from one generator in the same order (labels from the prior as one draw of ``n``, then
        per batch the noise and the generation). Every batch carries the stream's ``seed``.
        ``n`` and ``labels`` are checked at the call, before the first batch is drawn; drawing
        ``n`` prior labels (to move the generator past them) also happens then.

        Example:
            >>> for batch in Sampler(run, batch_size=500).stream(10_000, seed=0):  # doctest: +SKIP
            ...     batch.data.to_csv(f, header=False, index=False)
        """
        n, take, gen = self._start(n, labels, seed)
        return (self._batch(c.x, c.z, None if c.y is None else c.y.numpy(), seed, c.key_id,
                            None if c.ok is None else c.ok.numpy())
                for c in self._chunks(n, take, gen, self._oversample(labels)))

    @torch.no_grad()
    def redraw(self, batch: SampleBatch, rows: Any, *, seed: int | None = None) -> SampleBatch:
        """A copy of ``batch`` in which ``rows`` are drawn again from fresh noise, with the same
        labels and the same hooks (what rejection sampling needs). ``seed`` seeds the new draws;
        the result's ``seed`` is None, since no single seed reproduces it.

        Raises ConfigError when this sampler's output hooks and ``batch`` disagree (flags on one
        side only): rows that were never checked are never reported as satisfying anything."""
        idx = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        n = len(batch.encoded)
        if (batch.constraints_satisfied is None) != (not self.output_hooks):
            raise ConfigError("redraw with the output hooks the batch was sampled with: the batch "
                              f"{'has no' if batch.constraints_satisfied is None else 'has'} satisfaction flags "
                              f"and this sampler has {len(self.output_hooks)} output hooks")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ConfigError(f"rows to redraw must be in 0..{n - 1}, got {idx.tolist()}")
        if len(idx) == 0:
            return replace(batch)
        gen = self._generator(seed)
        y_rows = None if batch.labels is None else torch.as_tensor(batch.labels[idx])
        chunks = list(self._chunks(len(idx), (lambda m: None) if y_rows is None else fixed(y_rows), gen))
        x_new, z_new = torch.cat([c.x for c in chunks]), torch.cat([c.z for c in chunks])
        key_id = chunks[-1].key_id
        ok_new = None if chunks[0].ok is None else torch.cat([c.ok for c in chunks]).numpy()
        if key_id != batch.watermark_key_id:
            raise ConfigError("redrawn rows carry another watermark key than the batch: use the same hooks")
        x, z = batch.encoded.clone(), batch.noise.clone()
        x[idx], z[idx] = x_new, z_new
        ok = None
        if ok_new is not None:
            ok = batch.constraints_satisfied.copy()
            ok[idx] = ok_new
        return self._batch(x, z, batch.labels, None, key_id, ok)

    @torch.no_grad()
    def invert(self, encoded: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """The latents of encoded samples under this sampler's settings (DDIM inversion for
        diffusion with ``config.steps``, the encoder mean for the VAE, optimisation for the GAN):
        what watermark detection needs. Use ``SamplerConfig(deterministic=True, clip=False)``
        for an exact diffusion round trip."""
        x = torch.as_tensor(encoded, dtype=torch.float32).to(self.run.model.device)
        y = self.resolve_labels(len(x), labels, torch.Generator()) if labels is not None else None
        if y is not None:
            y = y.to(x.device)
        self.run.model.eval()
        return self.run.model.invert(x, y, sampler=self.config).cpu()


__all__ = ["Sampler", "SampleBatch"]
