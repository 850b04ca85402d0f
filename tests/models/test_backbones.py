"""Backbones by name: a new variant is added by registering it, and unknown names fail loudly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trustgen.errors import ConfigError
from trustgen.models import build_model, register_backbone
from trustgen.models.backbones import UnknownBackboneError, known_backbones
from trustgen.models.nets import DataSpec

TAB = DataSpec("tabular", 3, 2, (("numeric", 0, 1), ("categorical", 1, 2)))
IMG = DataSpec("image", 64, 0, (), (1, 8, 8))


class ScaledDecoder(nn.Module):
    """A decoder variant defined outside the families (as a Bayesian one would be)."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(inp, out)

    def forward(self, v):
        return 2.0 * self.lin(v)


@register_backbone("vae.decoder", "test-scaled", kinds=("tabular",))
def _scaled(spec, config, *, inp, out):
    return ScaledDecoder(inp, out)


def test_a_registered_backbone_is_used_without_editing_the_family():
    m = build_model("vae", TAB, {"decoder_net": "test-scaled", "hidden": 8})
    assert isinstance(m.decoder, ScaledDecoder)
    x = torch.zeros(4, 3)
    x[:, 1] = 1
    assert m.loss(x, torch.tensor([0, 1, 0, 1])).shape == (4,)
    assert m.config_dict()["decoder_net"] == "test-scaled"  # saved with the run, rebuilt on load


def test_unknown_and_unfit_backbones_fail_loudly():
    with pytest.raises(UnknownBackboneError, match=r"unknown vae.decoder backbone 'nope' \(known: .*mlp"):
        build_model("vae", TAB, {"decoder_net": "nope"})
    with pytest.raises(ConfigError, match="does not work on image data"):
        build_model("diffusion", IMG, {"denoiser_net": "mlp"})
    assert issubclass(UnknownBackboneError, KeyError)
    with pytest.raises(ConfigError, match="already registered"):
        register_backbone("vae.decoder", "mlp")(lambda *a, **k: None)
    assert set(known_backbones("diffusion.denoiser")) == {"mlp", "unet"}


def test_models_declare_what_they_cannot_do_under_dp():
    gan = build_model("gan", TAB, {"hidden": 8})
    assert gan.config.r1_gamma > 0 and gan.private_training_issues()
    private = build_model("gan", TAB, {"hidden": 8}, private=True)
    assert private.config.r1_gamma == 0 and private.private_training_issues() == []
    assert build_model("gan", TAB, {"hidden": 8, "r1_gamma": 0.5}, private=True).config.r1_gamma == 0.5
    assert build_model("vae", TAB).private_training_issues() == []


@register_backbone("vae.encoder", "test-batchnorm", kinds=("tabular",))
def _batchnorm_encoder(spec, config, *, out):
    from trustgen.models.nets import ConditionalMLP

    return ConditionalMLP(nn.Linear(spec.dim + spec.n_classes, 16), nn.BatchNorm1d(16, affine=False,
                          track_running_stats=False), nn.Linear(16, out))


def test_a_registered_backbone_that_mixes_examples_is_refused_under_dp():
    """BatchNorm mixes the examples of a batch, so per-example clipping would not bound one
    record's influence: DP planning must refuse it, whoever registered the backbone."""
    from trustgen.privacy.config import PrivacyConfig
    from trustgen.privacy.plan import plan_privacy

    m = build_model("vae", TAB, {"encoder_net": "test-batchnorm", "hidden": 8}, private=True)
    with pytest.raises(ConfigError, match="BatchNorm"):
        plan_privacy(PrivacyConfig(1.0), n=100, batch_size=10, steps=10, model=m)
    plan_privacy(PrivacyConfig(1.0), n=100, batch_size=10, steps=10, model=build_model("vae", TAB, private=True))


def test_model_options_of_the_wrong_type_are_refused_before_building():
    with pytest.raises(ConfigError, match="'hidden' must be of type int, got 'abc'"):
        build_model("vae", TAB, {"hidden": "abc"})
    with pytest.raises(ConfigError, match="must be of type int, got True"):
        build_model("vae", TAB, {"latent_dim": True})
    assert build_model("vae", TAB, {"beta": 1, "hidden": 8}).config.beta == 1  # an int is a fine float
