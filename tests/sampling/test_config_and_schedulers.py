"""SamplerConfig is chosen at sampling time; the reverse-process steps are pure and exact."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tiny_runs import make_run
from trustgen.cli import main
from trustgen.errors import ConfigError
from trustgen.run import Run
from trustgen.sampling import Sampler, SamplerConfig
from trustgen.sampling.schedulers import (
    classifier_free_guidance, ddim_inversion_step, ddim_step, ddpm_step, timestep_schedule,
)

PINNED_RUNS = Path(__file__).resolve().parents[1] / "regression" / "format1_runs"


@pytest.mark.parametrize("bad, match", [
    ({"kind": "euler"}, "unknown sampler"), ({"steps": 0}, "an integer from 1 to"), ({"steps": 10**6}, "an integer from 1 to"), ({"eta": 2.0}, "eta"),
    ({"guidance": -1.0}, "guidance"), ({"deterministic": True, "kind": "ddpm"}, "deterministic"),
    ({"deterministic": True, "eta": 0.5}, "deterministic"), ({"step": 3}, "unknown sampler settings"),
    ({"guidance": float("inf")}, "finite"), ({"kind": "ddpm", "steps": 3}, "DDPM visits every timestep"),
    ({"kind": "ddpm", "eta": 0.5}, "DDPM visits every timestep")])
def test_bad_sampler_settings_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        SamplerConfig.from_dict(bad)


def test_guidance_default_depends_on_the_data_kind():
    assert SamplerConfig().resolved("image").guidance == 2.0
    assert SamplerConfig().resolved("tabular").guidance == 1.0
    assert SamplerConfig(guidance=3.0).resolved("image").guidance == 3.0


def test_ddim_step_and_inversion_step_are_inverse_without_clipping():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    down = ddim_step(eps, x, alpha_bar=0.3, alpha_bar_prev=0.6, clip=False)
    up = ddim_inversion_step(eps, down.prev_sample, alpha_bar=0.6, alpha_bar_next=0.3)
    torch.testing.assert_close(up.prev_sample, x)
    torch.testing.assert_close(down.pred_x0, up.pred_x0)


def test_ddpm_step_oracle_with_the_true_noise():
    """With the exact noise, x0 is recovered and the last step returns it."""
    x0 = torch.tensor([[0.5, -0.25]])
    eps = torch.tensor([[1.0, -2.0]])
    ab = 0.8
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    last = ddpm_step(eps, xt, alpha_bar=ab, alpha_bar_prev=1.0, noise=None)
    torch.testing.assert_close(last.pred_x0, x0)
    torch.testing.assert_close(last.prev_sample, x0)
    with pytest.raises(ValueError, match="needs noise"):
        ddim_step(eps, xt, alpha_bar=0.5, alpha_bar_prev=0.8, eta=1.0)


def test_guidance_and_schedule():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert classifier_free_guidance(c, u, 1.0).item() == 2.0 and classifier_free_guidance(c, u, 3.0).item() == 4.0
    assert timestep_schedule(1000, 5) == [999, 749, 500, 250, 0]
    assert timestep_schedule(10, 50) == list(range(9, -1, -1))  # at most every timestep


def test_sampler_settings_change_diffusion_samples_and_refuse_other_families():
    run = make_run("diffusion")
    a = Sampler(run, config=SamplerConfig(steps=3)).sample(4, seed=0).encoded
    b = Sampler(run, config=SamplerConfig(steps=10)).sample(4, seed=0).encoded
    assert not torch.equal(a, b)
    with pytest.raises(ConfigError, match="diffusion models only"):
        Sampler(make_run("vae"), config=SamplerConfig(steps=3))


def test_deterministic_decode_ignores_the_decoder_noise():
    """Same z, different sampling streams: a deterministic decode gives identical samples."""
    run = make_run("vae")
    z = run.model.sample_noise(6, torch.Generator().manual_seed(0))
    det = SamplerConfig(deterministic=True)
    outs = [run.model.generate(z, None, generator=torch.Generator().manual_seed(s), sampler=det) for s in (1, 2)]
    assert torch.equal(*outs)
    noisy = [run.model.generate(z, None, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert not torch.equal(*noisy)


def test_old_runs_keep_their_sampler_settings_as_defaults(tmp_path):
    run = Run.load(PINNED_RUNS / "diffusion-tabular-ddpm")
    assert run.sampling == {"kind": "ddpm", "guidance": 1.0}
    # A format-1 DDPM run whose (ineffective) sample_steps was not the default still samples.
    shutil.copytree(PINNED_RUNS / "diffusion-tabular-ddpm", tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    meta["model_options"]["sample_steps"] = 7
    (tmp_path / "r" / "run.json").write_text(json.dumps(meta))
    old = Run.load(tmp_path / "r")
    assert torch.equal(Sampler(old).sample(3, seed=0).encoded, Sampler(run).sample(3, seed=0).encoded)
    assert Sampler(run).config.kind == "ddpm"
    assert "sampler" not in run.model.config_dict()


def test_cli_sampling_flags(tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(PINNED_RUNS / "diffusion-tabular", run_dir)
    outs = []
    for flags in ([], ["--sample-steps", "3"], ["--sampler", "ddpm"], ["--deterministic", "--sample-steps", "3"]):
        out = tmp_path / f"s{len(outs)}.csv"
        assert main(["sample", str(run_dir), "-n", "5", "--seed", "0", "--out", str(out), "--json", *flags]) == 0
        assert json.loads(capsys.readouterr().out)["n"] == 5
        outs.append(out.read_text())
    assert outs[0] != outs[1] and outs[0] != outs[2] and outs[1] == outs[3]  # DDIM eta 0 is deterministic
    assert main(["sample", str(run_dir), "-n", "5", "--out", str(tmp_path / "x.csv"), "--eta", "3"]) == 2
    assert "--eta: must be in [0, 1]" in capsys.readouterr().err
    assert main(["sample", str(run_dir), "-n", "5", "--out", str(tmp_path / "x.npz")]) == 2
    assert not (tmp_path / "x.npz").exists()
    ddpm_run, vae_run = tmp_path / "ddpm", tmp_path / "vae"
    shutil.copytree(PINNED_RUNS / "diffusion-tabular-ddpm", ddpm_run)
    shutil.copytree(PINNED_RUNS / "vae-tabular", vae_run)
    for run, flags, message in [(ddpm_run, ["--deterministic"], "samples with ddpm by default"),
                                (ddpm_run, ["--sample-steps", "3"], "DDPM visits every timestep"),
                                (vae_run, ["--sampler", "ddim"], "--sampler apply to diffusion runs")]:
        assert main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "y.csv"), *flags]) == 2
        assert message in capsys.readouterr().err
    assert main(["sample", str(ddpm_run), "-n", "2", "--out", str(tmp_path / "y.csv"), "--deterministic",
                 "--sampler", "ddim", "--sample-steps", "3"]) == 0


def test_sampler_invert_uses_the_samplers_settings_and_the_batch_records_them():
    run = make_run("diffusion")
    exact = SamplerConfig(steps=4, deterministic=True, clip=False)
    batch = Sampler(run, config=exact).sample(3, seed=0)
    assert batch.config.guidance == 1.0 and batch.config.steps == 4  # resolved for tables
    z4 = Sampler(run, config=exact).invert(batch.encoded, batch.labels)
    z9 = Sampler(run, config=SamplerConfig(steps=9, clip=False)).invert(batch.encoded, batch.labels)
    assert z4.shape == batch.noise.shape and not torch.allclose(z4, z9)
    vae = make_run("vae")
    b = Sampler(vae).sample(4, seed=0)
    torch.testing.assert_close(Sampler(vae).invert(b.encoded, b.labels),
                               vae.model.invert(b.encoded, torch.as_tensor(b.labels)))
