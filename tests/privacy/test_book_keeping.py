"""Book-keeping clipping: oracles against a slow per-example loop, on every path it can take.

The family-level oracles (every family, tables and images, K rows per example) are in
test_dp_sgd.py; here each layer rule is driven down each of its branches (ghost norm,
per-example gradients, chunked, recomputed sum) on hand-made networks, plus the refusals.
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from trustgen.errors import ConfigError
from trustgen.privacy import book_keeping
from trustgen.privacy.dp_sgd import PrivateGradients, choose_mode
from trustgen.privacy.secure_random import SecureRandom, key_from_seed

B, C = 5, 0.3  # C small enough that most examples are clipped


class Net(nn.Module):
    """Conv layers of every kind the rules tell apart, GroupNorm, a Linear on a sequence axis, a
    layer called twice, a layer that does not reach the loss; ``rows`` rows per example."""

    def __init__(self, rows: int = 1):
        super().__init__()
        self.rows = rows
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)                        # stride 1, small: per-example
        self.n1 = nn.GroupNorm(2, 4)
        self.c2 = nn.Conv2d(4, 6, 4, stride=2, padding=1, bias=False)  # strided: ghost norm
        self.c3 = nn.Conv2d(6, 6, 3, padding=2, dilation=2)            # dilated
        self.c4 = nn.Conv2d(6, 6, 3, stride=2, padding=1)              # called twice: ghost over both calls
        self.c5 = nn.Conv2d(6, 6, 3, padding=1)                        # called twice: per-example, 6 -> 8 channels
        self.c6 = nn.Conv2d(6, 1, 3, padding=2, dilation=2)            # one output channel: depthwise
        self.c7 = nn.Conv2d(6, 8, 3, padding=1)                        # 8 output channels: as they are
        self.c8 = nn.Conv2d(6, 6, 1)                                    # 1x1, called twice: the linear rule
        self.seq = nn.Linear(6, 3)                                     # positions as a sequence
        self.twice = nn.Linear(3, 3)
        self.unused = nn.Linear(3, 1)

    def forward(self, x):
        h = torch.tanh(self.n1(self.c1(x)))
        h = torch.tanh(self.c3(torch.tanh(self.c2(h))))               # [N, 6, 4, 4]
        h = h + torch.tanh(self.c5(h)) * self.c5(torch.sin(h))
        h = h + torch.tanh(self.c6(h)) + self.c7(h)[:, 2:]
        h = h + torch.tanh(self.c8(h)) * self.c8(torch.cos(h))
        h = h + nn.functional.interpolate(self.c4(h) * self.c4(torch.cos(h)), scale_factor=2)
        s = self.seq(h.flatten(2).transpose(1, 2))                    # [N, 16, 3]
        s = self.twice(torch.tanh(self.twice(s)))
        _ = self.unused(s)                                             # computed, never used
        return s.square().mean((1, 2)).reshape(-1, self.rows).sum(1)  # one loss per example


def slow_clipped_sum(net, x):
    params = [p for p in net.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    r = net.rows
    for i in range(len(x) // r):
        g = torch.autograd.grad(net(x[i * r:(i + 1) * r]).sum(), params, allow_unused=True)
        g = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, params)]
        norm = torch.sqrt(sum(gi.square().sum() for gi in g)).item()
        for t, gi in zip(total, g):
            t += gi * min(1.0, C / (norm + 1e-6))
    return total


def run_bookkeeping(net, x, **kw):
    dp = PrivateGradients(net, max_grad_norm=C, noise_multiplier=0.0, expected_batch_size=1.0, mode="bookkeeping",
                          rows_per_example=net.rows, noise=SecureRandom(key_from_seed(0)), **kw)
    norms = dp.backward(net(x), torch.optim.SGD(net.parameters(), lr=0.0))
    dp.close()
    # No graph may ride on a gradient (it would keep the step's graph alive, e.g. through
    # statistics taken from autograd's own record).
    assert not any(p.grad.requires_grad for p in net.parameters())
    return norms, [p.grad for p in net.parameters()]


@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("keep_limit", [book_keeping.KEEP_PER_EXAMPLE_LIMIT, 50])  # 50: chunks, recomputed sums
def test_every_layer_rule_matches_the_slow_loop(rows, keep_limit, monkeypatch):
    monkeypatch.setattr(book_keeping, "KEEP_PER_EXAMPLE_LIMIT", keep_limit)
    monkeypatch.setattr(book_keeping, "GHOST_CHUNK_NUMBERS", keep_limit)  # ghost norms in chunks too
    monkeypatch.setattr(book_keeping, "PER_EXAMPLE_CHUNK", 2)  # kept per-example gradients in several chunks
    torch.manual_seed(0)
    net = Net(rows)
    x = torch.randn(B * rows, 2, 8, 8)
    expected = slow_clipped_sum(net, x)
    norms, got = run_bookkeeping(net, x)
    assert (norms > C).sum() >= 3, "the test must exercise clipping"
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-6)


def test_both_conv_branches_are_taken(monkeypatch):
    """The oracle above covers the ghost norm, the per-example gradients and the 1x1 convolution
    as a linear layer only if all of them run."""
    seen, linear = [], []
    real, real_linear = book_keeping._conv_ghost_norms, book_keeping._linear
    monkeypatch.setattr(book_keeping, "_conv_ghost_norms", lambda *a: seen.append(a[0]) or real(*a))
    # Linear layers reach the original _linear through _LAYER_RULES: the spy sees the 1x1 route only.
    monkeypatch.setattr(book_keeping, "_linear", lambda *a: linear.append(a[0]) or real_linear(*a))
    torch.manual_seed(0)
    net = Net()
    run_bookkeeping(net, torch.randn(B, 2, 8, 8))
    assert net.c2 in seen and net.c4 in seen and not {net.c1, net.c5, net.c6, net.c7, net.c8} & set(seen)
    assert [layer for layer in linear if isinstance(layer, nn.Conv2d)] == [net.c8]


@pytest.mark.parametrize("out_channels", [1, 3, 8, 9])  # depthwise, padded to 8, as they are
@pytest.mark.parametrize("in_channels", [3, 11])  # as they are, padded to 16
@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 2)])
def test_per_example_conv_gradients_match_a_loop(out_channels, in_channels, stride, padding, dilation):
    torch.manual_seed(2)
    layer = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(4, in_channels, 9, 9)
    g = torch.randn_like(layer(x))
    got = book_keeping._per_example_conv(layer, x, g)
    for i in range(len(x)):
        (expected,) = torch.autograd.grad((layer(x[i:i + 1]) * g[i:i + 1]).sum(), [layer.weight])
        torch.testing.assert_close(got[i], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("t", [1, 2, 40])  # one row, the ghost norm, per-example gradients
def test_linear_on_a_sequence_axis(t):
    torch.manual_seed(1)
    net = nn.Linear(4, 3)
    x = torch.randn(B, t, 4)
    loss = lambda xb: net(xb).square().sum((1, 2))  # noqa: E731
    params = list(net.parameters())
    expected = [torch.zeros_like(p) for p in params]
    for i in range(B):
        g = torch.autograd.grad(loss(x[i:i + 1]).sum(), params)
        n = torch.sqrt(sum(gi.square().sum() for gi in g)).item()
        for e, gi in zip(expected, g):
            e += gi * min(1.0, C / (n + 1e-6))
    dp = PrivateGradients(net, max_grad_norm=C, noise_multiplier=0.0, expected_batch_size=1.0, mode="bookkeeping",
                          noise=SecureRandom(key_from_seed(0)))
    dp.backward(loss(x), torch.optim.SGD(params, lr=0.0))
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e, rtol=1e-4, atol=1e-6)


def test_per_group_clipping_is_the_same_as_in_hooks_mode():
    torch.manual_seed(2)
    net = Net()
    net.unused.requires_grad_(False)  # Opacus hooks mode has no per-example gradient for it
    x = torch.randn(B, 2, 8, 8)
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [(params[:4], 0.3), (params[4:], 0.7)]
    results = []
    for mode in ("hooks", "bookkeeping"):
        for p in params:
            p.grad = None
        dp = PrivateGradients(net, max_grad_norm=C, noise_multiplier=0.0, expected_batch_size=1.0, mode=mode,
                              noise=SecureRandom(key_from_seed(0)), clip_groups=groups)
        dp.backward(net(x), torch.optim.SGD(params, lr=0.0))
        dp.close()
        results.append([p.grad.clone() for p in params])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layer, name", [(nn.LayerNorm(3), "LayerNorm"), (nn.Embedding(4, 3), "Embedding"),
                                          (nn.Conv2d(2, 2, 3, padding="same"), "padding"),
                                          (nn.Conv2d(2, 2, 3, groups=2), "groups 2")])
def test_unsupported_layers_are_refused_by_name(layer, name):
    net = nn.Sequential(layer, nn.Flatten(), nn.LazyLinear(1)) if isinstance(layer, nn.Conv2d) else \
        nn.Sequential(layer, nn.Linear(3, 1))
    with pytest.raises(ConfigError, match=name):
        PrivateGradients(net, max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=1.0, mode="bookkeeping",
                         noise=SecureRandom(key_from_seed(0)))


def test_trustgen_models_get_bookkeeping_and_bayesian_layers_do_not():
    from trustgen.models import build_model
    from trustgen.models.bayes import MeanFieldLinear
    from trustgen.models.nets import DataSpec

    spec = DataSpec("tabular", 2, 0, (("numeric", 0, 1), ("numeric", 1, 1)))
    assert choose_mode(build_model("vae", spec, {"hidden": 8})) == "bookkeeping"
    # Their sampled weights are not a layer's own parameters: hooks mode has their grad sampler.
    assert "MeanFieldLinear" in book_keeping.unsupported_layers(nn.Sequential(MeanFieldLinear(3, 2)))[0]


def test_an_output_changed_in_place_is_refused_not_silently_misread():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 1))
    dp = PrivateGradients(net, max_grad_norm=1.0, noise_multiplier=0.0, expected_batch_size=1.0, mode="bookkeeping",
                          noise=SecureRandom(key_from_seed(0)))
    with pytest.raises(ConfigError, match="modified in place"):
        dp.backward(net(torch.randn(B, 3)).squeeze(1), torch.optim.SGD(net.parameters(), lr=0.0))


def test_forwards_outside_a_step_are_not_recorded():
    """The GAN generator's step and a discarded forward must leave no record behind: a record
    left over would join the next step's sum."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = torch.randn(B, 3)
    dp = PrivateGradients(net, max_grad_norm=C, noise_multiplier=0.0, expected_batch_size=1.0, mode="bookkeeping",
                          noise=SecureRandom(key_from_seed(0)))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    dp.backward(net(x).squeeze(1), opt)
    clean = [p.grad.clone() for p in net.parameters()]
    with dp.hooks_disabled():
        net(torch.randn(7, 3)).sum().backward()
    assert not dp.book.records  # kept, it would hold the graph of a forward that is not a step
    dp.discard(net(torch.randn(2, 3)).squeeze(1))
    assert not dp.book.records
    dp.backward(net(x).squeeze(1), opt)
    for p, c in zip(net.parameters(), clean):
        torch.testing.assert_close(p.grad, c)


def test_a_layer_batch_that_is_not_the_examples_is_refused():
    net = nn.Linear(3, 1)
    dp = PrivateGradients(net, max_grad_norm=1.0, noise_multiplier=0.0, expected_batch_size=1.0, mode="bookkeeping",
                          noise=SecureRandom(key_from_seed(0)))
    out = net(torch.randn(6, 3)).reshape(3, 2).sum(1)  # 3 losses from 6 rows, rows_per_example 1
    with pytest.raises(ConfigError, match="batch of 6 rows"):
        dp.backward(out, torch.optim.SGD(net.parameters(), lr=0.0))


def test_noise_drawn_ahead_is_the_noise_of_its_step():
    """Prefetching changes no number: the noise of steps 0-3 is the same with and without it,
    and after the source or step is replaced (a resume) the step's own noise is used."""
    net = nn.Linear(3, 2)
    kw = dict(max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=1.0, mode="bookkeeping")
    ahead = PrivateGradients(net, noise=SecureRandom(key_from_seed(1)), prefetch_noise=True, **kw)
    plain = PrivateGradients(nn.Linear(3, 2), noise=SecureRandom(key_from_seed(1)), prefetch_noise=False, **kw)
    for step in range(4):
        for a, b in zip(ahead.noise_of_step(step), plain.noise_of_step(step)):
            assert torch.equal(a, b)
    ahead.noise = SecureRandom(key_from_seed(2))  # what the trainer does on resume
    fresh = PrivateGradients(nn.Linear(3, 2), noise=SecureRandom(key_from_seed(2)), prefetch_noise=False, **kw)
    for step in (4, 9):
        for a, b in zip(ahead.noise_of_step(step), fresh.noise_of_step(step)):
            assert torch.equal(a, b)
    ahead.close()
    assert ahead._pool is None


def test_noise_is_drawn_ahead_by_default_only_where_a_core_is_free(monkeypatch):
    """A noise thread beside torch's threads on every core slowed the image VAE's DP step from
    77 to 122 ms (2 cores): by default it is used only where torch leaves a core free."""
    from trustgen import runtime
    from trustgen.privacy import dp_sgd

    kw = dict(max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=1.0, mode="bookkeeping",
              noise=SecureRandom(key_from_seed(1)))
    for free in (True, False):
        monkeypatch.setattr(dp_sgd, "spare_core", lambda: free)
        assert PrivateGradients(nn.Linear(3, 2), **kw).prefetch_noise is free
        assert PrivateGradients(nn.Linear(3, 2), prefetch_noise=not free, **kw).prefetch_noise is not free
    # Off the CPU (a GPU; here the meta device) torch's CPU threads wait for the device: always ahead.
    assert PrivateGradients(nn.Linear(3, 2, device="meta"), **kw).prefetch_noise
    threads = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        torch.set_num_threads(cores)
        assert not runtime.spare_core()
        torch.set_num_threads(1)
        assert runtime.spare_core() is (cores > 1)
    finally:
        torch.set_num_threads(threads)


def test_tied_weights_are_refused_and_a_reused_layer_is_not():
    """Two layers sharing a weight have one per-example gradient (the sum of both parts): adding
    the parts' squared norms would under-clip it. One layer called twice is fine (Net above)."""
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    assert any("tied weights" in issue for issue in book_keeping.unsupported_layers(nn.Sequential(a, b)))
    same = nn.Linear(3, 3)
    assert book_keeping.unsupported_layers(nn.Sequential(same, nn.Tanh(), same)) == []


def test_a_loss_that_reaches_no_layer_gives_a_zero_clipped_sum():
    net = nn.Linear(3, 1)
    dp = PrivateGradients(net, max_grad_norm=1.0, noise_multiplier=0.0, expected_batch_size=1.0, mode="bookkeeping",
                          noise=SecureRandom(key_from_seed(0)))
    norms = dp.backward(torch.ones(4), torch.optim.SGD(net.parameters(), lr=0.0))
    assert torch.equal(norms, torch.zeros(4)) and all(torch.equal(p.grad, torch.zeros_like(p)) for p in net.parameters())


def test_a_conv_called_on_two_image_sizes():
    """Calls of different shapes cannot share one pixel Gram matrix: the per-example path sums them."""
    torch.manual_seed(4)

    class TwoSizes(nn.Module):
        rows = 1

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)

        def forward(self, x):
            small = nn.functional.avg_pool2d(x, 2)
            return self.conv(x).square().mean((1, 2, 3)) + self.conv(small).tanh().mean((1, 2, 3))

    net = TwoSizes()
    x = torch.randn(B, 2, 8, 8)
    expected = slow_clipped_sum(net, x)
    norms, got = run_bookkeeping(net, x)
    assert (norms > C).sum() >= 3
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-6)


# stride, padding, dilation: "same" (the centre offset reaches every output: the sum starts from
# it), strided, wider than "same" (no offset reaches every output: it starts from zeros), dilated.
@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 2, 2), (2, 0, 1)])
@pytest.mark.parametrize("rows", [1, 2])
def test_conv_ghost_norms_match_the_norms_of_per_example_gradients(stride, padding, dilation, rows):
    torch.manual_seed(3)
    layer = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation)
    b = 5
    x = torch.randn(b * rows, 3, 7, 7)
    g = torch.randn_like(layer(x))
    got = book_keeping._conv_ghost_norms(layer, [(x, g)], b, rows)
    per = book_keeping._per_example_conv(layer, x, g).reshape(b, rows, -1).sum(1)
    torch.testing.assert_close(got, per.square().sum(1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("saved", [True, False])  # autograd's saved statistics, or recomputed
def test_group_norm_per_example_gradients_match_a_loop(rows, saved):
    """The weight gradient from rstd * (sum g x - mean * sum g), on inputs whose group means sit
    far from zero (5 standard deviations: the subtraction must not lose the answer)."""
    torch.manual_seed(4)
    layer = nn.GroupNorm(3, 6)
    nn.init.normal_(layer.weight)
    b = 4
    x = (torch.randn(b * rows, 6, 5, 5) + 5.0).requires_grad_()
    out = layer(x)
    stats = book_keeping._saved_statistics(layer, out)
    assert len(stats) == 2 and stats[0].shape == (b * rows, 3), "autograd's GroupNorm statistics were not found"
    g = torch.randn_like(out)
    call = (x.detach(), g, *stats) if saved else (x.detach(), g)
    parts = book_keeping._group_norm(layer, [call, call], b, rows)  # one layer called twice
    for p in (layer.weight, layer.bias):
        expected = []
        for i in range(b):
            rs = slice(i * rows, (i + 1) * rows)
            (e,) = torch.autograd.grad((layer(x[rs].detach()) * g[rs]).sum(), [p])
            expected.append(2 * e)
        expected = torch.stack(expected)
        norm2, total = parts[p]
        torch.testing.assert_close(norm2, expected.square().sum(1), rtol=1e-4, atol=1e-5)
        coefs = torch.rand(b)
        torch.testing.assert_close(total(coefs), coefs @ expected, rtol=1e-4, atol=1e-5)


# kernel, stride, padding, dilation on a 7x9 image, each axis its own: the offsets are summed
# along both axes at once, along the width first, or along the height first (which one: the
# first shape _offset_sums is asked for).
@pytest.mark.parametrize("kernel, stride, padding, dilation, order", [
    ((3, 3), (2, 2), (0, 0), (1, 1), "both"),
    ((3, 2), (1, 2), (1, 0), (2, 1), "both"),
    ((3, 3), (1, 2), (0, 0), (1, 1), "width first"),
    ((3, 3), (2, 1), (0, 0), (1, 1), "height first"),
    ((2, 3), (2, 1), (0, 2), (1, 2), "height first"),
    ((3, 3), (1, 1), (2, 2), (1, 1), "width first"),  # wider than "same": no offset reaches every output
])
@pytest.mark.parametrize("rows", [1, 2])
def test_conv_ghost_norms_with_each_axis_its_own_shape(kernel, stride, padding, dilation, order, rows, monkeypatch):
    torch.manual_seed(5)
    layer = nn.Conv2d(3, 4, kernel, stride=stride, padding=padding, dilation=dilation)
    b = 5
    x = torch.randn(b * rows, 3, 7, 9)
    g = torch.randn_like(layer(x))
    shapes = []
    real = book_keeping._offset_sums
    monkeypatch.setattr(book_keeping, "_offset_sums", lambda a, parts, shape: shapes.append(shape) or real(a, parts, shape))
    got = book_keeping._conv_ghost_norms(layer, [(x, g)], b, rows)
    per = book_keeping._per_example_conv(layer, x, g).reshape(b, rows, -1).sum(1)
    torch.testing.assert_close(got, per.square().sum(1), rtol=1e-4, atol=1e-5)
    oh, ow = g.shape[2:]
    assert shapes[0][1:3] == {"both": (oh, ow), "width first": (7, ow), "height first": (oh, 9)}[order]
