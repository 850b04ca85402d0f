"""plan_privacy: one builder from (config, n, batch size, steps, model) to a frozen PrivacyPlan."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from torch import nn

from trustgen.errors import ConfigError, DataError, PrivacyError
from trustgen.models.base import GenerativeModel
from trustgen.models.nets import DataSpec
from trustgen.privacy.accounting import calibrate_noise, default_delta, epsilon_for
from trustgen.privacy.config import PrivacyConfig
from trustgen.privacy.plan import PrivacyPlan, module_issues, plan_privacy

TAB = DataSpec("tabular", 2, 0, (("numeric", 0, 1), ("numeric", 1, 1)))
IMG = DataSpec("image", 4, 0, (), (1, 2, 2))


class StubModel(GenerativeModel):
    """The smallest GenerativeModel, with the ``private_training_issues`` contract method."""

    family = "stub"

    def __init__(self, spec=TAB, rows=1, issues=()):
        super().__init__(spec, None)
        self.net = nn.Linear(2, 1)
        self._rows, self._issues = rows, list(issues)

    def loss(self, x, y=None, *, generator=None):
        return self.net(x).squeeze(1) ** 2

    def noise_shape(self):
        return (2,)

    def generate(self, z, y=None, *, generator=None):
        return z

    def invert(self, x, y=None):
        return x

    def private_rows_per_example(self):
        return self._rows

    def private_training_issues(self):
        return list(self._issues)


def test_plan_is_what_the_trainer_computed():
    """Same maths as Trainer.plan_privacy: q = B/n, default delta, sigma calibrated to the target."""
    cfg = PrivacyConfig(epsilon=3.0, accountant="rdp")
    plan = plan_privacy(cfg, n=2_000, batch_size=50, steps=400, model=StubModel())
    q, d = 50 / 2_000, default_delta(2_000)
    assert plan.to_dict() == {"sample_rate": q, "delta": d, "noise_multiplier": calibrate_noise(3.0, d, q, 400, "rdp"),
                              "steps": 400, "mode": "bookkeeping", "label_noise_multiplier": None,
                              "marginal_noise_multiplier": None, "marginal_pairs": 0,
                              "marginal_budget": 0.0}  # no labels, no marginals: no histogram
    assert 0.995 * 3.0 <= epsilon_for(plan.noise_multiplier, q, 400, d, "rdp") <= 3.0


def test_explicit_delta_and_clipping_are_kept():
    plan = plan_privacy(PrivacyConfig(2.0, delta=1e-4, accountant="rdp", clipping="hooks"), n=1_000,
                        batch_size=10, steps=100, model=StubModel())
    assert (plan.delta, plan.mode) == (1e-4, "hooks")


@pytest.mark.parametrize("model, mode", [
    # trustgen models: book-keeping, also where an example spans two rows, and on images
    (StubModel(TAB), "bookkeeping"),
    (StubModel(TAB, rows=2), "bookkeeping"),
    (StubModel(IMG), "bookkeeping"),
    (nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1)), "ghost"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.GroupNorm(1, 2), nn.Flatten(), nn.Linear(2, 1)), "hooks"),
    (nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 1)), "hooks"),
    (nn.Sequential(nn.LayerNorm(3), nn.Linear(3, 1)), "hooks"),
])
def test_auto_clipping_mode(model, mode):
    assert plan_privacy(PrivacyConfig(5.0, accountant="rdp"), n=100, batch_size=10, steps=10, model=model).mode == mode


def test_bookkeeping_refuses_layers_it_cannot_clip_before_any_work():
    """A layer outside Linear/Conv2d/GroupNorm would silently get no gradient: refused in the plan."""
    with pytest.raises(ConfigError, match="LayerNorm.*not a layer book-keeping clipping supports"):
        plan_privacy(PrivacyConfig(5.0, accountant="rdp", clipping="bookkeeping"), n=100, batch_size=10, steps=10,
                     model=nn.Sequential(nn.LayerNorm(3), nn.Linear(3, 1)))


def test_model_issues_are_refused_with_their_reasons():
    model = StubModel(issues=["the R1 gradient penalty cannot be clipped per example (use r1_gamma=0)",
                              "second reason"])
    with pytest.raises(ConfigError, match=r"StubModel cannot be trained .*r1_gamma=0\); second reason"):
        plan_privacy(PrivacyConfig(1.0), n=100, batch_size=10, steps=10, model=model)


@pytest.mark.parametrize("module, clipping, fragment", [
    (nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), "auto", "BatchNorm"),
    (nn.Linear(2, 1).eval(), "auto", "training mode"),
    (nn.ReLU(), "auto", "no trainable parameters"),
    (nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 1)), "ghost", "nn.Embedding"),
])
def test_plain_module_issues_are_refused(module, clipping, fragment):
    with pytest.raises(ConfigError, match=fragment):
        plan_privacy(PrivacyConfig(1.0, clipping=clipping), n=100, batch_size=10, steps=10, model=module)


def test_module_issues_of_a_good_module_are_empty():
    assert module_issues(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)), "ghost") == []
    assert module_issues(nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 1)), "hooks") == []
    assert module_issues("not a module", "hooks") == ["it is a str, not a torch nn.Module"]


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(n=10, batch_size=20, steps=5), ConfigError, "batch size 20 exceeds the 10 records"),
    (dict(n=0, batch_size=1, steps=5), DataError, "no training data"),
    (dict(n=10, batch_size=0, steps=5), ConfigError, "batch_size"),
    (dict(n=10, batch_size=2, steps=0), ConfigError, "steps"),
    (dict(n=10, batch_size=2, steps=2.5), ConfigError, "steps"),
])
def test_bad_run_shape(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        plan_privacy(PrivacyConfig(1.0), model=StubModel(), **kwargs)


@pytest.mark.parametrize("cfg, error, fragment", [
    (PrivacyConfig(0.0), PrivacyError, "epsilon"),
    (PrivacyConfig(1.0, delta=0.01), PrivacyError, "1/n"),  # n = 1,000
    (PrivacyConfig(1.0, max_grad_norm=0.0), PrivacyError, "max_grad_norm"),
    (PrivacyConfig(1.0, accountant="gdp"), PrivacyError, "accountant"),
    (PrivacyConfig(1.0, clipping="ew"), ConfigError, "clipping"),
    (PrivacyConfig(1.0, label_budget=1.0), PrivacyError, "label_budget"),
    (PrivacyConfig(1.0, label_budget=-0.01), PrivacyError, "label_budget"),
    (PrivacyConfig(1.0, label_budget=float("nan")), PrivacyError, "label_budget"),
    (PrivacyConfig(1.0, label_budget=True), PrivacyError, "label_budget"),
])
def test_bad_config(cfg, error, fragment):
    with pytest.raises(error, match=fragment):
        plan_privacy(cfg, n=1_000, batch_size=10, steps=10, model=StubModel())


def test_plan_round_trips_through_a_weights_only_checkpoint():
    plan = PrivacyPlan(np.float64(0.01), np.float64(1e-5), np.float64(1.3), np.int64(200), "hooks")
    d = plan.to_dict()
    assert list(d) == ["sample_rate", "delta", "noise_multiplier", "steps", "mode", "label_noise_multiplier",
                       "marginal_noise_multiplier", "marginal_pairs", "marginal_budget"]
    assert [type(v) for v in d.values()] == [float, float, float, int, str, type(None), type(None), int, float]
    buf = io.BytesIO()
    torch.save({"plan": d}, buf)
    buf.seek(0)
    back = PrivacyPlan.from_dict(torch.load(buf, weights_only=True)["plan"])
    assert back == plan and back.to_dict() == d
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps = 3


@pytest.mark.parametrize("mutate, error, fragment", [
    (lambda d: d.pop("mode"), PrivacyError, "missing keys \\['mode'\\]"),
    (lambda d: d.update(epochs=1.0), PrivacyError, "unknown keys \\['epochs'\\]"),
    (lambda d: d.update(mode="ew"), ConfigError, "mode"),
    (lambda d: d.update(steps=0), PrivacyError, "steps"),
    (lambda d: d.update(noise_multiplier=0.0), PrivacyError, "noise_multiplier"),
    (lambda d: d.update(sample_rate=1.5), PrivacyError, "sample_rate"),
    (lambda d: d.update(delta=1.0), PrivacyError, "delta"),
    (lambda d: d.update(label_noise_multiplier=0.0), PrivacyError, "noise_multiplier"),
    (lambda d: d.update(marginal_noise_multiplier=-1.0), PrivacyError, "noise_multiplier"),
])
def test_from_dict_refuses_a_bad_plan(mutate, error, fragment):
    d = PrivacyPlan(0.01, 1e-5, 1.0, 10, "ghost").to_dict()
    mutate(d)
    with pytest.raises(error, match=fragment):
        PrivacyPlan.from_dict(d)


def test_a_checkpoint_plan_from_before_the_label_histogram_reads_as_none():
    d = PrivacyPlan(0.01, 1e-5, 1.0, 10, "ghost").to_dict()
    del d["label_noise_multiplier"]
    assert PrivacyPlan.from_dict(d).label_noise_multiplier is None


LABELLED = DataSpec("tabular", 2, 2, (("numeric", 0, 1), ("numeric", 1, 1)))


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_label_histogram_gets_its_share_and_the_composition_reaches_the_target(accountant):
    """The histogram alone spends label_budget * epsilon (within the 0.5% calibration window,
    never above); DP-SGD's sigma is calibrated so the whole history, composed by the same
    accountant, lands in [0.995, 1] * epsilon."""
    from trustgen.privacy.accounting import epsilon_of_history

    cfg = PrivacyConfig(epsilon=2.0, accountant=accountant, label_budget=0.1)
    plan = plan_privacy(cfg, n=2_000, batch_size=50, steps=300, model=StubModel(LABELLED), n_classes=2)
    d = plan.delta
    assert plan.label_segment == (plan.label_noise_multiplier, 1.0, 1)
    label_eps = epsilon_of_history([plan.label_segment], d, accountant)
    assert 0.995 * 0.2 <= label_eps <= 0.2
    total = epsilon_of_history([plan.label_segment, (plan.noise_multiplier, plan.sample_rate, 300)], d, accountant)
    assert 0.995 * 2.0 <= total <= 2.0
    # DP-SGD needs more noise than without the histogram, but far less than with only 90% of epsilon:
    # composition is not addition.
    alone = calibrate_noise(2.0, d, plan.sample_rate, 300, accountant)
    ninety = calibrate_noise(1.8, d, plan.sample_rate, 300, accountant)
    assert alone < plan.noise_multiplier < ninety


@pytest.mark.parametrize("n_classes, budget", [(0, 0.05), (1, 0.05), (2, 0.0)])
def test_no_histogram_without_two_classes_or_without_a_budget(n_classes, budget):
    spec = DataSpec("tabular", 2, n_classes, (("numeric", 0, 1), ("numeric", 1, 1)))
    plan = plan_privacy(PrivacyConfig(2.0, accountant="rdp", label_budget=budget), n=2_000, batch_size=50,
                        steps=100, model=StubModel(spec), n_classes=n_classes)
    assert plan.label_noise_multiplier is None
    assert plan.noise_multiplier == calibrate_noise(2.0, plan.delta, plan.sample_rate, 100, "rdp")
