"""The training loop: reproducible, resumable after a kill, and strict about its settings."""

from __future__ import annotations

import pytest
import torch

from toy import fresh, toy_data
from trustgen.errors import ConfigError, DataError, RunError
from trustgen.training import TrainConfig, Trainer


def data(n=40):
    return toy_data(n)


class Kill(Exception):
    pass


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(family, tmp_path, device):
    x, y = data()
    cfg = dict(steps=14, batch_size=16, seed=5, checkpoint_every=4, progress=False, device=device)
    straight = fresh(family)
    Trainer(straight, TrainConfig(**cfg)).fit(x, y)

    def kill_at_10(trainer, step, logs):
        if step == 10:
            raise Kill()

    ckpt = tmp_path / "ck.pt"
    with pytest.raises(Kill):
        Trainer(fresh(family), TrainConfig(**cfg), callbacks=(kill_at_10,)).fit(x, y, checkpoint=ckpt)
    # The last checkpoint is from step 8; a new process (new model object) resumes from it.
    resumed = fresh(family)
    torch.manual_seed(999)  # global RNG state must not matter
    result = Trainer(resumed, TrainConfig(**cfg)).fit(x, y, checkpoint=ckpt, resume=True)
    assert result.steps == 14
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{family}: parameter {k} differs after resume"


def test_same_seed_same_weights_other_seed_other_weights():
    x, y = data()
    ws = []
    for seed in (1, 1, 2):
        m = fresh("vae")
        Trainer(m, TrainConfig(steps=5, batch_size=8, seed=seed, progress=False)).fit(x, y)
        ws.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(ws[0], ws[1]) and not torch.equal(ws[0], ws[2])


def test_training_reduces_the_loss():
    x, y = data(200)
    m = fresh("vae")
    r = Trainer(m, TrainConfig(steps=300, batch_size=32, log_every=25, progress=False)).fit(x, y)
    assert r.history[-1]["loss"] < r.history[0]["loss"] - 0.2  # measured: 1.43 -> 1.06 (smoothed)


def test_checkpoint_is_loaded_without_executing_code(tmp_path):
    x, y = data()
    ckpt = tmp_path / "ck.pt"
    Trainer(fresh("vae"), TrainConfig(steps=2, batch_size=8, progress=False)).fit(x, y, checkpoint=ckpt)
    torch.load(ckpt, weights_only=True)  # raises if anything but tensors/containers/primitives is inside


@pytest.mark.parametrize("cfg, exc, words", [
    (dict(epochs=0), ConfigError, "epochs"),
    (dict(steps=-3), ConfigError, "steps"),
    (dict(batch_size=0), ConfigError, "batch_size"),
    (dict(lr=0.0), ConfigError, "lr"),
    (dict(device="tpu"), ConfigError, "device"),
])
def test_bad_settings_are_refused_before_training(cfg, exc, words):
    x, y = data()
    with pytest.raises(exc, match=words):
        Trainer(fresh("vae"), TrainConfig(progress=False, **cfg)).fit(x, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
def test_cuda_requested_without_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        TrainConfig(device="cuda").validate()


def test_empty_data_and_mismatched_labels_are_refused():
    with pytest.raises(DataError, match="0 examples"):
        Trainer(fresh("vae"), TrainConfig(steps=1, progress=False)).fit(torch.zeros(0, 4))
    with pytest.raises(DataError, match="labels"):
        Trainer(fresh("vae"), TrainConfig(steps=1, progress=False)).fit(torch.zeros(4, 4), torch.zeros(3))


def test_resume_with_other_settings_is_refused(tmp_path):
    x, y = data()
    ckpt = tmp_path / "ck.pt"
    Trainer(fresh("vae"), TrainConfig(steps=2, batch_size=8, progress=False)).fit(x, y, checkpoint=ckpt)
    with pytest.raises(RunError, match="same settings"):
        Trainer(fresh("vae"), TrainConfig(steps=4, batch_size=16, progress=False)).fit(x, y, checkpoint=ckpt, resume=True)


def test_custom_optimizers_must_cover_each_parameter_group_and_only_it():
    m = fresh("gan")
    x, y = toy_data(16)
    bad = [lambda m: {"model": torch.optim.SGD(m.parameters(), lr=0.1)},
           lambda m: {"discriminator": torch.optim.SGD(m.parameters(), lr=0.1),
                      "generator": torch.optim.SGD(m.generator.parameters(), lr=0.1)}]
    for make in bad:
        with pytest.raises(ConfigError, match="optimi"):
            Trainer(m, TrainConfig(steps=1, batch_size=8, progress=False), optimizers=make).fit(x, y)
