"""Backbones shared by the model families.

Only layers that Opacus can clip per example are used: ``Linear``, ``Conv2d``, ``GroupNorm``
(never BatchNorm, which mixes examples in a batch and breaks per-example privacy).
Labels enter as one-hot vectors through ``Linear`` layers instead of ``nn.Embedding``:
Embedding crashes several Opacus modes on empty Poisson batches and needs special index
shapes in others (see shared/STACK-NOTES.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the encoded data (derived from the schema).

    Attributes:
        kind: ``"tabular"`` (vectors of ``dim``) or ``"image"`` (``shape`` = C x H x W).
        blocks: for tabular data, ``(kind, start, size)`` of each column in the encoded vector.
        n_classes: number of label classes to condition on (0: unconditional).
    """

    kind: Literal["tabular", "image"]
    dim: int
    n_classes: int
    blocks: tuple = ()
    shape: tuple = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "n_classes": self.n_classes,
                "blocks": [list(b) for b in self.blocks], "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        return cls(d["kind"], int(d["dim"]), int(d["n_classes"]),
                   tuple(tuple(b) for b in d["blocks"]), tuple(d["shape"]))

    @classmethod
    def from_encoder(cls, encoder) -> "DataSpec":
        """The spec of an encoder from :mod:`trustgen.data.encoders` (read through its public
        attributes ``kind``, ``dim``, ``schema`` and, for tables, ``blocks``: models import
        nothing from the data stage)."""
        s = encoder.schema
        if encoder.kind == "image":
            return cls("image", encoder.dim, s.n_classes, (), tuple(s.shape))
        blocks = tuple((b.kind, b.start, b.size) for b in encoder.blocks)
        return cls("tabular", encoder.dim, s.n_classes, blocks, ())


def one_hot(y: torch.Tensor | None, n_classes: int, batch: int, like: torch.Tensor) -> torch.Tensor:
    """One-hot labels (``[B, n_classes]``); all zeros for ``y=None`` ("no label")."""
    if n_classes == 0 or y is None:
        return like.new_zeros(batch, n_classes)
    return F.one_hot(y.long(), n_classes).to(like.dtype)


def mlp(sizes: list[int], act: Callable[[], nn.Module] = nn.SiLU,
        norm: Callable[[int], nn.Module] | None = None, last_act: bool = False) -> nn.Sequential:
    """``Linear -> [norm] -> act`` for each hidden layer (the one MLP builder of the families).

    ``norm`` must act per example (``GroupNorm``, never ``BatchNorm``: see the module docstring).
    """
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            if norm is not None:
                layers.append(norm(sizes[i + 1]))
            layers.append(act())
    return nn.Sequential(*layers)


class ConditionalMLP(nn.Sequential):
    """An :func:`mlp` applied to ``[x, y1h]`` concatenated on the last axis.

    Subclasses ``nn.Sequential`` (no wrapper level), so its weights keep the names of a plain
    ``mlp`` and runs saved before it existed still load."""

    def forward(self, x: torch.Tensor, y1h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([x, y1h], -1))


def groups_for(channels: int) -> int:
    """The largest of 8, 4, 2, 1 that divides ``channels``."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def down_levels(height: int, width: int, max_levels: int = 2) -> int:
    """How many times an image can be halved (each side even) and stay at least 2 pixels."""
    n = 0
    while n < max_levels and height % 2 == 0 and width % 2 == 0 and min(height, width) >= 4:
        height, width, n = height // 2, width // 2, n + 1
    return n


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    k, p = (4, 1) if stride == 2 else (3, 1)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, p), nn.GroupNorm(groups_for(cout), cout), nn.SiLU())


class ConvEncoder(nn.Module):
    """Image (+ label channels) -> feature vector of size ``out``."""

    def __init__(self, shape: tuple, n_classes: int, width: int, out: int) -> None:
        super().__init__()
        c, h, w = shape
        self.n_classes = n_classes
        levels = down_levels(h, w)
        layers = [conv_block(c + n_classes, width)]
        ch = width
        for _ in range(levels):
            layers.append(conv_block(ch, ch * 2, stride=2))
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.flat = ch * (h >> levels) * (w >> levels)
        self.head = nn.Linear(self.flat, out)

    def forward(self, x: torch.Tensor, y1h: torch.Tensor) -> torch.Tensor:
        if self.n_classes:
            x = torch.cat([x, y1h[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return self.head(self.body(x).flatten(1))


class ConvDecoder(nn.Module):
    """Vector -> image of ``shape`` (unbounded output; callers apply their own link)."""

    def __init__(self, inp: int, shape: tuple, width: int) -> None:
        super().__init__()
        c, h, w = shape
        self.levels = down_levels(h, w)
        self.ch = width * 2 ** self.levels
        self.h0, self.w0 = h >> self.levels, w >> self.levels
        self.fc = nn.Linear(inp, self.ch * self.h0 * self.w0)
        layers: list[nn.Module] = [nn.GroupNorm(groups_for(self.ch), self.ch), nn.SiLU()]
        ch = self.ch
        for _ in range(self.levels):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_block(ch, ch // 2)]
            ch //= 2
        layers += [conv_block(ch, ch), nn.Conv2d(ch, c, 3, 1, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(v).view(-1, self.ch, self.h0, self.w0))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or real) diffusion times, ``[B] -> [B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResMLPBlock(nn.Module):
    """Residual MLP block with a conditioning vector added to its hidden layer."""

    def __init__(self, width: int, cond: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.cond = nn.Linear(cond, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.silu(self.fc1(F.silu(h)) + self.cond(c)))


class ResConvBlock(nn.Module):
    """GroupNorm residual conv block with a conditioning vector as a per-channel shift."""

    def __init__(self, cin: int, cout: int, cond: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(groups_for(cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.cond = nn.Linear(cond, cout)
        self.n2 = nn.GroupNorm(groups_for(cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x))) + self.cond(c)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h
