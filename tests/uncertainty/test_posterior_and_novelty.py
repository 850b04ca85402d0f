"""Per-sample posterior spread and input novelty, against what they must be by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trustgen.data.encoders import make_encoder
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import ConfigError
from trustgen.models import DataSpec, build_model
from trustgen.models.bayes import bayesian_layers
from trustgen.pipeline import train
from trustgen.training import TrainConfig
from trustgen.uncertainty import sample_uncertainty, score_inputs
from trustgen.uncertainty.posterior import posterior_draws

TABLE = DataSpec("tabular", 3, 2, (("numeric", 0, 1), ("numeric", 1, 1), ("numeric", 2, 1)))


def model_with_rho(rho: float):
    torch.manual_seed(0)
    m = build_model("vae", TABLE, {"decoder_net": "bayes-mlp", "label_head": "bayes-mlp", "hidden": 16})
    for layer in bayesian_layers(m):
        with torch.no_grad():
            layer.weight_rho.fill_(rho)
            layer.bias_rho.fill_(rho)
    return m.eval()


def noise(n=30):
    return torch.randn(n, 8, generator=torch.Generator().manual_seed(0)), np.arange(n) % 2


def test_spread_grows_with_the_posterior_width_and_vanishes_with_it():
    z, y = noise()
    scores = [sample_uncertainty(model_with_rho(r), z, y, draws=8, seed=0).score.mean() for r in (-30.0, -4.0, -1.0)]
    assert scores[0] < 1e-9  # softplus(-30) ~ 1e-13: no posterior width, no spread
    assert 0 < scores[1] < scores[2]


def test_draws_are_seeded_shared_by_every_batch_and_leave_the_posterior_mean():
    m = model_with_rho(-2.0)
    z, y = noise(25)
    whole = sample_uncertainty(m, z, y, draws=6, seed=3)
    split = sample_uncertainty(m, z, y, draws=6, seed=3, batch_size=7)
    np.testing.assert_allclose(whole.map, split.map, rtol=1e-4, atol=1e-6)  # float error of another batch size
    other = sample_uncertainty(m, z, y, draws=6, seed=4)
    assert not np.allclose(whole.score, other.score)
    assert whole.map.shape == (25, 3) and whole.label_disagreement.shape == (25,)
    assert ((whole.label_disagreement >= 0) & (whole.label_disagreement <= 1)).all()
    for layer in bayesian_layers(m):
        assert not layer.eps_weight.any()  # back at the posterior mean


def test_the_posterior_mean_is_restored_even_when_a_draw_fails():
    m = model_with_rho(-2.0)
    with pytest.raises(RuntimeError):
        with posterior_draws(m, 3, 0) as steps:
            for _ in steps:
                raise RuntimeError("boom")
    assert all(not layer.eps_weight.any() for layer in bayesian_layers(m))


@pytest.mark.parametrize("draws", [1, 0, 2000, 2.5, True])
def test_bad_draw_counts_are_refused(draws):
    z, y = noise(4)
    with pytest.raises(ConfigError, match="posterior draws"):
        sample_uncertainty(model_with_rho(-2.0), z, y, draws=draws)


def test_a_deterministic_or_non_vae_model_is_refused_with_the_fix():
    z, y = noise(4)
    plain = build_model("vae", TABLE).eval()
    with pytest.raises(ConfigError, match="decoder_net=bayes-mlp"):
        sample_uncertainty(plain, z, y)
    gan = build_model("gan", TABLE).eval()
    with pytest.raises(ConfigError, match="built for the VAE"):
        sample_uncertainty(gan, z, y)


@pytest.fixture(scope="module")
def two_cluster_run():
    """Two well-separated Gaussian clusters on [-10, 10]^2, labelled by cluster (seed 0)."""
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 2, 600)
    xy = rng.normal(0, 0.7, (600, 2)) + np.where(lab[:, None] == 0, -3.0, 3.0)
    df = pd.DataFrame({"a": xy[:, 0], "b": xy[:, 1], "c": np.array(["left", "right"])[lab]})
    schema = TabularSchema([NumericColumn("a", -10, 10), NumericColumn("b", -10, 10),
                            CategoricalColumn("c", ("left", "right"))], label="c")
    run = train(df, "vae", TrainConfig(steps=800, batch_size=64, progress=False, seed=0), schema=schema,
                model_options={"decoder_net": "bayes-mlp", "label_head": "bayes-mlp"})
    return run, schema, rng


def test_novelty_separates_far_inputs_from_the_training_clusters(two_cluster_run):
    """Seeded (0): inputs from the clusters against inputs at (8, -8), far from both. The AUC
    bound leaves a wide margin (measured 1.0); a failure means the score lost the likelihood."""
    from sklearn.metrics import roc_auc_score

    run, schema, rng = two_cluster_run
    enc = make_encoder(schema)
    lab = rng.integers(0, 2, 100)
    near = rng.normal(0, 0.7, (100, 2)) + np.where(lab[:, None] == 0, -3.0, 3.0)
    far = rng.normal(0, 0.7, (100, 2)) + np.array([8.0, -8.0])
    frames = [pd.DataFrame({"a": v[:, 0], "b": v[:, 1], "c": "left"}) for v in (near, far)]
    s_near, s_far = (score_inputs(run.model, enc.transform(f)[0], label_prior=run.label_prior, draws=4,
                                  reference=200) for f in frames)
    labels = np.r_[np.zeros(100), np.ones(100)]
    assert roc_auc_score(labels, np.r_[s_near.novelty, s_far.novelty]) > 0.95
    assert (s_far.p_value < 0.05).mean() > 0.9
    assert ((s_near.p_value > 0) & (s_near.p_value <= 1)).all()
    # the label head reads the cluster: right-hand inputs are labelled "right"
    right = schema.classes.index("right")
    assert (s_near.label == right)[lab == 1].mean() > 0.9 and (s_near.label != right)[lab == 0].mean() > 0.9
    assert s_near.label_source == "head"
    assert set(s_near.columns()) == {"nll", "epistemic", "novelty", "p_value", "label", "label_confidence",
                                     "confident_but_novel"}


def test_scores_are_reproducible_and_refuse_bad_arguments(two_cluster_run):
    run, schema, _ = two_cluster_run
    x = np.zeros((5, 2), dtype=np.float32)
    a = score_inputs(run.model, x, draws=3, reference=20, seed=2)
    b = score_inputs(run.model, x, draws=3, reference=20, seed=2)
    np.testing.assert_array_equal(a.nll, b.nll)
    np.testing.assert_array_equal(a.p_value, b.p_value)
    with pytest.raises(ConfigError, match="reference"):
        score_inputs(run.model, x, reference=5)
    with pytest.raises(ConfigError, match="no inputs"):
        score_inputs(run.model, x[:0], reference=20)
    with pytest.raises(ConfigError, match="do not fit"):
        score_inputs(run.model, np.zeros((5, 3)), reference=20)


def test_draws_restore_the_train_mode_a_trainer_callback_relies_on():
    m = model_with_rho(-2.0).train()
    z, y = noise(4)
    sample_uncertainty(m, z, y, draws=2)
    assert m.training
    score_inputs(m, np.zeros((3, 3), dtype=np.float32), draws=2, reference=10)
    assert m.training


def test_a_bayesian_head_alone_is_not_a_posterior_over_samples():
    torch.manual_seed(0)
    m = build_model("vae", TABLE, {"label_head": "bayes-mlp"}).eval()
    z, y = noise(4)
    with pytest.raises(ConfigError, match="decoder_net=bayes-mlp"):
        sample_uncertainty(m, z, y)
    with pytest.raises(ConfigError, match="decoder_net=bayes-mlp"):
        score_inputs(m, np.zeros((3, 3), dtype=np.float32))


@pytest.mark.parametrize("prior", [[0.2, 0.3, 0.5], [1.2, -0.2], [0.5, 0.6], [float("nan"), 1.0]])
def test_a_label_prior_that_is_not_one_of_the_models_is_refused(prior):
    with pytest.raises(ConfigError, match="label_prior"):
        score_inputs(model_with_rho(-2.0), np.zeros((3, 3), dtype=np.float32), label_prior=prior, reference=10)
