"""Each hook kind is called, what it returns reaches the SampleBatch, and a hook that cannot
act raises instead of letting samples through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_runs import IMAGES, make_run
from trustgen.errors import ConfigError
from trustgen.sampling import NoiseResult, OutputResult, Sampler, SamplerConfig, StepOutput


class RecordingNoiseHook:
    """Adds a constant to z (a stand-in for a watermark) and reports a key id."""

    def __init__(self, shift: float = 3.0, key_id: str | None = "key-1") -> None:
        self.calls, self.shift, self.key_id = 0, shift, key_id

    def __call__(self, z, labels, generator):
        self.calls += 1
        return NoiseResult(z + self.shift, key_id=self.key_id)


def test_noise_hook_is_called_and_its_result_reaches_the_batch(family):
    run = make_run(family)
    hook = RecordingNoiseHook()
    plain = Sampler(run, batch_size=3).sample(7, seed=0)  # same batches, so the same random draws
    batch = Sampler(run, noise_hooks=[hook], batch_size=3).sample(7, seed=0)
    assert hook.calls == 3  # once per generation batch (3 + 3 + 1)
    assert batch.watermark_key_id == "key-1" and plain.watermark_key_id is None
    torch.testing.assert_close(batch.noise, plain.noise + 3.0)  # the hooked z is what was used
    assert not torch.equal(batch.encoded, plain.encoded)


def test_noise_hooks_that_cannot_act_raise(family):
    run = make_run(family)
    with pytest.raises(ConfigError, match="not a NoiseResult"):
        Sampler(run, noise_hooks=[lambda z, y, g: z]).sample(2, seed=0)  # an untyped hook
    with pytest.raises(ConfigError, match="changed the noise shape"):
        Sampler(run, noise_hooks=[lambda z, y, g: NoiseResult(z[:, :1])]).sample(2, seed=0)
    with pytest.raises(ConfigError, match="different keys"):
        Sampler(run, noise_hooks=[RecordingNoiseHook(0, "a"), RecordingNoiseHook(0, "b")]).sample(2, seed=0)

    def refuses(z, y, g):
        raise ConfigError("this key does not fit the latent space")

    with pytest.raises(ConfigError, match="does not fit"):
        Sampler(run, noise_hooks=[refuses]).sample(2, seed=0)


def first_column_positive(x, labels):
    """An output hook: projects column 0 to >= 0 on half of the rows and flags each row."""
    out = x.clone()
    out[::2, 0] = out[::2, 0].abs()
    return OutputResult(out, out[:, 0] >= 0)


def test_output_hook_results_fill_constraints_satisfied(family):
    run = make_run(family)
    calls = []

    def all_ok(x, labels):
        calls.append(len(x))
        return OutputResult(x, torch.ones(len(x), dtype=torch.bool))

    batch = Sampler(run, output_hooks=[first_column_positive, all_ok], batch_size=4).sample(10, seed=1)
    assert calls == [4, 4, 2]
    flags = batch.constraints_satisfied
    assert flags.dtype == bool and flags.shape == (10,)
    np.testing.assert_array_equal(flags, batch.encoded[:, 0].numpy() >= 0)  # the AND over hooks
    assert (batch.encoded[::2, 0] >= 0).all()  # the projection reached the samples
    assert Sampler(run).sample(3, seed=0).constraints_satisfied is None


def test_output_hooks_that_cannot_act_raise(family):
    run = make_run(family)
    with pytest.raises(ConfigError, match="not an OutputResult"):
        Sampler(run, output_hooks=[lambda x, y: x]).sample(2, seed=0)
    with pytest.raises(ConfigError, match="with a bool"):
        Sampler(run, output_hooks=[lambda x, y: OutputResult(x, torch.ones(len(x)))]).sample(2, seed=0)
    with pytest.raises(ConfigError, match="changed the sample shape"):
        Sampler(run, output_hooks=[lambda x, y: OutputResult(x[:1], torch.ones(1, dtype=torch.bool))]).sample(
            2, seed=0)


def test_step_hook_sees_every_diffusion_step_and_steers_the_result():
    run = make_run("diffusion")
    seen = []

    def project_to_zero(state):
        seen.append((state.index, state.t, state.t_prev))
        return StepOutput(state.output.prev_sample * 0.0, state.output.pred_x0)

    cfg = SamplerConfig(steps=4)
    batch = Sampler(run, config=cfg, step_hooks=[project_to_zero]).sample(5, seed=0)
    assert [s[0] for s in seen] == [0, 1, 2, 3] and seen[-1][2] == -1 and seen[0][1] == 19
    # Final state is zero in model space: numbers at 0, categories an argmax of ties (index 0).
    assert torch.all(batch.encoded[:, 0] == 0)
    ddpm = []
    Sampler(run, config=SamplerConfig(kind="ddpm"),
            step_hooks=[lambda s: (ddpm.append(s.t), s.output)[1]]).sample(2, seed=0)
    assert ddpm == list(range(19, -1, -1))  # DDPM visits every timestep


def test_step_hooks_that_cannot_act_raise(family):
    run = make_run(family)
    if family != "diffusion":
        with pytest.raises(ConfigError, match="has none"):
            Sampler(run, step_hooks=[lambda s: s.output])  # no reverse process to act on
        return
    with pytest.raises(ConfigError, match="not a StepOutput"):
        Sampler(run, config=SamplerConfig(steps=2), step_hooks=[lambda s: s.output.prev_sample]).sample(2, seed=0)


def test_redraw_replaces_only_the_chosen_rows_and_keeps_their_labels(family):
    run = make_run(family)
    sampler = Sampler(run, noise_hooks=[RecordingNoiseHook()], output_hooks=[first_column_positive])
    batch = sampler.sample(8, seed=0)
    again = sampler.redraw(batch, [1, 5], seed=11)
    keep = [i for i in range(8) if i not in (1, 5)]
    assert torch.equal(again.encoded[keep], batch.encoded[keep])
    assert not torch.equal(again.noise[[1, 5]], batch.noise[[1, 5]])
    np.testing.assert_array_equal(again.labels, batch.labels)
    assert again.watermark_key_id == "key-1" and again.constraints_satisfied.shape == (8,)
    assert again.seed is None  # no single seed reproduces a re-drawn batch
    with pytest.raises(ConfigError, match="rows to redraw"):
        sampler.redraw(batch, [8])


def test_redraw_never_reports_unchecked_rows_as_satisfied(family):
    run = make_run(family)
    checked, plain = Sampler(run, output_hooks=[first_column_positive]), Sampler(run)
    with pytest.raises(ConfigError, match="output hooks the batch was sampled with"):
        checked.redraw(plain.sample(5, seed=0), [0])  # rows 1-4 were never checked
    with pytest.raises(ConfigError, match="output hooks the batch was sampled with"):
        plain.redraw(checked.sample(5, seed=0), [0])  # the flags would be dropped


def test_hooks_work_on_images_too():
    run = make_run("vae", IMAGES)
    batch = Sampler(run, noise_hooks=[RecordingNoiseHook()], output_hooks=[
        lambda x, y: OutputResult(x.clamp(-0.5, 0.5), torch.ones(len(x), dtype=torch.bool))]).sample(4, labels=3, seed=0)
    assert batch.encoded.abs().max() <= 0.5 and batch.watermark_key_id == "key-1"
    assert batch.data.x.shape == (4, 1, 8, 8)
