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
from typing import Any, Sequence

import numpy as np
import torch

from trustgen.data.encoders import Data, make_encoder
from trustgen.data.schema import category_index, category_key
from trustgen.errors import ConfigError
from trustgen.run import Run
from trustgen.sampling.config import SamplerConfig
from trustgen.sampling.hooks import (
    NoiseHook, OutputHook, StepHook, apply_noise_hooks, apply_output_hooks, checked_step_hook,
)

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
    """

    data: Data
    labels: np.ndarray | None
    encoded: torch.Tensor
    noise: torch.Tensor
    seed: int | None
    watermark_key_id: str | None = None
    constraints_satisfied: np.ndarray | None = None
    config: SamplerConfig | None = None


class Sampler:
    """Draws samples from a :class:`~trustgen.run.Run`.

    Args:
        run: the trained run.
        config: how to sample; None uses the run's defaults.
        noise_hooks: applied in order to the latent noise (watermarking acts here).
        step_hooks: applied in order at every step of a reverse process (diffusion only).
        output_hooks: applied in order to encoded samples (constraints act here).
        batch_size: samples generated per forward pass.
    """

    def __init__(self, run: Run, *, config: SamplerConfig | None = None, noise_hooks: Sequence[NoiseHook] = (),
                 step_hooks: Sequence[StepHook] = (), output_hooks: Sequence[OutputHook] = (),
                 batch_size: int = 1000) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.run = run
        self.config = config if config is not None else SamplerConfig.from_dict(run.sampling)
        self.noise_hooks = tuple(noise_hooks)
        self.step_hooks = tuple(checked_step_hook(h) for h in step_hooks)
        self.output_hooks = tuple(output_hooks)
        self.batch_size = batch_size
        if run.family != "diffusion":
            changed = [f for f in DIFFUSION_ONLY if getattr(self.config, f) != getattr(SamplerConfig(), f)]
            if changed:
                raise ConfigError(f"sampler settings {changed} apply to diffusion models only; this run is a "
                                  f"{run.family}")
            run.model.no_step_hooks(self.step_hooks)

    def resolve_labels(self, n: int, labels: Any, generator: torch.Generator) -> torch.Tensor | None:
        """Turn ``labels`` (None, a class index or name, or a sequence) into ``[n]`` indices.

        None draws from the run's label prior (uniform if it has none)."""
        schema = self.run.schema
        k = schema.n_classes
        if k == 0:
            if labels is not None:
                raise ConfigError("this run's model is unconditional (no label in the schema): do not pass labels")
            return None
        if labels is None:
            prior = torch.tensor(self.run.label_prior or [1.0 / k] * k, dtype=torch.float64)
            return torch.multinomial(prior, n, replacement=True, generator=generator)
        keys = category_index(schema.classes)

        def index(v: Any) -> int:
            key = category_key(v)
            if key in keys:
                return keys[key]
            if isinstance(v, str) and v.strip().isdigit():  # an index typed on the command line
                v = int(v)
            if isinstance(v, (int, np.integer)) and 0 <= int(v) < k:
                return int(v)
            raise ConfigError(f"unknown label {v!r}: known classes are {list(schema.classes)} (or indices 0..{k - 1})")

        if isinstance(labels, (str, int, np.integer)):
            return torch.full((n,), index(labels), dtype=torch.long)
        out = torch.tensor([index(v) for v in labels], dtype=torch.long)
        if len(out) != n:
            raise ConfigError(f"{len(out)} labels given for {n} samples")
        return out

    @staticmethod
    def _generator(seed: int | None) -> torch.Generator:
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        return gen

    def _generate(self, y_all: torch.Tensor | None, n: int, gen: torch.Generator):
        """Noise, hooks and generation for ``n`` samples in batches; returns (x, z, key id, flags)."""
        model = self.run.model
        model.eval()
        dev = model.device
        xs, zs, oks, key_id = [], [], [], None
        for s in range(0, n, self.batch_size):
            yb = None if y_all is None else y_all[s:s + self.batch_size].to(dev)
            z = model.sample_noise(min(self.batch_size, n - s), gen)
            z, key = apply_noise_hooks(self.noise_hooks, z, yb, gen)
            if s and key != key_id:
                raise ConfigError("the noise hooks reported different key ids across batches")
            key_id = key
            x = model.generate(z, yb, generator=gen, sampler=self.config, step_hooks=self.step_hooks)
            x, ok = apply_output_hooks(self.output_hooks, x, yb)
            xs.append(x.float().cpu())
            zs.append(z.float().cpu())
            if ok is not None:
                oks.append(ok.cpu())
        return torch.cat(xs), torch.cat(zs), key_id, (torch.cat(oks).numpy() if oks else None)

    def _batch(self, x, z, y_np, seed, key_id, ok) -> SampleBatch:
        data = make_encoder(self.run.schema).inverse_transform(x.numpy().astype(np.float64), y_np)
        return SampleBatch(data, y_np, x, z, seed, key_id, ok, self.config.resolved(self.run.model.spec.kind))

    @torch.no_grad()
    def sample(self, n: int, *, labels: Any = None, seed: int | None = None) -> SampleBatch:
        """Draw ``n`` samples (labels: None draws from the run's prior; a class; or one per sample)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"the number of samples must be a positive integer, got {n!r}")
        gen = self._generator(seed)
        y_all = self.resolve_labels(int(n), labels, gen)
        x, z, key_id, ok = self._generate(y_all, int(n), gen)
        return self._batch(x, z, None if y_all is None else y_all.numpy(), seed, key_id, ok)

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
        x_new, z_new, key_id, ok_new = self._generate(y_rows, len(idx), gen)
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
