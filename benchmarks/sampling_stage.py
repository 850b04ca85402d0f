"""What the sampling stage costs, measured side by side in one run.

For each family on tabular data (breast_cancer's layout) and images (digits, 1x8x8), times:

* ``bare``: ``model.sample`` (noise + hard decode, no Sampler) — the floor;
* ``sampler``: ``Sampler.sample`` with no hooks (labels, batching, decoding to data);
* ``hooked``: the same with one typed noise, step (diffusion) and output hook that change nothing;
* ``soft_grad``: the soft decode plus a backward pass to the latent (what counterfactual search
  and guidance pay per iteration).

Ratios are to ``bare``; variants are interleaved round-robin and the median of the rounds is
used, so machine load affects them alike. Absolute times are only meaningful on a GPU.

    python benchmarks/sampling_stage.py [--n 500] [--rounds 5] [--steps 20] [--device cpu]
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
from trustgen.run import Run
from trustgen.runtime import resolve_device
from trustgen.sampling import NoiseResult, OutputResult, Sampler, SamplerConfig


def noise_hook(z, labels, generator):
    return NoiseResult(z, key_id="bench")


def output_hook(x, labels):
    return OutputResult(x, torch.ones(len(x), dtype=torch.bool, device=x.device))


def step_hook(state):
    return state.output


def variants(run: Run, n: int, config: SamplerConfig):
    model = run.model
    y = torch.arange(n, device=model.device) % run.schema.n_classes
    plain = Sampler(run, config=config, batch_size=n)
    hooked = Sampler(run, config=config, batch_size=n, noise_hooks=[noise_hook], output_hooks=[output_hook],
                     step_hooks=[step_hook] if run.family == "diffusion" else [])

    def soft_grad():
        z = model.sample_noise(n, torch.Generator().manual_seed(0)).requires_grad_(True)
        model.generate(z, y, hard=False, sampler=config).sum().backward()

    return {
        "bare": lambda: model.sample(n, cond=y, generator=torch.Generator().manual_seed(0), sampler=config),
        "sampler": lambda: plain.sample(n, labels=y.cpu().numpy(), seed=0),
        "hooked": lambda: hooked.sample(n, labels=y.cpu().numpy(), seed=0),
        "soft_grad": soft_grad,
    }


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps for diffusion")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
    ap.add_argument("--datasets", nargs="+", default=["breast_cancer", "digits"])
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    config = SamplerConfig(steps=args.steps)
    for dataset in args.datasets:
        schema = load_data(dataset)[1]
        for family in args.families:
            torch.manual_seed(0)
            model = build_model(family, DataSpec.from_encoder(make_encoder(schema))).to(device).eval()
            run = Run(model, schema, {}, [1.0 / schema.n_classes] * schema.n_classes)
            fns = variants(run, args.n, config if family == "diffusion" else SamplerConfig())
            for fn in fns.values():
                fn()  # warm-up
            times = {k: [] for k in fns}
            for _ in range(args.rounds):
                for k, fn in fns.items():
                    times[k].append(timed(fn, device))
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {"dataset": dataset, "family": family, "device": str(device), "n": args.n,
                   "bare_ms": round(1000 * med["bare"], 2),
                   **{f"ratio_{k}": round(med[k] / med["bare"], 2) for k in ("sampler", "hooked", "soft_grad")}}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
