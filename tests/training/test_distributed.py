"""Two processes (gloo on CPU): DP noise enters once, parameters stay identical, epsilon is
the single-process epsilon."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trustgen.privacy.secure_random import SecureRandom, key_from_seed
from trustgen.privacy.dp_sgd import PrivateGradients


def _noise_worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    net = torch.nn.Linear(50, 10)
    dp = PrivateGradients(net, max_grad_norm=0.5, noise_multiplier=2.0, expected_batch_size=8.0, mode="hooks",
                          noise=SecureRandom(key_from_seed(3)))
    dp.backward(torch.zeros(0), torch.optim.SGD(net.parameters(), lr=0.1))  # empty batches: noise only
    torch.save([p.grad for p in net.parameters()], f"{out}.{rank}")
    dist.destroy_process_group()


def test_noise_is_added_once_across_ranks(tmp_path):
    mp.spawn(_noise_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "g")), nprocs=2, join=True)
    g0, g1 = torch.load(tmp_path / "g.0"), torch.load(tmp_path / "g.1")
    net = torch.nn.Linear(50, 10)
    single = PrivateGradients(net, max_grad_norm=0.5, noise_multiplier=2.0, expected_batch_size=8.0, mode="hooks",
                              noise=SecureRandom(key_from_seed(3)))
    single.noise_only_step()
    for a, b, c in zip(g0, g1, [p.grad for p in net.parameters()]):
        assert torch.equal(a, b)  # identical on both ranks
        torch.testing.assert_close(a, c)  # one draw of noise, not two


def test_torchrun_two_process_dp_training(tmp_path):
    """Under torchrun (2 gloo processes): ranks end with identical weights (worker script), and
    the CLI's --distributed run reports the single-process epsilon for the same plan."""
    # The worker script's own folder comes first on its sys.path: point it at this checkout (an
    # editable install elsewhere would otherwise be imported instead).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    r = subprocess.run([*launch, "--master_port", "29513", worker, str(tmp_path / "w")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w0, w1 = torch.load(tmp_path / "w.0"), torch.load(tmp_path / "w.1")
    assert all(torch.equal(a, b) for a, b in zip(w0.values(), w1.values()))
    args = ["train", "--data", "breast_cancer", "--model", "vae", "--steps", "6", "--batch-size", "32",
            "--epsilon", "3", "--option", "hidden=16", "--no-progress", "--distributed", "--out", str(tmp_path / "ddp")]
    r = subprocess.run([*launch, "--master_port", "29514", "-m", "trustgen", *args],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    from trustgen.privacy.config import PrivacyConfig
    from trustgen.pipeline import train
    from trustgen.run import Run
    from trustgen.training import TrainConfig

    single = train("breast_cancer", "vae", TrainConfig(steps=6, batch_size=32, progress=False),
                   model_options={"hidden": 16}, privacy=PrivacyConfig(3.0))
    ddp = Run.load(tmp_path / "ddp").privacy
    assert (ddp.noise_multiplier, ddp.label_noise_multiplier) == (single.privacy.noise_multiplier,
                                                                  single.privacy.label_noise_multiplier)
    # Same plan, same history; the PRV composition of two different mechanisms runs an FFT whose
    # last bit depends on the thread count (the subprocesses run with OMP_NUM_THREADS=1).
    assert ddp.epsilon == pytest.approx(single.privacy.epsilon, rel=1e-12)


def _label_worker(rank: int, world: int, store: str, out: str) -> None:
    from trustgen.privacy.label_histogram import private_label_prior

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    y = LABELS[rank::world]  # the shard of this rank, as the trainer deals them
    torch.save(private_label_prior(y, 3, 30.0, SecureRandom(key_from_seed(4))), f"{out}.{rank}")
    dist.destroy_process_group()


LABELS = torch.tensor([0] * 500 + [1] * 300 + [2] * 40)


def test_label_histogram_sums_the_shards_and_adds_the_noise_once(tmp_path):
    """Two ranks, each with half the labels: both get the prior a single process computes on all
    labels with the same key (counts all-reduced, the same noise added once, not per rank)."""
    from trustgen.privacy.label_histogram import private_label_prior

    mp.spawn(_label_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "p")), nprocs=2, join=True)
    p0, p1 = torch.load(tmp_path / "p.0"), torch.load(tmp_path / "p.1")
    single = private_label_prior(LABELS, 3, 30.0, SecureRandom(key_from_seed(4)))
    assert p0 == p1 == single
    # and it is not the prior of one shard alone (the counts were really summed)
    assert single != private_label_prior(LABELS[0::2], 3, 30.0, SecureRandom(key_from_seed(4)))
