"""Denoising diffusion (DDPM training, epsilon prediction) with DDPM and DDIM samplers and
DDIM inversion.

Categorical columns are diffused as one-hot vectors rescaled to {-1, +1} (Gaussian diffusion
on one-hot codes) and decoded by argmax. Labels are dropped with probability
``label_dropout`` during training so sampling can use classifier-free guidance.

``noise_multiplicity`` K averages each example's loss over K draws of (t, noise) before
returning it: the per-example loss (and so the clipped gradient under DP) has lower variance
at no privacy cost, because it is still one example's loss.

The reverse process lives here rather than in ``trustgen.sampling`` because ``sample`` and
``invert`` are part of the model contract and models import nothing from later stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from trustgen.models.base import GenerativeModel, rand, randint, randn
from trustgen.models.nets import DataSpec, ResConvBlock, ResMLPBlock, down_levels, groups_for, timestep_embedding


@dataclass
class DiffusionConfig:
    timesteps: int = 1000
    hidden: int = 256
    depth: int = 3
    width: int = 64
    time_dim: int = 64
    noise_multiplicity: int = 1
    label_dropout: float = 0.1
    guidance: float = 1.0
    sampler: Literal["ddim", "ddpm"] = "ddim"
    sample_steps: int = 50

    @classmethod
    def defaults_for(cls, spec: DataSpec) -> "DiffusionConfig":
        return cls(width=32, guidance=2.0) if spec.kind == "image" else cls()


def alpha_bar(t: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021): signal fraction at integer time ``t``; t=-1 is 1."""
    s = 0.008
    f = lambda u: torch.cos((u / timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ab = f(t.double() + 1.0) / f(torch.zeros_like(t, dtype=torch.float64))
    return ab.clamp(1e-5, 1.0).float()


class MLPDenoiser(nn.Module):
    def __init__(self, spec: DataSpec, c: DiffusionConfig) -> None:
        super().__init__()
        self.time_dim = c.time_dim
        self.inp = nn.Linear(spec.dim, c.hidden)
        self.cond = nn.Linear(c.time_dim + spec.n_classes, c.hidden)
        self.blocks = nn.ModuleList(ResMLPBlock(c.hidden, c.hidden) for _ in range(c.depth))
        self.out = nn.Linear(c.hidden, spec.dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y1h: torch.Tensor) -> torch.Tensor:
        # Works on [B, d] and on [B, K, d] (K noise draws of one example on a sequence axis).
        temb = timestep_embedding(t.flatten(), self.time_dim).view(*t.shape, self.time_dim).to(x)
        c = F.silu(self.cond(torch.cat([temb, y1h], -1)))
        h = self.inp(x)
        for blk in self.blocks:
            h = blk(h, c)
        return self.out(F.silu(h))


class UNetDenoiser(nn.Module):
    """A small UNet (GroupNorm residual blocks, one or two resolutions down)."""

    def __init__(self, spec: DataSpec, c: DiffusionConfig) -> None:
        super().__init__()
        ch, h, w = spec.shape
        self.time_dim = c.time_dim
        cd, wd = c.width * 2, c.width
        self.cond = nn.Linear(c.time_dim + spec.n_classes, cd)
        self.inc = nn.Conv2d(ch, wd, 3, 1, 1)
        levels = down_levels(h, w)
        chans = [wd * min(2 ** i, 2) for i in range(levels + 1)]
        self.down_blocks = nn.ModuleList(ResConvBlock(chans[i], chans[i], cd) for i in range(levels))
        self.downs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1) for i in range(levels))
        self.mid1 = ResConvBlock(chans[-1], chans[-1], cd)
        self.mid2 = ResConvBlock(chans[-1], chans[-1], cd)
        self.ups = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 3, 1, 1) for i in range(levels))
        self.up_blocks = nn.ModuleList(ResConvBlock(2 * chans[i], chans[i], cd) for i in range(levels))
        self.out_norm = nn.GroupNorm(groups_for(wd), wd)
        self.out = nn.Conv2d(wd, ch, 3, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y1h: torch.Tensor) -> torch.Tensor:
        c = F.silu(self.cond(torch.cat([timestep_embedding(t, self.time_dim).to(x), y1h], 1)))
        h = self.inc(x)
        skips = []
        for blk, down in zip(self.down_blocks, self.downs):
            h = blk(h, c)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid1(h, c), c)
        for i in reversed(range(len(self.ups))):
            h = self.ups[i](F.interpolate(h, scale_factor=2, mode="nearest"))
            h = self.up_blocks[i](torch.cat([h, skips[i]], 1), c)
        return self.out(F.silu(self.out_norm(h)))


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
        self.denoiser = UNetDenoiser(spec, config) if spec.kind == "image" else MLPDenoiser(spec, config)
        # Categorical dims are diffused in {-1, +1}; a plain attribute, not a buffer, keeps
        # the module free of state Opacus would have to handle.
        mask = torch.zeros(spec.dim, dtype=torch.bool)
        for kind, start, size in spec.blocks:
            if kind == "categorical":
                mask[start:start + size] = True
        self._cat_mask = mask

    def noise_shape(self) -> tuple:
        return tuple(self.spec.shape) if self.spec.kind == "image" else (self.spec.dim,)

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.kind == "image" or not self._cat_mask.any():
            return x
        return torch.where(self._cat_mask.to(x.device), 2.0 * x - 1.0, x)

    def _from_model(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.kind == "image" or not self._cat_mask.any():
            return x
        out = x.clone()
        for kind, start, size in self.spec.blocks:
            if kind == "categorical":
                out[:, start:start + size] = F.one_hot(x[:, start:start + size].argmax(1), size).to(x)
        return out

    def _bcast(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (x.dim() - 1)))

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
            x0, y1h, lead = self._to_model(x).repeat_interleave(k, 0), y1h.repeat_interleave(k, 0), (b * k,)
        else:
            x0, y1h, lead = self._to_model(x)[:, None].expand(b, k, -1), y1h[:, None].expand(b, k, -1), (b, k)
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

    def predict_noise(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Noise prediction with classifier-free guidance ``eps_u + w (eps_c - eps_u)``."""
        n = xt.shape[0]
        y1h = self.label_vector(y, n, xt)
        w = self.config.guidance
        if y is None or w == 1.0:
            return self.denoiser(xt, t, y1h)
        eps = self.denoiser(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y1h, torch.zeros_like(y1h)]))
        eps_c, eps_u = eps.chunk(2)
        return eps_u + w * (eps_c - eps_u)

    def _schedule(self, steps: int) -> list[int]:
        steps = max(1, min(steps, self.config.timesteps))
        ts = torch.linspace(self.config.timesteps - 1, 0, steps).round().long().unique_consecutive()
        return ts.tolist()

    @torch.no_grad()
    def generate(self, z, y=None, *, generator=None):
        """From noise ``z = x_T``: DDIM (deterministic, ``sample_steps``) by default, or DDPM
        ancestral sampling over all timesteps (``sampler="ddpm"``, needs ``generator``)."""
        if self.config.sampler == "ddpm":
            return self._from_model(self.ddpm(z, y, generator))
        return self._from_model(self.ddim(z, y, eta=0.0, generator=generator))

    def ddim(self, z: torch.Tensor, y: torch.Tensor | None = None, *, steps: int | None = None,
             eta: float = 0.0, generator: torch.Generator | None = None, clip: bool = True) -> torch.Tensor:
        """DDIM sampling from ``x_T = z``. ``clip`` bounds each x0 estimate to [-1, 1] (better
        samples); pass ``clip=False`` where exact invertibility matters (inversion round trips)."""
        T = self.config.timesteps
        ts = self._schedule(steps or self.config.sample_steps)
        x = z
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            ab = alpha_bar(torch.tensor([t]), T).item()
            ab_prev = alpha_bar(torch.tensor([t_prev]), T).item() if t_prev >= 0 else 1.0
            eps = self.predict_noise(x, tt, y)
            x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
            if clip:
                x0 = x0.clamp(-1.0, 1.0)
                eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)  # consistent with the clipped x0
            sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma ** 2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * randn(x.shape, generator, x)
        return x

    def ddpm(self, z: torch.Tensor, y: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        T = self.config.timesteps
        x = z
        for t in range(T - 1, -1, -1):
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            ab = alpha_bar(torch.tensor([t]), T).item()
            ab_prev = alpha_bar(torch.tensor([t - 1]), T).item() if t > 0 else 1.0
            beta = 1 - ab / ab_prev
            eps = self.predict_noise(x, tt, y)
            x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1.0, 1.0)
            # Posterior mean of q(x_{t-1} | x_t, x0).
            mean = (math.sqrt(ab_prev) * beta / (1 - ab)) * x0 + (math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)) * x
            if t > 0:
                var = beta * (1 - ab_prev) / (1 - ab)
                x = mean + math.sqrt(var) * randn(x.shape, generator, x)
            else:
                x = mean
        return x

    @torch.no_grad()
    def invert(self, x, y=None, *, steps: int | None = None):
        """DDIM inversion: run the deterministic sampler backwards from data to ``x_T``."""
        T = self.config.timesteps
        ts = list(reversed(self._schedule(steps or self.config.sample_steps)))
        h = self._to_model(x)
        prev = -1
        for t in ts:
            ab_prev = alpha_bar(torch.tensor([prev]), T).item() if prev >= 0 else 1.0
            ab = alpha_bar(torch.tensor([t]), T).item()
            tp = torch.full((h.shape[0],), t, device=h.device, dtype=torch.long)
            eps = self.predict_noise(h, tp, y)
            x0 = (h - math.sqrt(1 - ab_prev) * eps) / math.sqrt(ab_prev)
            h = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
            prev = t
        return h
