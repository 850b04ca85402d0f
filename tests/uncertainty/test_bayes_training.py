"""Bayesian VAE layers in training: weight draws, the KL / n term, DP, and save / reload.

Oracles: the gradient of ``mean(loss) + KL / n`` by plain autograd; DP-SGD with no noise and
no clipping must give that same gradient (the KL added after the noise, unclipped).
"""

from __future__ import annotations

import copy

import pytest
import torch

from trustgen.models import DataSpec, build_model
from trustgen.models.bayes import MeanFieldLinear, bayesian_layers
from trustgen.privacy.dp_sgd import PrivateGradients, choose_mode
from trustgen.privacy.secure_random import SecureRandom, key_from_seed
from trustgen.run import Run
from trustgen.training.objectives import train_step

TABLE = DataSpec("tabular", 3, 2, (("numeric", 0, 1), ("numeric", 1, 1), ("numeric", 2, 1)))
IMAGE = DataSpec("image", 64, 3, (), (1, 8, 8))
N = 200  # the data set size the KL is divided by


def bayes_vae(spec=TABLE, seed=0, **extra):
    torch.manual_seed(seed)
    m = build_model("vae", spec, {"decoder_net": "bayes-mlp", "label_head": "bayes-mlp", "hidden": 16, **extra})
    for layer in bayesian_layers(m):
        with torch.no_grad():
            layer.weight_rho.fill_(-2.0)  # a posterior wide enough for rho's gradients to matter
            layer.bias_rho.fill_(-2.0)
    return m


def batch(spec=TABLE, b=10):
    g = torch.Generator().manual_seed(1)
    x = torch.rand((b, *((spec.dim,) if spec.kind == "tabular" else spec.shape)), generator=g) * 2 - 1
    return x, torch.randint(spec.n_classes, (b,), generator=g)


@pytest.mark.parametrize("spec", [TABLE, IMAGE], ids=["table", "image"])
def test_bayesian_backbones_build_on_tables_and_images(spec):
    m = bayes_vae(spec)
    assert m.bayesian and len(bayesian_layers(m.decoder)) == 1 and len(bayesian_layers(m.label_head)) == 1
    x, y = batch(spec)
    assert m.loss(x, y, generator=torch.Generator().manual_seed(0)).shape == (len(x),)
    m.eval()
    z = m.sample_noise(4, torch.Generator().manual_seed(0))
    out = m.generate(z, y[:4])
    assert out.shape == (4, *((spec.dim,) if spec.kind == "tabular" else spec.shape))


def test_training_draws_weights_from_the_generator_and_eval_uses_the_posterior_mean():
    m = bayes_vae()
    x, y = batch()
    m.train()
    a = m.loss(x, y, generator=torch.Generator().manual_seed(5))
    b = m.loss(x, y, generator=torch.Generator().manual_seed(5))
    c = m.loss(x, y, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    m.eval()
    for layer in bayesian_layers(m):
        assert torch.equal(layer.eps_weight, torch.zeros_like(layer.weight_mu))
    z = m.sample_noise(3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(m.generate(z, y[:3]), m.generate(z, y[:3]))


def _grads(m):
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def test_the_step_minimises_mean_loss_plus_kl_over_n():
    m = bayes_vae()
    oracle = copy.deepcopy(m)
    x, y = batch()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    logs = train_step(m, {"model": opt}, x, y, torch.Generator().manual_seed(3), None, len(x), None, N)
    oracle.train()
    loss = oracle.loss(x, y, generator=torch.Generator().manual_seed(3)).mean() + oracle.prior_penalty() / N
    loss.backward()
    want = _grads(oracle)
    got = _grads(m)
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], msg=name)
    assert logs["weight_kl"] == pytest.approx(oracle.prior_penalty().item(), rel=1e-5)
    with pytest.raises(Exception, match="number of training examples"):
        train_step(m, {"model": opt}, x, y, torch.Generator(), None, len(x), None, None)


def test_dp_sgd_without_noise_or_clipping_equals_the_non_private_step():
    """The KL's gradient joins the noised sum after it (never clipped): with sigma 0 and a
    clipping norm no example reaches, the DP step must be the non-private one exactly."""
    m = bayes_vae()
    plain = copy.deepcopy(m)
    x, y = batch()
    assert choose_mode(m) == "hooks"  # the grad sampler of the mean-field layer is exact in hooks mode
    dp = PrivateGradients(m, max_grad_norm=1e9, noise_multiplier=0.0, expected_batch_size=len(x), mode="hooks",
                          noise=SecureRandom(key_from_seed(0)))
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    train_step(m, {"model": opt}, x, y, torch.Generator().manual_seed(3), None, len(x), dp, N)
    popt = torch.optim.SGD(plain.parameters(), lr=0.0)
    train_step(plain, {"model": popt}, x, y, torch.Generator().manual_seed(3), None, len(x), None, N)
    want, got = _grads(plain), _grads(m)
    rho = [n for n in want if "rho" in n]
    assert rho and all(want[n].abs().max() > 0 for n in rho)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
    dp.close()


def test_dp_clips_the_data_term_but_not_the_kl():
    """With a tiny clipping norm the data part of every gradient nearly vanishes; what is left
    on the variational parameters is the KL's gradient / n, unscaled."""
    m = bayes_vae()
    x, y = batch()
    dp = PrivateGradients(m, max_grad_norm=1e-9, noise_multiplier=0.0, expected_batch_size=len(x), mode="hooks",
                          noise=SecureRandom(key_from_seed(0)))
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    train_step(m, {"model": opt}, x, y, torch.Generator().manual_seed(3), None, len(x), dp, N)
    kl_only = copy.deepcopy(m)
    for p in kl_only.parameters():
        p.grad = None
    (kl_only.prior_penalty() / N).backward()
    layer_names = [n for n, mod in m.named_modules() if isinstance(mod, MeanFieldLinear)]
    for name, p in m.named_parameters():
        want = dict(kl_only.named_parameters())[name].grad
        if any(name.startswith(ln + ".") for ln in layer_names):
            torch.testing.assert_close(p.grad, want, atol=1e-6, rtol=1e-4, msg=name)
        else:
            assert p.grad.abs().max() < 1e-6, name  # only clipped data gradients there
    dp.close()


def test_a_saved_run_reloads_the_variational_parameters_exactly(tmp_path):
    from trustgen.pipeline import train
    from trustgen.training import TrainConfig
    from trustgen.data.datasets import load_breast_cancer
    from trustgen.uncertainty import sample_uncertainty

    df, schema = load_breast_cancer()
    run = train(df.iloc[:120], "vae", TrainConfig(steps=20, batch_size=32, progress=False), schema=schema,
                model_options={"decoder_net": "bayes-mlp", "label_head": "bayes-mlp"}, out=tmp_path / "run")
    again = Run.load(tmp_path / "run")
    a, b = run.model.state_dict(), again.model.state_dict()
    assert set(a) == set(b) and any("rho" in k for k in a)
    for k in a:
        assert torch.equal(a[k].cpu(), b[k].cpu()), k
    z = run.model.sample_noise(20, torch.Generator().manual_seed(0)).cpu()
    y = torch.zeros(20, dtype=torch.long)
    ua = sample_uncertainty(run.model, z, y, draws=4, seed=1)
    ub = sample_uncertainty(again.model, z, y, draws=4, seed=1)
    assert (ua.score == ub.score).all() and (ua.label_disagreement == ub.label_disagreement).all()


def test_under_dp_the_label_head_is_linear_and_clipped_apart_by_default():
    from torch import nn

    private = build_model("vae", TABLE, {"label_head": "bayes-mlp"}, private=True)
    plain = build_model("vae", TABLE, {"label_head": "bayes-mlp"})
    assert len([m for m in private.label_head.modules() if isinstance(m, (nn.Linear, MeanFieldLinear))]) == 1
    assert len(bayesian_layers(plain.label_head)) == 1 and len(plain.label_head) == 3
    groups = private.clipping_groups()
    assert [share for _, share in groups] == [0.5, 0.5]
    assert {id(p) for p in groups[1][0]} == {id(p) for p in private.label_head.parameters()}
    assert build_model("vae", TABLE).clipping_groups() is None
    with pytest.raises(Exception, match="labelled data"):
        build_model("vae", DataSpec("tabular", 1, 0, (("numeric", 0, 1),)), {"label_head": "mlp"})


def test_forcing_ghost_clipping_on_a_model_with_clipping_groups_is_refused_at_planning():
    from trustgen.privacy.config import PrivacyConfig
    from trustgen.privacy.plan import plan_privacy

    m = build_model("vae", TABLE, {"label_head": "mlp"}, private=True)
    with pytest.raises(Exception, match="per-group clipping"):
        plan_privacy(PrivacyConfig(epsilon=1.0, clipping="ghost"), n=200, batch_size=20, steps=10, model=m,
                     n_classes=0)
    # auto: book-keeping, which clips the label head apart like hooks mode does
    assert plan_privacy(PrivacyConfig(epsilon=1.0), n=200, batch_size=20, steps=10, model=m,
                        n_classes=0).mode == "bookkeeping"
