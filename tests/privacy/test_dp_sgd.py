"""DP-SGD engine: oracles against a slow per-example loop (STACK-NOTES lists SILENT failures)."""

from __future__ import annotations

import copy

import pytest
import torch

from trustgen.models import build_model
from trustgen.models.nets import DataSpec
from trustgen.privacy.secure_random import SecureRandom, key_from_seed, new_key
from trustgen.privacy.dp_sgd import PrivateGradients, choose_mode, poisson_batch

TAB = DataSpec("tabular", 6, 3, (("numeric", 0, 1), ("categorical", 1, 3), ("numeric", 4, 1), ("numeric", 5, 1)))
IMG = DataSpec("image", 64, 4, (), (1, 8, 8))
SMALL = {"vae": {"hidden": 16, "width": 8}, "gan": {"hidden": 16, "width": 8, "r1_gamma": 0.0},
         "diffusion": {"hidden": 16, "width": 8}}
B = 6


def make(family, spec, device, **extra):
    torch.manual_seed(0)
    return build_model(family, spec, {**SMALL[family], **extra}).to(device)


def batch(spec, device):
    g = torch.Generator().manual_seed(0)
    shape = (B, spec.dim) if spec.kind == "tabular" else (B, *spec.shape)
    x = torch.rand(shape, generator=g) * 2 - 1
    for kind, start, size in spec.blocks:
        if kind == "categorical":
            x[:, start:start + size] = torch.nn.functional.one_hot(torch.randint(size, (B,), generator=g), size).float()
    return x.to(device), torch.randint(spec.n_classes, (B,), generator=g).to(device)


def slow_clipped_mean(model, x, y, C, seed):
    """sum_i clip_C(grad of example i's loss) / B, one example at a time. Example i's loss is
    read from a batch made of B copies of example i, so every random draw is the same as in
    the real batch (the model's own independence test shows loss_i depends on row i only)."""
    params = list(model.private_module().parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(B):
        li = model.loss(x[i:i + 1].expand_as(x).clone(), y[i:i + 1].expand_as(y).clone(),
                        generator=torch.Generator().manual_seed(seed))[i]
        g = torch.autograd.grad(li, params, allow_unused=True)
        g = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, params)]
        norm = torch.sqrt(sum(gi.pow(2).sum() for gi in g))
        for t, gi in zip(total, g):
            t += gi * min(1.0, C / (norm.item() + 1e-6))
    return [t / B for t in total]


CASES = [("vae", "tab", "ghost", 1), ("vae", "tab", "hooks", 1), ("vae", "img", "hooks", 1),
         ("gan", "tab", "ghost", 1), ("gan", "tab", "hooks", 1), ("gan", "img", "hooks", 1),
         ("diffusion", "tab", "ghost", 1), ("diffusion", "img", "hooks", 1),
         ("diffusion", "tab", "ghost", 3), ("diffusion", "img", "hooks", 3)]  # K noise draws per example
# Book-keeping on every family and kind, with several rows per example (K draws, real/fake pairs).
CASES += [(family, kind, "bookkeeping", k) for family in ("vae", "gan", "diffusion") for kind in ("tab", "img")
          for k in ((1, 3) if family == "diffusion" else (1,))]


@pytest.mark.parametrize("family, spec_name, mode, k", CASES)
def test_clipped_gradient_matches_slow_per_example_loop(family, spec_name, mode, k, device):
    spec = TAB if spec_name == "tab" else IMG
    extra = {"noise_multiplicity": k} if family == "diffusion" else {}
    model = make(family, spec, device, **extra)
    oracle_model = copy.deepcopy(model)
    x, y = batch(spec, device)
    C = 0.05  # small enough that most examples are clipped
    expected = slow_clipped_mean(oracle_model, x, y, C, seed=7)
    dp = PrivateGradients(model.private_module(), max_grad_norm=C, noise_multiplier=0.0, expected_batch_size=B,
                          mode=mode, rows_per_example=model.private_rows_per_example(),
                          noise=SecureRandom(key_from_seed(0)))
    opt = torch.optim.SGD(model.private_module().parameters(), lr=0.0)
    opt.zero_grad(set_to_none=True)
    norms = dp.backward(model.loss(x, y, generator=torch.Generator().manual_seed(7)), opt)
    got = [p.grad for p in model.private_module().parameters()]
    assert (norms > C).sum() >= B // 2, "the test must exercise clipping"
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-6)
    dp.close()


@pytest.mark.parametrize("family", ["vae", "diffusion", "gan"])
def test_noise_zero_and_no_clipping_equals_plain_gradient(family, device):
    """With sigma = 0 and C huge, the DP gradient is the plain mean gradient (B = expected B)."""
    model = make(family, TAB, device)
    plain = copy.deepcopy(model)
    x, y = batch(TAB, device)
    dp = PrivateGradients(model.private_module(), max_grad_norm=1e9, noise_multiplier=0.0, expected_batch_size=B,
                          mode=choose_mode(model), noise=SecureRandom(new_key()))
    opt = torch.optim.SGD(model.private_module().parameters(), lr=0.0)
    dp.backward(model.loss(x, y, generator=torch.Generator().manual_seed(1)), opt)
    ref = torch.autograd.grad(plain.loss(x, y, generator=torch.Generator().manual_seed(1)).mean(),
                              list(plain.private_module().parameters()))
    for p, r in zip(model.private_module().parameters(), ref):
        torch.testing.assert_close(p.grad, r, rtol=1e-4, atol=1e-6)


def test_noise_has_the_calibrated_scale_and_empty_batch_is_noise_only():
    """Empty Poisson batch: grad = N(0, (sigma C)^2) / E[B] per coordinate. Seed 0; the std of
    ~4,000 coordinates is within 10% of its target with failure probability < 1e-6."""
    net = torch.nn.Linear(200, 20)
    sigma, C, eb = 1.3, 0.7, 10.0
    dp = PrivateGradients(net, max_grad_norm=C, noise_multiplier=sigma, expected_batch_size=eb, mode="hooks",
                          noise=SecureRandom(key_from_seed(0)))
    dp.backward(torch.zeros(0), torch.optim.SGD(net.parameters(), lr=0.1))
    g = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert abs(g.std().item() / (sigma * C / eb) - 1) < 0.1 and abs(g.mean().item()) < 0.01


def test_poisson_batches_have_the_right_rate_and_can_be_empty():
    rng = SecureRandom(key_from_seed(0))
    sizes = torch.tensor([len(poisson_batch(1000, 0.01, rng, step)) for step in range(2000)]).float()
    # Mean of 2000 Binomial(1000, 0.01): sd 0.07; 0.4 is > 5 sd. Empty batches: p=4.3e-5 each.
    assert abs(sizes.mean().item() - 10) < 0.4
    assert any(len(poisson_batch(50, 0.01, rng, step)) == 0 for step in range(20))
    # Addressed by step: the same step gives the same batch; another rank (part) another one.
    assert torch.equal(poisson_batch(1000, 0.3, rng, 5), poisson_batch(1000, 0.3, rng, 5))
    assert not torch.equal(poisson_batch(1000, 0.3, rng, 5), poisson_batch(1000, 0.3, rng, 5, part=1))
