"""How tight the audits are, and whether they catch a broken mechanism (issue 13, item 10).

For each claimed epsilon (delta 1e-5, PRV accountant, sample rate 0.1, 100 steps, ghost clipping):

* the white-box gradient-canary audit of the correct mechanism over several seeds (Gaussian-DP
  bound, the assumption-free (epsilon, delta) bound on the same counts, the one-run bound);
* the same audit with each fault of trustgen.privacy.audit_faults injected (seed 0): caught when
  the Gaussian-DP bound exceeds the claim;
* the black-box audit (model-loss attack on a DP VAE on breast_cancer, one-run analysis).

    python benchmarks/dp_audit.py [--epsilons 1 4 8] [--seeds 5] [--canaries 10000 --runs 5] [--smoke]

Prints one JSON line per audit, then a summary table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from trustgen.privacy.audit_dp_sgd import audit_dp_sgd
from trustgen.privacy.audit_faults import FAULTS


def black_box(epsilon: float, canaries: int, steps: int, seed: int) -> dict:
    from trustgen.data.loaders import load_data
    from trustgen.pipeline import train
    from trustgen.privacy.audit import audit
    from trustgen.privacy.config import PrivacyConfig
    from trustgen.training import TrainConfig

    data, schema = load_data("breast_cancer")
    r = audit(data, schema, "vae", TrainConfig(steps=steps, batch_size=64, seed=seed, progress=False), train=train,
              privacy=PrivacyConfig(epsilon, 1e-5), canaries=canaries, seed=seed, model_options={"hidden": 128})
    return r.to_dict()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0, 8.0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--canaries", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sample-rate", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--black-box-canaries", type=int, default=500)
    ap.add_argument("--black-box-steps", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.epsilons, args.seeds, args.canaries, args.runs, args.steps = [1.0], 1, 400, 1, 10
        args.black_box_canaries, args.black_box_steps = 20, 5
    common = dict(sample_rate=args.sample_rate, steps=args.steps, canaries=args.canaries, runs=args.runs)
    rows = []
    for eps in args.epsilons:
        correct = []
        for seed in range(args.seeds):
            t0 = time.time()
            r = audit_dp_sgd(eps, seed=seed, **common).to_dict()
            correct.append(r)
            print(json.dumps({"audit": "white-box", "fault": None, "seed": seed, "seconds": round(time.time() - t0, 1),
                              **r}), flush=True)
        faults = {}
        for name, fault in FAULTS.items():
            r = audit_dp_sgd(eps, seed=0, **common, **fault).to_dict()
            faults[name] = r
            print(json.dumps({"audit": "white-box", "fault": name, "seed": 0, **r}), flush=True)
        bb = black_box(eps, args.black_box_canaries, args.black_box_steps, 0)
        print(json.dumps({"audit": "black-box", **bb}), flush=True)
        gdp = [r["gdp_epsilon_lower_bound"] for r in correct]
        rows.append((eps, min(gdp), statistics.median(gdp), max(gdp),
                     statistics.median(r["epsilon_delta_lower_bound"] for r in correct),
                     statistics.median(r["one_run_epsilon_lower_bound"] for r in correct),
                     bb["epsilon_lower_bound"], faults))
    print("\n| claimed epsilon | white-box GDP bound, correct (min / median / max over seeds) | (eps, delta) bound "
          "| one-run bound | black-box bound | " + " | ".join(f"{n}: bound (caught)" for n in FAULTS) + " |")
    print("|---" * (6 + len(FAULTS)) + "|")
    for eps, lo, med, hi, ed, one, bb, faults in rows:
        cells = " | ".join(f"{f['gdp_epsilon_lower_bound']:.2f} ({'yes' if f['caught'] else 'NO'})" for f in faults.values())
        print(f"| {eps:g} | {lo:.2f} / {med:.2f} / {hi:.2f} | {ed:.2f} | {one:.2f} | {bb:.2f} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
