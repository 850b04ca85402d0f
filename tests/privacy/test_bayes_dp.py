"""DP-SGD on mean-field Bayesian layers: per-example clipping reaches the variational parameters.

The oracle is a slow loop over examples (each example's gradient by autograd, clipped, summed),
with the same weight noise; PrivateGradients in hooks mode must match it for every mu and rho.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trustgen.models.bayes import MeanFieldLinear
from trustgen.privacy.dp_sgd import PrivateGradients, choose_mode
from trustgen.privacy.secure_random import SecureRandom, key_from_seed

B = 12


def make_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(MeanFieldLinear(5, 8), nn.Tanh(), MeanFieldLinear(8, 3))
    for m in net:
        if isinstance(m, MeanFieldLinear):
            with torch.no_grad():
                m.weight_rho.fill_(-1.0)  # a posterior wide enough that rho's gradients matter
            m.resample(torch.Generator().manual_seed(seed + 1))
    return net


def per_example_loss(net, x, t):
    return (net(x) - t).pow(2).sum(1)


def slow_clipped_mean(net, x, t, C):
    params = list(net.parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(B):
        g = torch.autograd.grad(per_example_loss(net, x[i:i + 1], t[i:i + 1])[0], params)
        norm = torch.sqrt(sum(gi.pow(2).sum() for gi in g))
        for acc, gi in zip(total, g):
            acc += gi * min(1.0, C / (norm.item() + 1e-6))
    return [a / B for a in total]


@pytest.mark.parametrize("C", [0.05, 1e9])  # most examples clipped; none clipped
def test_clipped_gradients_of_mu_and_rho_match_a_slow_per_example_loop(C):
    net = make_net()
    oracle = copy.deepcopy(net)
    assert choose_mode(net) == "hooks"
    dp = PrivateGradients(net, max_grad_norm=C, noise_multiplier=0.0, expected_batch_size=B, mode="hooks",
                          noise=SecureRandom(key_from_seed(0)))
    # A new weight draw AFTER wrapping, as every training step makes: a per-sample mechanism that
    # copied the layer when it wrapped it (Opacus's functorch fallback) would still use the old one.
    for a, b in zip(net, oracle):
        if isinstance(a, MeanFieldLinear):
            a.resample(torch.Generator().manual_seed(11))
            b.eps_weight, b.eps_bias = a.eps_weight.clone(), a.eps_bias.clone()
    x, t = torch.randn(B, 5, generator=torch.Generator().manual_seed(3)), torch.randn(B, 3)
    expected = slow_clipped_mean(oracle, x, t, C)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    opt.zero_grad(set_to_none=True)
    norms = dp.backward(per_example_loss(net, x, t), opt)
    if C < 1:
        assert (norms > C).sum() >= B // 2, "the test must exercise clipping"
    names = [n for n, _ in net.named_parameters()]
    assert any("rho" in n for n in names)
    for name, p, want in zip(names, net.parameters(), expected):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, want, rtol=1e-4, atol=1e-7, msg=name)
        if "rho" in name:
            assert want.abs().max() > 0, f"{name}: the oracle's rho gradient is 0: the test would not see a bug"
    dp.close()


def test_the_kl_to_the_prior_is_zero_at_the_prior_and_positive_elsewhere():
    layer = MeanFieldLinear(4, 2, prior_sigma=0.5)
    with torch.no_grad():
        layer.weight_mu.zero_()
        layer.bias_mu.zero_()
        rho = torch.log(torch.expm1(torch.tensor(0.5)))  # softplus(rho) = 0.5 = the prior's sigma
        layer.weight_rho.fill_(rho)
        layer.bias_rho.fill_(rho)
    assert abs(layer.kl().item()) < 1e-5
    with torch.no_grad():
        layer.weight_mu.add_(0.3)
    assert layer.kl().item() > 0.1


def test_weight_noise_is_drawn_from_the_given_generator_and_the_mean_has_none():
    a, b = MeanFieldLinear(3, 2), MeanFieldLinear(3, 2)
    b.load_state_dict(a.state_dict())
    a.resample(torch.Generator().manual_seed(5))
    b.resample(torch.Generator().manual_seed(5))
    x = torch.randn(4, 3)
    torch.testing.assert_close(a(x), b(x))
    a.use_mean()
    torch.testing.assert_close(a(x), nn.functional.linear(x, a.weight_mu, a.bias_mu))
    assert set(a.state_dict()) == {"weight_mu", "weight_rho", "bias_mu", "bias_rho"}  # no noise in saved state
