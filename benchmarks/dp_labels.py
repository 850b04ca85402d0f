"""DP label frequencies on a rare-label table: the synthetic positive rate against the real one.

A synthetic table (two numbers, one category, a binary label with a ~5% positive class; built
from a fixed seed, nothing downloaded) is DP-trained (VAE, DP-SGD, PRV accountant, delta
min(1e-5, 1/(10 n))) at epsilon 1, once with the default label budget (a Gaussian histogram
of the class counts, composed with DP-SGD) and once with label_budget = 0 (the old uniform
prior). For each seed it samples ``--samples`` rows and prints the positive rate of the
samples, of the run's label prior, and of the real table, with the histogram's noise
multiplier and the rate's predicted standard deviation ``sigma * sqrt(p^2 + (1-p)^2) / n``.

    python benchmarks/dp_labels.py --seeds 0 1 2 3 4            # 20,000 rows, the default share (0.2)
    python benchmarks/dp_labels.py --rows 10000 --seeds 0 1 2 3 4
    python benchmarks/dp_labels.py --smoke                       # seconds: CI

The DP noise key is fixed per seed (``secret_seed``) so that the numbers can be reproduced;
a real run draws it from the operating system (and its report says so).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import pandas as pd

from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.pipeline import train
from trustgen.privacy.config import DEFAULT_LABEL_BUDGET, PrivacyConfig
from trustgen.sampling import Sampler
from trustgen.training import TrainConfig


def rare_label_table(rows: int, positive_rate: float, seed: int) -> tuple[pd.DataFrame, TabularSchema]:
    """A table whose label ``y`` is 1 for about ``positive_rate`` of the rows and shifts the
    features (so a model has something to condition on); bounds are declared, not read."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < positive_rate).astype(int)
    a = np.clip(rng.normal(0.0 + 1.5 * y, 1.0), -5, 5)
    b = np.clip(rng.gamma(2.0 + 2.0 * y, 1.0), 0, 30)
    c = np.where(rng.random(rows) < 0.3 + 0.4 * y, "x", "z")
    df = pd.DataFrame({"a": a, "b": b, "c": c, "y": y.astype(str)})
    schema = TabularSchema([NumericColumn("a", -5, 5), NumericColumn("b", 0, 30), CategoricalColumn("c", ("x", "z")),
                            CategoricalColumn("y", ("0", "1"))], label="y")
    return df, schema


def one_run(df, schema, *, budget: float, seed: int, steps: int, batch_size: int, samples: int, epsilon: float):
    t0 = time.time()
    run = train(df, "vae", TrainConfig(steps=steps, batch_size=batch_size, seed=seed, progress=False), schema=schema,
                model_options={"hidden": 64}, privacy=PrivacyConfig(epsilon=epsilon, label_budget=budget,
                                                                    secret_seed=seed))
    batch = Sampler(run).sample(samples, seed=seed)
    r = run.privacy
    return {"label_budget": budget, "seed": seed, "epsilon": round(r.epsilon, 4),
            "label_epsilon": round(r.label_epsilon, 4), "label_sigma": round(r.label_noise_multiplier, 2),
            "dp_sgd_sigma": round(r.noise_multiplier, 4), "prior_rate": run.label_prior[1],
            "synthetic_rate": float(np.mean(np.asarray(batch.labels) == 1)), "seconds": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--positive-rate", type=float, default=0.05)
    ap.add_argument("--label-budget", type=float, default=DEFAULT_LABEL_BUDGET)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--smoke", action="store_true", help="2,000 rows, 3 steps, one seed (seconds)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rows, args.steps, args.samples, args.seeds, args.batch_size = 2_000, 3, 2_000, [0], 64
    df, schema = rare_label_table(args.rows, args.positive_rate, seed=12345)
    real = float((df["y"] == "1").mean())
    errors = {args.label_budget: [], 0.0: []}
    for seed in args.seeds:
        for budget in (args.label_budget, 0.0):
            row = one_run(df, schema, budget=budget, seed=seed, steps=args.steps, batch_size=args.batch_size,
                          samples=args.samples, epsilon=args.epsilon)
            row.update(rows=args.rows, real_rate=real, error_pp=round(100 * (row["synthetic_rate"] - real), 3))
            if budget > 0:
                p = real
                row["predicted_sd_pp"] = round(100 * row["label_sigma"] * math.sqrt(p * p + (1 - p) ** 2) / args.rows, 3)
            errors[budget].append(abs(row["error_pp"]))
            print(json.dumps(row), flush=True)
    for budget, errs in errors.items():
        print(json.dumps({"summary": True, "label_budget": budget, "rows": args.rows, "real_rate": real,
                          "seeds": len(errs), "mean_abs_error_pp": round(statistics.mean(errs), 3),
                          "max_abs_error_pp": round(max(errs), 3),
                          "within_1pp": sum(e <= 1.0 for e in errs)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
