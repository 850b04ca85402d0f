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


def slow_group_clipped_mean(net, x, t, groups):
    """Each example's gradient clipped group by group: group j to C_j (an explicit loop)."""
    params = list(net.parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(B):
        g = torch.autograd.grad(per_example_loss(net, x[i:i + 1], t[i:i + 1])[0], params)
        for members, c in groups:
            idx = [k for k, p in enumerate(params) if any(p is m for m in members)]
            norm = torch.sqrt(sum(g[k].pow(2).sum() for k in idx)).item()
            for k in idx:
                total[k] += g[k] * min(1.0, c / (norm + 1e-6))
    return [a / B for a in total]


def test_per_group_clipping_matches_a_slow_loop_and_bounds_the_whole_norm_by_C():
    net = make_net()
    oracle = copy.deepcopy(net)
    first, second = list(net[0].parameters()), list(net[2].parameters())
    C, share = 0.05, 0.2
    dp = PrivateGradients(net, max_grad_norm=C, noise_multiplier=0.0, expected_batch_size=1, mode="hooks",
                          noise=SecureRandom(key_from_seed(0)), clip_groups=[(first, 1 - share), (second, share)])
    x, t = torch.randn(B, 5, generator=torch.Generator().manual_seed(3)), torch.randn(B, 3)
    expected = slow_group_clipped_mean(oracle, x, t, [(list(oracle[0].parameters()), C * (1 - share) ** 0.5),
                                                      (list(oracle[2].parameters()), C * share ** 0.5)])
    # expected_batch_size 1: p.grad is the SUM over examples; rescale the oracle's mean
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    norms = dp.backward(per_example_loss(net, x[:1], t[:1]), opt)  # one example: its clipped norm
    whole = torch.sqrt(sum(p.grad.pow(2).sum() for p in net.parameters()))
    assert norms[0] > C and whole <= C * (1 + 1e-5), "one example's clipped gradient has norm at most C"
    one_group = [p.grad for p in second]
    assert torch.sqrt(sum(g.pow(2).sum() for g in one_group)) <= C * share ** 0.5 * (1 + 1e-5)
    opt.zero_grad(set_to_none=True)
    dp.backward(per_example_loss(net, x, t), opt)
    for p, want in zip(net.parameters(), expected):
        torch.testing.assert_close(p.grad, want * B, rtol=1e-4, atol=1e-7)
    dp.close()


def test_clipping_groups_are_checked():
    net = make_net()
    first, second = list(net[0].parameters()), list(net[2].parameters())
    kw = dict(max_grad_norm=1.0, noise_multiplier=0.0, expected_batch_size=1, noise=SecureRandom(key_from_seed(0)))
    with pytest.raises(Exception, match="sum to 1"):
        PrivateGradients(net, mode="hooks", clip_groups=[(first, 0.5), (second, 0.6)], **kw)
    with pytest.raises(Exception, match="exactly once"):
        PrivateGradients(net, mode="hooks", clip_groups=[(first, 1.0)], **kw)
    with pytest.raises(Exception, match="hooks"):
        PrivateGradients(net, mode="ghost", clip_groups=[(first, 0.5), (second, 0.5)], **kw)
