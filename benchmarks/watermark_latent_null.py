"""The latent watermark test's false positives for one key over many unwatermarked samples.

The test's null is exact over keys; this measures the per-key case: one key, 10,000 plain
samples of a run (digits), the share with p <= 1e-3 and its 95% Clopper-Pearson interval.

    python benchmarks/watermark_latent_null.py --runs-dir /tmp/wm --families vae diffusion
    python benchmarks/watermark_latent_null.py --smoke
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from trustgen.pipeline import train
from trustgen.run import Run
from trustgen.sampling import Sampler
from trustgen.training import TrainConfig
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.latent import detect_latent, latent_center

ap = argparse.ArgumentParser()
ap.add_argument("--families", nargs="+", default=["vae", "diffusion"])
ap.add_argument("--runs-dir", type=Path, help="reuse DIR/{family} (digits runs)")
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--n", type=int, default=10_000)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.families, args.n, args.steps = ["vae"], 200, 3
torch.set_num_threads(1)
key = WatermarkKey.from_seed(args.seed)
print("| family | samples | FPR at 1e-3 (95% CI) |\n|---|---|---|")
for family in args.families:
    if args.runs_dir is not None and (args.runs_dir / family / "run.json").is_file():
        run = Run.load(args.runs_dir / family)
    else:
        run = train("digits", family, TrainConfig(steps=args.steps, seed=args.seed, progress=False))
    sampler = Sampler(run)
    center = latent_center(sampler)
    batch = sampler.sample(args.n, seed=args.seed + 77)
    p = np.concatenate([detect_latent(sampler, key, batch.encoded[i:i + 1000], batch.labels[i:i + 1000],
                                      center=center).p_values for i in range(0, args.n, 1000)])
    k = int((p <= 1e-3).sum())
    ci = stats.binomtest(k, args.n).proportion_ci()
    print(f"| {family} | {args.n:,} | {k / args.n:.1e} [{ci.low:.1e}, {ci.high:.1e}] |")
