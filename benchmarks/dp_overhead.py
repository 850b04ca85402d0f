"""DP-SGD step time divided by non-private step time, measured side by side in one run.

For each family on tabular data (breast_cancer's 30 numbers + label) and image data (digits,
1x8x8), times trustgen's own training step (``trustgen.training.objectives.train_step``) without
DP and with DP:

* ``ratio_trustgen``: the clipping mode trustgen chooses (book-keeping), with the next step's
  noise drawn ahead on a second thread where torch's threads leave a core free (the default:
  ``trustgen.runtime.spare_core``; so on 2 cores only under ``OMP_NUM_THREADS=1``);
* ``ratio_trustgen_one_thread``: the same with the noise drawn in the step (what one core costs);
* ``ratio_opacus_ghost`` (one row per example only) and ``ratio_opacus_hooks``: plain Opacus;
* ``ratio_secure_vs_mt_noise``: the chosen step with trustgen's secure noise (ChaCha20) against
  the same step with torch's Mersenne Twister ``randn`` (not secure: a stand-in for comparison
  only), both drawn in the step.

Modes are interleaved round-robin so machine load affects them alike; the median of the rounds
is used. On CPU the process keeps the memory it frees, as the trainer does
(``trustgen.runtime.keep_freed_memory``), for every variant alike. Absolute times are only meaningful on a GPU; the ratios are the claim.

    python benchmarks/dp_overhead.py [--batch-size 256] [--rounds 5] [--steps 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from trustgen.data.encoders import make_encoder
from trustgen.data.loaders import load_data
from trustgen.models import build_model
from trustgen.models.nets import DataSpec
from trustgen.pipeline import encode_tensors
from trustgen.privacy.dp_sgd import PrivateGradients, choose_mode
from trustgen.privacy.secure_random import SecureRandom, new_key
from trustgen.runtime import keep_freed_memory, resolve_device
from trustgen.training import TrainConfig
from trustgen.training.objectives import make_optimizers, train_step


class MersenneNoise(SecureRandom):
    """The old noise source (torch's CPU generator), for the side-by-side cost only."""

    def __init__(self) -> None:
        super().__init__(new_key())
        self.gen = torch.Generator().manual_seed(0)

    def normal(self, shape, purpose, step, part=0):
        return torch.randn(shape, generator=self.gen)


def setup(family: str, dataset: str, mode: str | None, batch: int, device, noise=None, prefetch: bool | None = None):
    data, schema = load_data(dataset)
    x, y = encode_tensors(data, schema)
    torch.manual_seed(0)
    # The DP configuration for every variant (the GAN without its R1 penalty), to compare like with like.
    model = build_model(family, DataSpec.from_encoder(make_encoder(schema)), private=True).to(device)
    dp = None
    if mode:
        dp = PrivateGradients(model.private_module(), max_grad_norm=1.0, noise_multiplier=1.0,
                              expected_batch_size=batch, mode=mode, rows_per_example=model.private_rows_per_example(),
                              noise=noise or SecureRandom(new_key()), prefetch_noise=prefetch)
    opts = make_optimizers(model, TrainConfig().learning_rate(family))
    idx = torch.arange(batch) % len(x)
    return model, dp, opts, x[idx].to(device), y[idx].to(device), batch


def time_steps(state, steps: int, device) -> float:
    model, dp, opts, xb, yb, batch = state
    gen = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, opts, xb, yb, gen, None, batch, dp)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    if dp is not None and dp._pending is not None:
        # The next step's noise, drawn ahead: in training it overlaps the next step (timed here);
        # left running it would overlap the next variant's steps instead and slow them.
        dp._pending[2].result()
    return elapsed / steps


def median_times(states: dict, rounds: int, steps: int, device) -> dict:
    """Median seconds per step of each variant, after a warm-up, the variants interleaved
    round-robin so that machine load affects them alike."""
    for s in states.values():
        time_steps(s, 2, device)  # warm-up
    times = {k: [] for k in states}
    for _ in range(rounds):
        for k, s in states.items():
            times[k].append(time_steps(s, steps, device))
    return {k: statistics.median(v) for k, v in times.items()}


def close_all(states: dict) -> None:
    """Remove every variant's clipping hooks and stop its noise thread."""
    for _, dp, *_ in states.values():
        if dp is not None:
            dp.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
    ap.add_argument("--datasets", nargs="+", default=["breast_cancer", "digits"])
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    for dataset in args.datasets:
        for family in args.families:
            probe = build_model(family, DataSpec.from_encoder(make_encoder(load_data(dataset)[1])))
            chosen = choose_mode(probe)
            variants = {"non_private": None, "trustgen": chosen, "trustgen_one_thread": chosen,
                        "opacus_hooks": "hooks", "mt_noise": chosen}
            if probe.private_rows_per_example() == 1:
                variants["opacus_ghost"] = "ghost"
            states = {k: setup(family, dataset, m, args.batch_size, device,
                               MersenneNoise() if k == "mt_noise" else None,
                               prefetch=None if k == "trustgen" else False) for k, m in variants.items()}
            med = median_times(states, args.rounds, args.steps, device)
            base = med["non_private"]
            row = {"dataset": dataset, "family": family, "device": str(device), "batch_size": args.batch_size,
                   "chosen_mode": chosen, "non_private_ms": round(1000 * base, 2),
                   "ratio_trustgen": round(med["trustgen"] / base, 2),
                   "ratio_trustgen_one_thread": round(med["trustgen_one_thread"] / base, 2),
                   "ratio_opacus_ghost": round(med["opacus_ghost"] / base, 2) if "opacus_ghost" in med else None,
                   "ratio_opacus_hooks": round(med["opacus_hooks"] / base, 2),
                   "ratio_secure_vs_mt_noise": round(med["trustgen_one_thread"] / med["mt_noise"], 3),
                   "noise_params": sum(p.numel() for p in states["mt_noise"][1].params)}
            print(json.dumps(row), flush=True)
            close_all(states)
    return 0


if __name__ == "__main__":
    sys.exit(main())
