"""A table VAE's numbers start with a narrow predicted spread (log-scale LOG_SCALE_START), not
one as wide as their whole encoded range: a DP run of ~1,000 Adam steps cannot move a
log-scale much further than ~1 (benchmarks/README.md, breast_cancer at epsilon 1)."""

from __future__ import annotations

import pytest
import torch

from trustgen.models import build_model
from trustgen.models.nets import DataSpec
from trustgen.models.vae import LOG_SCALE_START

TAB = DataSpec("tabular", 6, 2, (("numeric", 0, 1), ("categorical", 1, 3), ("numeric", 4, 1), ("numeric", 5, 1)))
N_NUMERIC = 3


def decoder_outputs(m, n=512):
    z = torch.randn(n, m.config.latent_dim, generator=torch.Generator().manual_seed(0))
    y1h = torch.nn.functional.one_hot(torch.arange(n) % TAB.n_classes, TAB.n_classes).float()
    with torch.no_grad():
        return m.decode(z, y1h)


@pytest.mark.parametrize("decoder", ["mlp", "bayes-mlp"])
def test_the_log_scales_start_near_log_scale_start_and_the_means_near_zero(decoder):
    torch.manual_seed(0)
    m = build_model("vae", TAB, {"hidden": 16, "decoder_net": decoder}).eval()
    out = decoder_outputs(m)
    assert out.shape[1] == TAB.dim + N_NUMERIC
    # The untrained layers add values of size ~1/sqrt(16) around the bias: 0.5 separates the two.
    log_scales, rest = out[:, TAB.dim:], out[:, :TAB.dim]
    assert (log_scales.mean(0) - LOG_SCALE_START).abs().max() < 0.5, log_scales.mean(0)
    assert rest.mean(0).abs().max() < 0.5, "the shift reached the means or the category logits"


def test_models_without_numbers_are_left_as_built():
    cats = DataSpec("tabular", 3, 2, (("categorical", 0, 3),))
    torch.manual_seed(0)
    m = build_model("vae", cats, {"hidden": 16}).eval()
    z = torch.randn(64, m.config.latent_dim, generator=torch.Generator().manual_seed(0))
    y1h = torch.nn.functional.one_hot(torch.arange(64) % 2, 2).float()
    with torch.no_grad():
        out = m.decode(z, y1h)
    assert out.shape[1] == cats.dim and out.mean(0).abs().max() < 0.5
