"""The soft decode is differentiable from output to latent for every family and kind of
data, and the hard decode is its release form (one-hot codes, in-domain values)."""

from __future__ import annotations

import pytest
import torch

from trustgen.models import FAMILIES, build_model
from trustgen.models.nets import DataSpec
from trustgen.sampling.config import SamplerConfig

TAB = DataSpec("tabular", 6, 3, (("numeric", 0, 1), ("categorical", 1, 3), ("numeric", 4, 1), ("numeric", 5, 1)))
IMG = DataSpec("image", 64, 10, (), (1, 8, 8))
SMALL = {"vae": {"hidden": 16, "width": 4}, "gan": {"hidden": 16, "width": 4},
         "diffusion": {"hidden": 16, "width": 8, "timesteps": 20}}
FAST = SamplerConfig(steps=3)


@pytest.mark.parametrize("spec", [TAB, IMG], ids=["tabular", "image"])
@pytest.mark.parametrize("family", FAMILIES)
def test_soft_decode_gradient_reaches_the_latent(family, spec, device):
    torch.manual_seed(0)
    m = build_model(family, spec, SMALL[family]).to(device).eval()
    z = m.sample_noise(4, torch.Generator().manual_seed(0)).requires_grad_(True)
    y = torch.arange(4, device=device) % spec.n_classes
    x = m.generate(z, y, hard=False, sampler=FAST)
    weights = torch.linspace(-1, 1, x[0].numel(), device=device).view(x[0].shape)
    (x * weights).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert z.grad.abs().sum() > 0, f"{family}: no gradient from the soft decode to z"
    # Each sample's output depends on its own latent only.
    z2 = z.detach().clone().requires_grad_(True)
    m.generate(z2, y, hard=False, sampler=FAST)[0].sum().backward()
    assert z2.grad[1:].abs().max() == 0 and z2.grad[0].abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_hard_decode_is_one_hot_and_soft_decode_gives_probabilities(family, device):
    torch.manual_seed(0)
    m = build_model(family, TAB, SMALL[family]).to(device).eval()
    z = m.sample_noise(16, torch.Generator().manual_seed(1))
    same = SamplerConfig(steps=3, clip=False)  # soft diffusion never clips: compare like with like
    hard = m.generate(z, None, sampler=same)
    soft = m.generate(z, None, hard=False, sampler=same)
    cat_hard, cat_soft = hard[:, 1:4], soft[:, 1:4]
    assert torch.equal(cat_hard.sum(1), torch.ones(16, device=device)) and set(cat_hard.unique().tolist()) <= {0.0, 1.0}
    if family != "diffusion":  # VAE/GAN: softmax probabilities; diffusion: the un-rescaled state
        torch.testing.assert_close(cat_soft.sum(1), torch.ones(16, device=device))
    # The hard code takes the most likely category of the soft decoding.
    assert torch.equal(cat_hard.argmax(1), cat_soft.argmax(1))


@pytest.mark.parametrize("family", ["vae", "diffusion"])
def test_invert_is_differentiable(family, device):
    torch.manual_seed(0)
    m = build_model(family, TAB, SMALL[family]).to(device).eval()
    x = m.sample(3, sampler=FAST).requires_grad_(True)
    m.invert(x, sampler=FAST).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
