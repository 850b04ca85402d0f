"""The label head as a Pyro program (ELBO oracle, SVI with module-local parameters) and the
last-layer Laplace baseline."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from trustgen.errors import ConfigError
from trustgen.models import DataSpec, build_model
from trustgen.models.bayes import bayesian_layers
from trustgen.uncertainty.laplace import LastLayerLaplace
from trustgen.uncertainty.pyro_svi import _forward, fit_label_head, head_model_and_guide

SPEC = DataSpec("tabular", 4, 2, tuple(("numeric", i, 1) for i in range(4)))
N = 100


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] + 0.3 * torch.randn(n, generator=g) > 0).long()


def head_model(head="bayes-mlp", seed=0):
    torch.manual_seed(seed)
    m = build_model("vae", SPEC, {"label_head": head})
    for layer in bayesian_layers(m):
        with torch.no_grad():
            layer.weight_rho.fill_(-1.0)
    return m


def test_pyro_mean_field_elbo_over_n_is_the_trainers_objective():
    import pyro
    from pyro.infer import TraceMeanField_ELBO

    m = head_model()
    x, y = data(16)
    model, guide = head_model_and_guide(m.label_head, N)
    with pyro.poutine.seed(rng_seed=3):
        trace = pyro.poutine.trace(guide).get_trace(x, y)
    w = {k: v["value"] for k, v in trace.nodes.items() if v["type"] == "sample"}
    assert w, "the guide samples the mean-field weights"
    with pyro.poutine.seed(rng_seed=3):  # the same draw inside the ELBO
        pyro_loss = TraceMeanField_ELBO().differentiable_loss(model, guide, x, y)
    ours = F.cross_entropy(_forward(m.label_head, x, w), y) + m.prior_penalty() / N
    assert pyro_loss.item() / N == pytest.approx(ours.item(), rel=1e-5)


def test_svi_fits_keep_parameters_in_their_own_module():
    """Two fits in one process: the second leaves the first model untouched, and refitting a
    copy from the same start with the same seed gives the same weights (no global store)."""
    x, y = data()
    a, b = head_model(seed=0), head_model(seed=1)
    a_start = copy.deepcopy(a)
    losses = fit_label_head(a, x, y, steps=60, seed=0)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    after_a = {k: v.clone() for k, v in a.state_dict().items()}
    fit_label_head(b, x, y, steps=60, seed=0)
    for k, v in a.state_dict().items():
        assert torch.equal(v, after_a[k]), k
    fit_label_head(a_start, x, y, steps=60, seed=0)
    for k, v in a_start.state_dict().items():
        torch.testing.assert_close(v, after_a[k], msg=k)
    enc_before = a_start.encoder.state_dict()
    assert all(torch.equal(enc_before[k], v) for k, v in head_model(seed=0).encoder.state_dict().items())


def test_svi_refuses_a_model_without_a_bayesian_head():
    with pytest.raises(ConfigError, match="label_head=bayes-mlp"):
        fit_label_head(head_model("mlp"), *data())


def _fit_map(m, x, y, steps=300):
    opt = torch.optim.Adam(m.label_head.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(m.label_logits(x), y).backward()
        opt.step()


def test_laplace_keeps_the_map_decision_and_is_less_confident_far_from_the_data():
    m = head_model("mlp")
    x, y = data(200)
    _fit_map(m, x, y)
    la = LastLayerLaplace(prior_precision=1.0, draws=256).fit(m, x, y)
    with torch.no_grad():
        p_map_near = torch.softmax(m.label_logits(x), 1).numpy()
    p_la_near = la.predict_proba(x)
    assert (p_la_near.argmax(1) == p_map_near.argmax(1)).mean() > 0.95
    far = x * 20.0
    with torch.no_grad():
        conf_map = torch.softmax(m.label_logits(far), 1).max(1).values.numpy()
    conf_la = la.predict_proba(far).max(1)
    assert conf_la.mean() < conf_map.mean() - 0.01
    np.testing.assert_allclose(la.predict_proba(x).sum(1), 1.0, rtol=1e-9)


def test_laplace_refuses_a_bayesian_head_and_an_unfitted_predict():
    with pytest.raises(ConfigError, match="label_head=mlp"):
        LastLayerLaplace().fit(head_model("bayes-mlp"), *data())
    with pytest.raises(ConfigError, match="not fitted"):
        LastLayerLaplace().predict_proba(np.zeros((2, 4)))
