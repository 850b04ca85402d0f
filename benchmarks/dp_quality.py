"""Sample quality under differential privacy (DP-SGD, Poisson sampling, PRV accountant).

digits at epsilon 10: TSTR accuracy of a logistic regression trained on 2,000 samples (uniform
labels) and tested on real digits, with label coverage; breast_cancer at epsilon 1 and 10:
TSTR ROC AUC on real rows. delta = 1e-5 for digits; breast_cancer (n = 569) uses the default
min(1e-5, 1/(10 n)) = 1e-5.

    python benchmarks/dp_quality.py --seed 0 [--families vae gan diffusion] [--holdout]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from quality import evaluate_digits, evaluate_table, split

from trustgen.data.loaders import load_data
from trustgen.privacy.config import PrivacyConfig
from trustgen.pipeline import train
from trustgen.training import TrainConfig

# Public settings (never tuned on a holdout): batch size and steps per dataset.
SETTINGS = {"digits": dict(batch_size=256, steps=1500), "breast_cancer": dict(batch_size=128, steps=800)}
EPSILONS = {"digits": [10.0], "breast_cancer": [1.0, 10.0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["breast_cancer", "digits"])
    ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", action="store_true")
    ap.add_argument("--steps-scale", type=float, default=1.0)
    args = ap.parse_args(argv)
    for ds in args.datasets:
        data, schema = load_data(ds)
        tr, te = split(ds, data, args.seed, args.holdout)
        for eps in EPSILONS[ds]:
            for fam in args.families:
                s = SETTINGS[ds]
                steps = max(1, int(s["steps"] * args.steps_scale))
                t0 = time.time()
                run = train(tr, fam, TrainConfig(steps=steps, batch_size=s["batch_size"], seed=args.seed, progress=False),
                            schema=schema, privacy=PrivacyConfig(epsilon=eps, delta=1e-5))
                t1 = time.time()
                ev = evaluate_digits(run, te, args.seed) if ds == "digits" else evaluate_table(run, te, args.seed)
                print(json.dumps({"dataset": ds, "family": fam, "target_epsilon": eps,
                                  "epsilon": round(run.privacy.epsilon, 4), "sigma": round(run.privacy.noise_multiplier, 4),
                                  "steps": steps, "seed": args.seed, "holdout": args.holdout,
                                  "train_seconds": round(t1 - t0, 1), **ev}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
