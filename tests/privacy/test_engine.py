"""make_private: DP-SGD in the caller's own loop, against a slow per-example oracle."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from trustgen.errors import ConfigError, DataError, PrivacyError
from trustgen.privacy.accounting import epsilon_for
from trustgen.privacy.engine import make_private


def data(n=40, d=5, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, k, generator=g)


def per_example_loss(net, xb, yb):
    return ((net(xb) - yb) ** 2).sum(1)


@pytest.mark.parametrize("clipping", ["ghost", "hooks"])
def test_one_step_equals_clipped_sum_plus_the_same_noise(clipping, device):
    """The update is -lr * (sum_i clip_C(g_i) + N(0, (sigma C)^2)) / (q n), where g_i comes from a
    slow loop over examples and the noise is redrawn from a copy of the noise stream's state."""
    torch.manual_seed(0)
    x, y = (t.to(device) for t in data())
    net = nn.Linear(5, 2).to(device)
    oracle = copy.deepcopy(net)
    lr, C = 0.5, 0.1  # C small enough that every example is clipped
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    private = make_private(net, opt, x, y, epsilon=2.0, steps=5, batch_size=8, max_grad_norm=C,
                           accountant="rdp", clipping=clipping, secret_seed=123)
    assert private.plan.mode == clipping
    xb, yb = private.sampler.next_batch()
    assert len(xb) > 0
    noise = private.gradients.noise_of_step(0)  # the first step's noise, from the same secret source
    private.step(per_example_loss(net, xb, yb))

    params = list(oracle.parameters())
    total = [torch.zeros_like(p) for p in params]
    clipped = 0
    for i in range(len(xb)):
        g = torch.autograd.grad(per_example_loss(oracle, xb[i:i + 1], yb[i:i + 1])[0], params)
        norm = torch.sqrt(sum(gi.pow(2).sum() for gi in g)).item()
        clipped += norm > C
        for t, gi in zip(total, g):
            t += gi * min(1.0, C / (norm + 1e-6))
    assert clipped == len(xb), "the test must exercise clipping"
    std = private.plan.noise_multiplier * C
    expected_batch = private.plan.sample_rate * len(x)
    assert expected_batch == pytest.approx(8.0)
    for p_new, p_old, t, z in zip(net.parameters(), params, total, noise):
        expected = p_old - lr * (t + std * z.to(t)) / expected_batch
        torch.testing.assert_close(p_new.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    assert private.accountant.steps == 1
    private.close()


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_epsilon_after_the_planned_steps_is_the_target(accountant):
    torch.manual_seed(0)
    x, y = data(n=200)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
    with make_private(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y, epsilon=3.0, steps=30,
                      batch_size=20, accountant=accountant, secret_seed=1) as private:
        assert len(private.sampler) == 30
        for xb, yb in private.sampler:
            private.step(per_example_loss(net, xb, yb))
        eps = private.epsilon()
        assert 0.995 * 3.0 <= eps <= 3.0
        assert eps == epsilon_for(private.plan.noise_multiplier, 0.1, 30, private.plan.delta, accountant)
        report = private.report()
    assert (report.epsilon, report.steps, report.target_epsilon, report.sample_rate) == (eps, 30, 3.0, 0.1)
    assert report.private_modules == ["Sequential"] and report.sampling_scheme == "poisson"
    assert any("secret_seed" in c for c in report.caveats)


def test_stepping_beyond_the_plan_or_off_the_sampler_is_refused():
    torch.manual_seed(0)
    x, y = data()
    net = nn.Linear(5, 2)
    private = make_private(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y, epsilon=2.0, steps=3,
                           batch_size=8, accountant="rdp", secret_seed=2)
    with pytest.raises(PrivacyError, match="exactly one batch"):  # no batch drawn yet
        private.step(per_example_loss(net, x[:4], y[:4]))
    for xb, yb in private.sampler:
        private.step(per_example_loss(net, xb, yb))
    assert private.steps_left == 0 and len(private.sampler) == 0
    before = [p.detach().clone() for p in net.parameters()]
    xb, yb = private.sampler.next_batch()
    with pytest.raises(PrivacyError, match="all 3 planned steps are taken"):
        private.step(per_example_loss(net, xb, yb))
    assert private.accountant.steps == 3
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    private.close()


def test_a_skipped_batch_is_refused():
    x, y = data()
    net = nn.Linear(5, 2)
    private = make_private(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y, epsilon=2.0, steps=5,
                           batch_size=8, accountant="rdp", secret_seed=2)
    private.sampler.next_batch()
    xb, yb = private.sampler.next_batch()  # the first batch was dropped: cherry-picking
    with pytest.raises(PrivacyError, match="2 batches were drawn for 1 steps"):
        private.step(per_example_loss(net, xb, yb))
    private.close()


def test_batch_sizes_are_binomial():
    """4,000 batches over n = 500 at q = 0.05, secret_seed 2024 (deterministic). For a correct
    sampler the chi-square p-value is uniform, so the p > 1e-4 test fails falsely with probability
    1e-4; the mean is within 5 standard errors (false failure < 1e-6)."""
    n, steps = 500, 4_000
    x = torch.zeros(n, 1)
    net = nn.Linear(1, 1)
    private = make_private(net, torch.optim.SGD(net.parameters(), lr=0.1), x, epsilon=50.0, steps=steps,
                           batch_size=25, accountant="rdp", secret_seed=2024)
    q = private.plan.sample_rate
    assert q == 0.05
    sizes = np.array([len(xb) for xb, _ in private.sampler])
    assert len(sizes) == steps and private.sampler.drawn == steps
    assert abs(sizes.mean() - n * q) < 5 * np.sqrt(n * q * (1 - q) / steps)
    # bins 0..14, 15, ..., 35, 36..n: every expected count is >= 5
    edges = [15] + list(range(16, 37))
    observed = [np.sum(sizes < 15)] + [np.sum(sizes == k) for k in range(15, 36)] + [np.sum(sizes >= 36)]
    pmf = stats.binom(n, q)
    expected = [pmf.cdf(14)] + [pmf.pmf(k) for k in range(15, 36)] + [pmf.sf(35)]
    expected = np.array(expected) * steps
    assert len(edges) == len(observed) - 1 and expected.min() >= 5
    assert stats.chisquare(observed, expected).pvalue > 1e-4
    private.close()


def test_os_entropy_keys_the_noise_and_the_batches(monkeypatch):
    import trustgen.privacy.secure_random as secure_random

    x, y = data()
    draws = []
    monkeypatch.setattr(secure_random.secrets, "token_bytes", lambda k: draws.append(k) or bytes(range(k)))

    def first_batch(secret_seed):
        net = nn.Linear(5, 2)
        p = make_private(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y, epsilon=2.0, steps=5,
                         batch_size=8, accountant="rdp", secret_seed=secret_seed)
        xb, _ = p.sampler.next_batch()
        p.close()
        return xb, torch.cat([z.flatten() for z in p.gradients.noise_of_step(0)]), p.gradients.noise.key

    from_entropy = first_batch(None)
    assert draws == [32]  # 256 bits of OS entropy
    assert from_entropy[2] == bytes(range(32))
    fixed, other = first_batch(77), first_batch(77 + 2 ** 40)  # seeds that differ only above bit 32
    assert not torch.equal(fixed[1], other[1]) and not torch.equal(fixed[0], other[0])


@pytest.mark.parametrize("module, x", [
    (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), torch.randn(1_000, 3)),
    (nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 1)), torch.randint(5, (1_000,))),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.GroupNorm(1, 2), nn.Flatten(), nn.Linear(8, 1)), torch.randn(1_000, 1, 4, 4)),
])
def test_empty_batches_take_a_noise_only_step(module, x):
    """q = 0.002: most batches are empty. A forward on an empty batch must not break the next step."""
    private = make_private(module, torch.optim.SGD(module.parameters(), lr=0.01), x, epsilon=50.0, steps=40,
                           batch_size=2, accountant="rdp", secret_seed=3)
    sizes = []
    for xb, _ in private.sampler:
        sizes.append(len(xb))
        before = [p.detach().clone() for p in module.parameters()]
        private.step(module(xb).flatten() ** 2)
        assert not all(torch.equal(a, b) for a, b in zip(before, module.parameters()))  # noise moved them
    assert 0 in sizes and max(sizes) > 0
    assert private.accountant.steps == 40
    private.close()


def test_bad_inputs_are_refused_before_any_work():
    x, y = data()
    net = nn.Linear(5, 2)
    other = nn.Linear(5, 2)
    opt = torch.optim.SGD(list(net.parameters()) + list(other.parameters()), lr=0.1)
    with pytest.raises(ConfigError, match="not in the module"):
        make_private(net, opt, x, y, epsilon=1.0, steps=5, batch_size=8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(DataError, match="labels"):
        make_private(net, opt, x, y[:-1], epsilon=1.0, steps=5, batch_size=8)
    with pytest.raises(DataError, match="non-empty"):
        make_private(net, opt, x[:0], epsilon=1.0, steps=5, batch_size=8)
    with pytest.raises(PrivacyError, match="epsilon"):
        make_private(net, opt, x, y, epsilon=0.0, steps=5, batch_size=8)
    with pytest.raises(ConfigError, match="exceeds"):
        make_private(net, opt, x, y, epsilon=1.0, steps=5, batch_size=80)
    with pytest.raises(ConfigError, match="BatchNorm"):
        bn = nn.Sequential(nn.Linear(5, 2), nn.BatchNorm1d(2))
        make_private(bn, torch.optim.SGD(bn.parameters(), lr=0.1), x, y, epsilon=1.0, steps=5, batch_size=8)
    assert not hasattr(net, "_forward_hooks") or not net._forward_hooks  # nothing was attached


def test_a_reduced_loss_is_refused():
    x, y = data()
    net = nn.Linear(5, 2)
    private = make_private(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y, epsilon=2.0, steps=5,
                           batch_size=8, accountant="rdp", secret_seed=4)
    xb, yb = private.sampler.next_batch()
    with pytest.raises(ConfigError, match="one loss per example"):
        private.step(per_example_loss(net, xb, yb).mean())
    with pytest.raises(ConfigError, match="one loss per example"):
        private.step(per_example_loss(net, xb[:1], yb[:1]))
    assert private.accountant.steps == 0
    private.close()


@pytest.mark.parametrize("clipping", ["ghost", "hooks"])
def test_a_refused_step_leaves_no_trace(clipping):
    """Opacus records every forward; a refused step must not leak that record into the next one
    (ghost would crash, hooks would silently mix the batches)."""
    torch.manual_seed(0)
    x, y = data()
    nets = [nn.Linear(5, 2), None]
    nets[1] = copy.deepcopy(nets[0])
    runs = [make_private(net, torch.optim.SGD(net.parameters(), lr=0.5), x, y, epsilon=2.0, steps=5,
                         batch_size=8, max_grad_norm=0.1, accountant="rdp", clipping=clipping, secret_seed=9)
            for net in nets]
    for i, (net, private) in enumerate(zip(nets, runs)):
        xb, yb = private.sampler.next_batch()
        if i == 0:
            with pytest.raises(ConfigError):
                private.step(per_example_loss(net, xb, yb).mean())
            assert all(p.grad is None for p in net.parameters())
        private.step(per_example_loss(net, xb, yb))
    for a, b in zip(*(net.parameters() for net in nets)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for private in runs:
        private.close()


def test_repr_shows_no_private_records():
    x = torch.full((20, 1), 123.456)
    net = nn.Linear(1, 1)
    private = make_private(net, torch.optim.SGD(net.parameters(), lr=0.1), x, x[:, 0], epsilon=2.0, steps=3,
                           batch_size=4, accountant="rdp", secret_seed=5)
    assert "123.4" not in repr(private) and "sample_rate=0.2" in repr(private.sampler)
    private.close()
