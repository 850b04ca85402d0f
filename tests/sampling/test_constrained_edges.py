"""Edges of constrained sampling found in review: each case once broke the guarantee, crashed,
or silently ignored an option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tiny_runs import IMAGES, TABLE, make_run
from trustgen.cli import main
from trustgen.constraints.language import (
    ConstraintSet, Equals, Function, Implies, PixelMass, Range, constraint_from_dict,
)
from trustgen.constraints.space import Region, Space
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import ConfigError
from trustgen.sampling.constrained import ConstrainedSampler

INTS = TabularSchema([NumericColumn("x", 0, 10), NumericColumn("k", 0, 9, integer=True),
                      CategoricalColumn("c", ("a", "b"))], label="c", source="declared")


def test_pixel_bounds_hold_on_the_float32_values_a_file_stores(tmp_path, capsys):
    run = make_run("vae", IMAGES).save(tmp_path / "run")
    rules = tmp_path / "r.json"
    rules.write_text(json.dumps({"constraints": [{"kind": "pixel_mass", "high": 3.0},
                                                 {"kind": "range", "column": "pixels", "high": 0.3,
                                                  "region": {"top": 0, "bottom": 2}}]}))
    out = tmp_path / "x.npz"
    assert main(["sample", str(run), "-n", "300", "--seed", "0", "--constraints", str(rules), "--out", str(out)]) == 0
    with np.load(out) as f:
        x = f["x"]
    assert x.dtype == np.float32
    assert (x.reshape(300, -1).astype(np.float64).mean(1) <= 3.0).all()  # exactly, as stored
    assert (x[:, :, :2, :] <= np.float32(0.3)).all()


def test_an_implication_on_the_label_projects_without_a_crash():
    run = make_run("vae", INTS)
    rules = [Implies(Equals("c", "b"), Range("x", high=1)), Range("x", low=2)]  # so the label is never b
    batch = ConstrainedSampler(run, rules, method="projection").sample(20, seed=0)
    assert (batch.data["x"] >= 2).all() and (batch.data["c"] == "a").all()


def test_integer_bounds_are_exact():
    batch = ConstrainedSampler(make_run("vae", INTS), [Range("k", low=2.0000000001)],
                               method="projection").sample(30, seed=0)
    assert (batch.data["k"] >= 3).all()


def test_a_user_function_holds_with_no_tolerance():
    g = Function(lambda u: u[:, 0] - 4.0, name="x_below_4")  # x <= 4
    batch = ConstrainedSampler(make_run("gan", INTS), [g], method="projection").sample(30, seed=0)
    assert (batch.data["x"] <= 4.0).all()


def test_a_failing_user_module_is_one_clear_error():
    def broken(u):
        raise IndexError("index 7 is out of bounds for dimension 1 with size 2")

    with pytest.raises(ConfigError, match="constraint broken.x. <= 0: the user's module failed"):
        ConstrainedSampler(make_run("gan", INTS), [Function(broken, name="broken")], method="rejection").sample(
            5, seed=0)
    with pytest.raises(ConfigError, match="must return one number per sample"):
        ConstrainedSampler(make_run("gan", INTS), [Function(lambda u: u, name="wide")], method="rejection").sample(
            5, seed=0)


@pytest.mark.parametrize("channels", [[0, 0], [False], [True]])
def test_region_channels_must_be_distinct_indices(channels):
    c = constraint_from_dict({"kind": "pixel_mass", "high": 3, "region": {"channels": channels}})
    with pytest.raises(ConfigError, match="region channels must be distinct channel indices"):
        ConstraintSet([c]).compile(Space(IMAGES))


def test_the_pilot_leaves_budget_to_sample_with():
    batch = ConstrainedSampler(make_run("vae", TABLE), [Range("a", high=1)], method="projection",
                               budget=100).sample(50, seed=0)
    assert len(batch.data) == 50 and batch.constraint_report.draws <= 100


def test_user_modules_follow_the_model_to_its_device():
    net = torch.nn.Linear(3, 1)
    ConstrainedSampler(make_run("gan", INTS), [Function(lambda u: net(u.float())[:, 0], name="lin")])
    model = torch.nn.Linear(3, 2)
    from trustgen.constraints.language import Classifier

    ConstrainedSampler(make_run("gan", INTS), [Classifier(model, 1, 0.5)])
    assert next(model.parameters()).device == make_run("gan", INTS).model.device


@pytest.mark.parametrize("argv, words", [
    (["--constraint-method", "rejection", "--mcmc-steps", "3"], "apply to projection and guidance, not rejection"),
    (["--mcmc-steps", "3"], "--mcmc-steps needs a decode that is a function of the latent"),  # a VAE table
])
def test_options_that_would_do_nothing_are_refused(tmp_path, capsys, argv, words):
    run = make_run("vae", TABLE).save(tmp_path / "run")
    rules = tmp_path / "r.json"
    rules.write_text(json.dumps({"constraints": [{"kind": "range", "column": "a", "high": 5}]}))
    out = tmp_path / "s.csv"
    code = main(["sample", str(run), "-n", "5", "--constraints", str(rules), *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.strip().count("\n") == 0 and not out.exists()


def test_search_steps_on_a_diffusion_run_are_refused(tmp_path, capsys):
    run = make_run("diffusion", TABLE).save(tmp_path / "run")
    rules = tmp_path / "r.json"
    rules.write_text(json.dumps({"constraints": [{"kind": "range", "column": "a", "high": 5}]}))
    code = main(["sample", str(run), "-n", "5", "--constraints", str(rules), "--search-steps", "3",
                 "--out", str(tmp_path / "s.csv")])
    assert code == 2 and "--search-steps applies to VAE and GAN runs" in capsys.readouterr().err


def test_pixel_mass_with_both_bounds_reports_each_side():
    batch = ConstrainedSampler(make_run("gan", IMAGES), [PixelMass(low=2.0, high=6.0)], method="projection").sample(
        10, seed=0)
    assert set(batch.constraint_report.per_constraint_before_repair) == {"mean(pixels) <= 6", "mean(pixels) >= 2"}


@pytest.mark.parametrize("family", ["gan", "diffusion"])
def test_guidance_steers_towards_a_soft_classifier_condition(family):
    """A soft rule is steered towards, not enforced: guidance raises how often it holds."""
    from trustgen.constraints.language import Classifier

    class XAbove(torch.nn.Module):  # logits of (x <= 6, x > 6), sharp
        def forward(self, u):
            return torch.stack([6.0 - u[:, 0], u[:, 0] - 6.0], 1) * 4.0

    rule = Classifier(XAbove(), target=1, threshold=0.9)  # soft by default
    run = make_run(family, INTS)
    plain = ConstrainedSampler(run, [rule], method="rejection").sample(200, seed=0).constraint_report
    steered = ConstrainedSampler(run, [rule], method="guidance").sample(200, seed=0).constraint_report
    assert plain.soft == ("p(class 1) >= 0.9",) and not plain.hard
    assert steered.soft_satisfied["p(class 1) >= 0.9"] > plain.soft_satisfied["p(class 1) >= 0.9"] + 0.2


def test_pixels_equal_to_a_value_over_a_region_are_met_to_the_float32_slack():
    rule = Range("pixels", low=0.3, high=0.3, region=Region(top=0, bottom=2))
    batch = ConstrainedSampler(make_run("gan", IMAGES), [rule], method="projection").sample(10, seed=0)
    top = np.asarray(batch.data.x, dtype=np.float64)[:, :, :2, :]
    assert np.abs(top - 0.3).max() <= 1e-6 * 1.3 + 1e-12
    with pytest.raises(ConfigError, match="rejection cannot meet"):
        ConstrainedSampler(make_run("gan", IMAGES), [rule], method="rejection")
