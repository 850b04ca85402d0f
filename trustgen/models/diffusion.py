"""Denoising diffusion (DDPM training, epsilon prediction); sampling by DDIM or DDPM and
DDIM inversion, with the steps taken from :mod:`trustgen.sampling.schedulers`.

Categorical columns are diffused as one-hot vectors rescaled to {-1, +1} (Gaussian diffusion
on one-hot codes) and decoded by argmax. Labels are dropped with probability
``label_dropout`` during training so sampling can use classifier-free guidance.

``noise_multiplicity`` K averages each example's loss over K draws of (t, noise) before
returning it: the per-example loss (and so the clipped gradient under DP) has lower variance
at no privacy cost, because it is still one example's loss.

The loop over steps lives here because ``generate`` and ``invert`` are part of the model
contract; the step maths are pure functions of the sampling stage's leaf module
:mod:`trustgen.sampling.schedulers`, shared with anyone who writes their own loop, and
per-step hooks see each state (:class:`trustgen.sampling.schedulers.StepState`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trustgen.models.backbones import build_backbone
from trustgen.models.base import GenerativeModel, rand, randint, randn
from trustgen.models.nets import DataSpec
from trustgen.sampling.config import SamplerConfig
from trustgen.sampling.schedulers import (
    StepState, classifier_free_guidance, ddim_inversion_step, ddim_step, ddpm_step, timestep_schedule,
)


@dataclass
class DiffusionConfig:
    timesteps: int = 1000
    hidden: int = 256
    depth: int = 3
    width: int = 64
    time_dim: int = 64
    noise_multiplicity: int = 1
    label_dropout: float = 0.1
    denoiser_net: str = "mlp"

    # Options of runs written before sampling became a stage, and the SamplerConfig field each
    # now sets: given at training they become the run's sampling defaults, and old runs load.
    sampling_options: ClassVar[dict] = {"sampler": "kind", "sample_steps": "steps", "guidance": "guidance"}

    @classmethod
    def defaults_for(cls, spec: DataSpec) -> "DiffusionConfig":
        return cls(width=32, denoiser_net="unet") if spec.kind == "image" else cls()


def alpha_bar(t: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021): signal fraction at integer time ``t``; t=-1 is 1."""
    s = 0.008
    f = lambda u: torch.cos((u / timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ab = f(t.double() + 1.0) / f(torch.zeros_like(t, dtype=torch.float64))
    return ab.clamp(1e-5, 1.0).float()


class Diffusion(GenerativeModel):
    """Conditional diffusion model. Example:

        >>> spec = DataSpec("tabular", 2, 0, (("numeric", 0, 1), ("numeric", 1, 1)))
        >>> m = Diffusion(spec, DiffusionConfig(noise_multiplicity=4))
        >>> m.loss(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    family = "diffusion"
    Config = DiffusionConfig

    def __init__(self, spec: DataSpec, config: DiffusionConfig) -> None:
        super().__init__(spec, config)
        self.denoiser = build_backbone("diffusion.denoiser", config.denoiser_net, spec, config)
        # Categorical dims are diffused in {-1, +1}; a plain attribute, not a buffer, keeps
        # the module free of state Opacus would have to handle.
        mask = torch.zeros(spec.dim, dtype=torch.bool)
        for kind, start, size in spec.blocks:
            if kind == "categorical":
                mask[start:start + size] = True
        self._cat_mask = mask

    def noise_shape(self) -> tuple:
        return tuple(self.spec.shape) if self.spec.kind == "image" else (self.spec.dim,)

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.kind == "image" or not self._cat_mask.any():
            return x
        return torch.where(self._cat_mask.to(x.device), 2.0 * x - 1.0, x)

    def from_model_space(self, x: torch.Tensor, hard: bool = True) -> torch.Tensor:
        """Back to the encoder's space: categories by argmax (hard) or by undoing the {-1, +1}
        rescaling (soft: differentiable, values near 0/1 rather than exact one-hot codes)."""
        if self.spec.kind == "image" or not self._cat_mask.any():
            return x
        if not hard:
            return torch.where(self._cat_mask.to(x.device), (x + 1.0) / 2.0, x)
        parts = [F.one_hot(x[:, s:s + k].argmax(1), k).to(x) if kind == "categorical" else x[:, s:s + k]
                 for kind, s, k in self.spec.blocks]
        return torch.cat(parts, 1)

    def loss(self, x, y=None, *, generator=None):
        """Per-example loss, averaged over K = ``noise_multiplicity`` draws of (t, noise).

        Layout matters for per-example clipping: tables put the K draws on a sequence axis
        (``[B, K, d]``), so Linear layers see one row per example; images repeat each example
        K times consecutively (``[B*K, C, H, W]``, example-major), see :meth:`private_rows_per_example`.
        """
        c = self.config
        b, k = x.shape[0], c.noise_multiplicity
        y1h = self.label_vector(y, b, x)
        if self.spec.kind == "image":
            x0, y1h, lead = self.to_model_space(x).repeat_interleave(k, 0), y1h.repeat_interleave(k, 0), (b * k,)
        else:
            x0, y1h, lead = self.to_model_space(x)[:, None].expand(b, k, -1), y1h[:, None].expand(b, k, -1), (b, k)
        if self.spec.n_classes and c.label_dropout > 0:
            keep = (rand(lead, generator, x) >= c.label_dropout).to(x)
            y1h = y1h * keep[..., None]
        t = randint(c.timesteps, lead, generator, x)
        noise = randn(x0.shape, generator, x0)
        ab = alpha_bar(t, c.timesteps).to(x).view(*lead, *([1] * (x0.dim() - len(lead))))
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        err = (self.denoiser(xt, t, y1h) - noise).pow(2)
        return err.reshape(b, k, -1).mean(2).mean(1)

    def private_module(self) -> nn.Module:
        return self.denoiser

    def private_rows_per_example(self) -> int:
        return self.config.noise_multiplicity if self.spec.kind == "image" else 1

    def predict_noise(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None,
                      guidance: float = 1.0) -> torch.Tensor:
        """Noise prediction, with classifier-free guidance of scale ``guidance`` when labels are given."""
        n = xt.shape[0]
        y1h = self.label_vector(y, n, xt)
        if y is None or guidance == 1.0:
            return self.denoiser(xt, t, y1h)
        eps = self.denoiser(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y1h, torch.zeros_like(y1h)]))
        eps_c, eps_u = eps.chunk(2)
        return classifier_free_guidance(eps_c, eps_u, guidance)

    def _alpha_bar(self, t: int) -> float:
        return alpha_bar(torch.tensor([t]), self.config.timesteps).item() if t >= 0 else 1.0

    def _sampler(self, sampler: SamplerConfig | None) -> SamplerConfig:
        return (sampler or SamplerConfig()).resolved(self.spec.kind)

    def generate(self, z, y=None, *, hard=True, generator=None, sampler=None, step_hooks=()):
        """From noise ``z = x_T``: DDIM (``sampler.steps``, ``eta``) or DDPM ancestral sampling
        over all timesteps (``sampler.kind == "ddpm"``, needs ``generator``). Each step's
        output passes through ``step_hooks`` in order. Differentiable in ``z``; the soft decode
        (``hard=False``) also leaves the x0 estimates unclipped, because a clipped estimate
        has no gradient."""
        cfg = self._sampler(sampler)
        clip = cfg.clip and hard
        if cfg.kind == "ddpm":
            ts = list(range(self.config.timesteps - 1, -1, -1))
        else:
            ts = timestep_schedule(self.config.timesteps, cfg.steps)
        x = z
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            ab, ab_prev = self._alpha_bar(t), self._alpha_bar(t_prev)
            eps = self.predict_noise(x, tt, y, cfg.guidance)
            if cfg.kind == "ddpm":
                noise = randn(x.shape, generator, x) if t > 0 else None
                out = ddpm_step(eps, x, alpha_bar=ab, alpha_bar_prev=ab_prev, noise=noise, clip=clip)
            else:
                # The last step (to t = -1) adds no noise, so it draws none.
                noise = randn(x.shape, generator, x) if cfg.eta > 0 and t_prev >= 0 else None
                out = ddim_step(eps, x, alpha_bar=ab, alpha_bar_prev=ab_prev, eta=cfg.eta, noise=noise, clip=clip)
            for hook in step_hooks:
                out = hook(StepState(i, t, t_prev, x, out, y))
            x = out.prev_sample
        return self.from_model_space(x, hard)

    def invert(self, x, y=None, *, sampler=None):
        """DDIM inversion: the deterministic sampler run backwards from data to ``x_T``
        (``sampler.steps`` and ``guidance`` as for generation)."""
        cfg = self._sampler(sampler)
        h = self.to_model_space(x)
        prev = -1
        for t in reversed(timestep_schedule(self.config.timesteps, cfg.steps)):
            tp = torch.full((h.shape[0],), t, device=h.device, dtype=torch.long)
            eps = self.predict_noise(h, tp, y, cfg.guidance)
            h = ddim_inversion_step(eps, h, alpha_bar=self._alpha_bar(prev),
                                    alpha_bar_next=self._alpha_bar(t)).prev_sample
            prev = t
        return h
