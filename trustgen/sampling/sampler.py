"""Sampling from a Run, with explicit points where later stages act.

The flow for each batch is fixed and documented so that plug-ins compose predictably::

    labels (conditioning) -> z = model.sample_noise -> noise hooks (e.g. a watermark keys z)
        -> x = model.generate(z, labels) -> output hooks (e.g. constraint projection) -> decode

A hook never silently weakens a guarantee: a noise hook that cannot act must raise, and
the :class:`SampleBatch` always carries the same fields (``None`` where a stage was absent).

Example:
    >>> batch = Sampler(run).sample(100, labels=3, seed=0)  # doctest: +SKIP
    >>> batch.labels[:3]  # doctest: +SKIP
    array([3, 3, 3])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from trustgen.data.encoders import Data
from trustgen.data.schema import category_key
from trustgen.errors import ConfigError


class NoiseHook(Protocol):
    """Acts on the latent noise before generation: ``(z, labels, generator) -> z``."""

    def __call__(self, z: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor: ...


class OutputHook(Protocol):
    """Acts on encoded samples after generation: ``(x, labels) -> x``."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor: ...


@dataclass
class SampleBatch:
    """Samples and everything known about how they were made.

    Attributes:
        data: decoded samples (a DataFrame with the schema's columns, or ImageData).
        labels: integer class of each sample (None for unconditional models).
        encoded: the model-space samples ``[n, ...]``.
        noise: the latent noise each sample was generated from (after noise hooks).
        seed: the seed of the sampling stream (None if unseeded).
        watermark_key_id: set by a watermark hook; None when no watermark was applied.
        constraints_satisfied: per-sample flags from constraint hooks; None when none ran.
    """

    data: Data
    labels: np.ndarray | None
    encoded: torch.Tensor
    noise: torch.Tensor
    seed: int | None
    watermark_key_id: str | None = None
    constraints_satisfied: np.ndarray | None = None


class Sampler:
    """Draws samples from a :class:`~trustgen.run.Run`.

    Args:
        run: the trained run.
        noise_hooks: applied in order to the latent noise (watermarking acts here).
        output_hooks: applied in order to encoded samples (constraints act here).
        batch_size: samples generated per forward pass.
    """

    def __init__(self, run, *, noise_hooks: Sequence[NoiseHook] = (), output_hooks: Sequence[OutputHook] = (),
                 batch_size: int = 1000) -> None:
        self.run = run
        self.noise_hooks = tuple(noise_hooks)
        self.output_hooks = tuple(output_hooks)
        self.batch_size = batch_size

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
        keys = {category_key(c): i for i, c in enumerate(schema.classes)}

        def index(v: Any) -> int:
            key = category_key(v)
            if key in keys:
                return keys[key]
            if isinstance(v, (int, np.integer)) and 0 <= int(v) < k:
                return int(v)
            raise ConfigError(f"unknown label {v!r}: known classes are {list(schema.classes)} (or indices 0..{k - 1})")

        if isinstance(labels, (str, int, np.integer)):
            return torch.full((n,), index(labels), dtype=torch.long)
        out = torch.tensor([index(v) for v in labels], dtype=torch.long)
        if len(out) != n:
            raise ConfigError(f"{len(out)} labels given for {n} samples")
        return out

    @torch.no_grad()
    def sample(self, n: int, *, labels: Any = None, seed: int | None = None) -> SampleBatch:
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"the number of samples must be a positive integer, got {n!r}")
        model = self.run.model
        model.eval()
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        y_all = self.resolve_labels(int(n), labels, gen)
        xs, zs = [], []
        dev = model.device
        for s in range(0, n, self.batch_size):
            yb = None if y_all is None else y_all[s:s + self.batch_size].to(dev)
            m = min(self.batch_size, n - s)
            z = model.sample_noise(m, gen)
            for hook in self.noise_hooks:
                z = hook(z, yb, gen)
            x = model.generate(z, yb, generator=gen)
            for out_hook in self.output_hooks:
                x = out_hook(x, yb)
            xs.append(x.float().cpu())
            zs.append(z.float().cpu())
        x = torch.cat(xs)
        y_np = None if y_all is None else y_all.numpy()
        data = self.run.encoder.inverse_transform(x.numpy().astype(np.float64), y_np)
        return SampleBatch(data, y_np, x, torch.cat(zs), seed)
