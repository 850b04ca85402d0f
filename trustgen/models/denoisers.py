"""Denoisers of the diffusion family: ``(x_t, t, y1h) -> predicted noise``.

Registered as ``diffusion.denoiser`` backbones in :mod:`trustgen.models.backbones`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trustgen.models.nets import DataSpec, ResConvBlock, ResMLPBlock, down_levels, groups_for, timestep_embedding


class MLPDenoiser(nn.Module):
    def __init__(self, spec: DataSpec, c) -> None:
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

    def __init__(self, spec: DataSpec, c) -> None:
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
