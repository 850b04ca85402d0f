"""Constrained sampling: fidelity of projection and guidance against exact rejection, and cost.

For each family, on two tables:

* **gmm**: a 2-D Gaussian mixture with a known density (4,000 rows drawn here), constraint
  ``x + y <= 0`` and ``x >= -3``. The oracle's own constrained samples (rejection from the true
  mixture) are a second reference.
* **breast_cancer**: ``mean radius <= 12``, ``mean perimeter >= 6 * mean radius`` and "if the
  diagnosis is malignant then mean area >= 400".

**Fidelity**: energy distance (columns standardised by the schema's ranges) between 1,000
samples of each method and 1,000 exact rejection samples of the same model, beside the
distance between two independent rejection draws (run-to-run: what "the same distribution"
measures at this sample size).

**Cost**: a rare constraint on the gmm model (``x >= q``, ``q`` the model's own 99.5%
quantile of ``x``: acceptance <= 1%): time for 1,000 samples by rejection and by projection,
side by side in one run, and their ratio; projection both as fast as it goes (the output
projected, no latent search, no chain: ``search_steps=0, mcmc_steps=0``; diffusion keeps its
per-step projection) and with its defaults (latent search, 20 elliptical slice steps).

    python benchmarks/constraints.py --steps 1500 --seed 0            # trains 6 runs (minutes on CPU)
    python benchmarks/constraints.py --runs-dir /tmp/wm                # reuse (or save) DIR/{gmm,bc}-{family}
    python benchmarks/constraints.py --smoke                           # seconds: CI
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import cdist

from trustgen.constraints.language import ConstraintSet, Equals, Implies, Linear, Range
from trustgen.data.schema import NumericColumn, TabularSchema
from trustgen.pipeline import train
from trustgen.run import Run
from trustgen.sampling import Sampler
from trustgen.sampling.constrained import ConstrainedSampler
from trustgen.training import TrainConfig

ap = argparse.ArgumentParser()
ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--runs-dir", type=Path, help="reuse DIR/{gmm,bc}-{family} (saved there when trained)")
ap.add_argument("--n", type=int, default=1000)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.steps, args.n, args.families = 3, 60, ["vae"]
torch.set_num_threads(1)

MEANS = np.array([[-2.0, -1.0], [1.5, 2.0], [2.5, -2.0]])
GMM_SCHEMA = TabularSchema([NumericColumn("x", -6, 6), NumericColumn("y", -6, 6)])


def gmm(n: int, rng) -> pd.DataFrame:
    k = rng.integers(len(MEANS), size=n)
    v = np.clip(MEANS[k] + rng.normal(0, 0.7, (n, 2)), -6, 6)
    return pd.DataFrame(v, columns=["x", "y"])


def energy(a: np.ndarray, b: np.ndarray) -> float:
    """Energy distance 2E|A-B| - E|A-A'| - E|B-B'| (0 iff the distributions agree)."""
    return float(2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean())


def scaled(df: pd.DataFrame, schema) -> np.ndarray:
    cols = [c for c in schema.columns if isinstance(c, NumericColumn)]
    return np.column_stack([(df[c.name].to_numpy(float) - c.low) / (c.high - c.low) for c in cols])


def run_for(name: str, family: str, data, schema=None) -> Run:
    if args.runs_dir is not None and (args.runs_dir / f"{name}-{family}" / "run.json").is_file():
        return Run.load(args.runs_dir / f"{name}-{family}")
    run = train(data, family, TrainConfig(steps=args.steps, seed=args.seed, progress=False), schema=schema)
    if args.runs_dir is not None:
        run.save(args.runs_dir / f"{name}-{family}")
    return run


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


rng = np.random.default_rng(args.seed)
gmm_data = gmm(4000, rng)
RULES = {
    "gmm": ConstraintSet([Linear({"x": 1, "y": 1}, "<=", 0), Range("x", low=-3)]),
    "bc": ConstraintSet([Range("mean radius", high=12), Linear({"mean perimeter": 1, "mean radius": -6}, ">=", 0),
                         Implies(Equals("diagnosis", "malignant"), Range("mean area", low=400))]),
}
fidelity, cost = [], []
for family in args.families:
    for name in ("gmm", "bc"):
        run = run_for(name, family, gmm_data if name == "gmm" else "breast_cancer",
                      GMM_SCHEMA if name == "gmm" else None)
        rules, n = RULES[name], args.n

        def draw(method, seed):
            return ConstrainedSampler(run, rules, method=method).sample(n, seed=seed)

        rej = draw("rejection", args.seed + 1)
        rej2 = draw("rejection", args.seed + 2)
        ref = scaled(rej.data, run.schema)
        row = {"data": name, "family": family, "acceptance": rej.constraint_report.satisfied_before_repair,
               "run_to_run": energy(ref, scaled(rej2.data, run.schema))}
        for method in ("projection", "guidance"):
            batch, secs = timed(lambda: draw(method, args.seed + 3))
            row[method] = energy(ref, scaled(batch.data, run.schema))
            row[f"{method}_s"] = secs
        if name == "gmm":  # the oracle: the true mixture's own constrained samples
            truth = gmm(200_000, np.random.default_rng(args.seed + 9))
            ok = (truth.x + truth.y <= 0) & (truth.x >= -3)
            row["rejection_vs_truth"] = energy(ref, scaled(truth[ok].head(n), run.schema))
        fidelity.append(row)
        if name == "gmm":  # cost at acceptance <= 1%
            q = float(np.quantile(Sampler(run).sample(20_000, seed=args.seed + 5).data.x, 0.995))
            rare = ConstraintSet([Range("x", low=q)])
            budget = 10_000_000
            (r_rej, t_rej) = timed(lambda: ConstrainedSampler(run, rare, method="rejection", budget=budget)
                                   .sample(n, seed=args.seed + 6))
            (r_fast, t_fast) = timed(lambda: ConstrainedSampler(run, rare, method="projection", search_steps=0,
                                                                mcmc_steps=0).sample(n, seed=args.seed + 6))
            (r_proj, t_proj) = timed(lambda: ConstrainedSampler(run, rare, method="projection")
                                     .sample(n, seed=args.seed + 6))
            ref_rare = scaled(r_rej.data, run.schema)
            cost.append((family, q, r_rej.constraint_report.satisfied_before_repair, r_rej.constraint_report.draws,
                         t_rej, t_fast, t_proj, energy(ref_rare, scaled(r_fast.data, run.schema)),
                         energy(ref_rare, scaled(r_proj.data, run.schema))))

print(f"runs of {args.steps} steps (breast_cancer: or --runs-dir), seed {args.seed}, {args.n} samples per method\n")
print("| data | family | plain model's acceptance | energy distance to rejection: projection / guidance "
      "| rejection run-to-run | rejection vs oracle | time projection / guidance (s) |")
print("|---|---|---|---|---|---|---|")
for r in fidelity:
    truth = f"{r['rejection_vs_truth']:.4f}" if "rejection_vs_truth" in r else "-"
    print(f"| {r['data']} | {r['family']} | {r['acceptance']:.3f} | {r['projection']:.4f} / {r['guidance']:.4f} | "
          f"{r['run_to_run']:.4f} | {truth} | {r['projection_s']:.2f} / {r['guidance_s']:.2f} |")
print(f"\nCost: {args.n} samples of gmm under x >= q (q: the model's 99.5% quantile of x), side by side\n")
print("| family | q | acceptance | rejection draws | rejection s | projection s: output only / default | "
      "speed-up: output only / default | energy distance to rejection: output only / default |")
print("|---|---|---|---|---|---|---|---|")
for family, q, acc, draws, t_rej, t_fast, t_proj, d_fast, d_proj in cost:
    print(f"| {family} | {q:.2f} | {acc:.4f} | {draws:,} | {t_rej:.2f} | {t_fast:.2f} / {t_proj:.2f} | "
          f"{t_rej / t_fast:.1f}x / {t_rej / t_proj:.1f}x | {d_fast:.4f} / {d_proj:.4f} |")
