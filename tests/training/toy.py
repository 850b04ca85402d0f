"""Tiny encoded tabular data shared by the training tests (one number, one 3-way category)."""

from __future__ import annotations

import torch

from trustgen.models import build_model
from trustgen.models.nets import DataSpec

SPEC = DataSpec("tabular", 4, 2, (("numeric", 0, 1), ("categorical", 1, 3)))


def toy_data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 4)
    x[:, 0] = torch.rand(n, generator=g) * 2 - 1
    x[torch.arange(n), 1 + torch.randint(3, (n,), generator=g)] = 1
    return x, torch.randint(2, (n,), generator=g)


def fresh(family: str, **opts):
    """A small model with fixed initial weights (so compared runs start identical)."""
    torch.manual_seed(123)
    return build_model(family, SPEC, {"hidden": 16, **opts})
