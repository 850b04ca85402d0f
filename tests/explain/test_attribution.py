"""Captum attributions with a counterfactual baseline: completeness, grouping, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trustgen.errors import ConfigError
from trustgen.explain import attribute


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))


def points():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)


@pytest.mark.parametrize("method", ["integrated_gradients", "deeplift"])
def test_attributions_sum_to_the_difference_the_baseline_makes(method):
    """Completeness: sum_i attr_i = f_t(x) - f_t(baseline), to the reported delta."""
    m, (x, b) = net(), points()
    a = attribute(m, x, 2, b, method=method, n_steps=256)
    with torch.no_grad():
        gap = (m(x)[:, 2] - m(b)[:, 2]).numpy()
    np.testing.assert_allclose(a.values.sum(1), gap, atol=5e-3)
    assert np.abs(a.delta).max() < 5e-3
    np.testing.assert_allclose(a.values.sum(1) - gap, a.delta, atol=1e-4)  # delta is that error


def test_features_group_coordinates_and_gradient_shap_is_seeded():
    m, (x, b) = net(), points()
    groups = [np.array([0, 1]), np.array([2]), np.array([3, 4])]
    a = attribute(m, x, [0] * 8, b, features=groups, names=["ab", "c", "de"])
    np.testing.assert_allclose(a.per_feature[:, 0], a.values[:, :2].sum(1), rtol=1e-6)
    assert a.names == ["ab", "c", "de"] and a.per_feature.shape == (8, 3)
    state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    s1 = attribute(m, x, 1, b, method="gradient_shap", seed=3)
    s2 = attribute(m, x, 1, b, method="gradient_shap", seed=3)
    np.testing.assert_array_equal(s1.values, s2.values)
    assert torch.equal(state, torch.random.get_rng_state())  # the global streams are left as they were
    assert (np_state == np.random.get_state()[1]).all()
    assert s1.delta is None


def test_bad_arguments_are_refused():
    m, (x, b) = net(), points()
    with pytest.raises(ConfigError, match="method"):
        attribute(m, x, 0, b, method="lime")
    with pytest.raises(ConfigError, match="baselines"):
        attribute(m, x, 0, b[:3])
    with pytest.raises(ConfigError, match="n_steps"):
        attribute(m, x, 0, b, n_steps=1)


def test_feature_ablation_needs_no_gradient_and_matches_integrated_gradients_on_a_linear_model():
    """For a linear model both give w_i * (x_i - b_i) per feature; ablation calls the function only."""
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    x, b = points()
    groups = [np.array([0, 1]), np.array([2]), np.array([3, 4])]
    ig = attribute(lin, x, 1, b, features=groups)

    def black_box(u):  # no gradient flows through numpy
        return torch.as_tensor(lin(u).detach().numpy())

    fa = attribute(black_box, x, 1, b, method="feature_ablation", features=groups)
    np.testing.assert_allclose(fa.per_feature, ig.per_feature, atol=1e-5)
    assert fa.delta is None
    with pytest.raises(ConfigError, match="needs a torch classifier"):
        attribute(black_box, x, 1, b)
