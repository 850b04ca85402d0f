"""Train a run on 70% of a built-in dataset, sample from it, and write an evaluation report.

    python examples/evaluate_run.py [--data breast_cancer|digits] [--out evaluate-demo] [--smoke]

The other 30% is kept as a real *holdout* the model never sees, so the report can compare
TSTR with TRTR and run the privacy attacks (without --holdout they are skipped). The same
flow from the shell:

    trustgen train --data DIR/train.csv --schema DIR/schema.json --model vae --out DIR/run
    trustgen sample DIR/run -n 1000 --out DIR/samples.csv
    trustgen evaluate DIR/run --samples DIR/samples.csv --real DIR/train.csv --holdout DIR/holdout.csv \
        --out DIR/report

Open DIR/report/report.html. The report reads the real data: it is NOT differentially private.
"""

import argparse
from pathlib import Path

import numpy as np

from trustgen.sampling.writers import write_samples
from trustgen.data.loaders import load_data
from trustgen.data.schema import save_schema
from trustgen.evaluation.report import evaluate
from trustgen.pipeline import train
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="breast_cancer", choices=["breast_cancer", "digits"])
ap.add_argument("--out", default="evaluate-demo")
ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
args = ap.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# 1. Split the real data into training rows and a holdout the model never sees.
data, schema = load_data(args.data)
rng = np.random.default_rng(0)
order = rng.permutation(len(data))
cut = int(0.7 * len(data))
train_idx, hold_idx = order[:cut], order[cut:]
save_schema(schema, out / "schema.json")
if args.data == "digits":
    suffix = ".npz"
    np.savez(out / "train.npz", x=data.x[train_idx], y=data.y[train_idx])
    np.savez(out / "holdout.npz", x=data.x[hold_idx], y=data.y[hold_idx])
else:
    suffix = ".csv"
    data.iloc[train_idx].to_csv(out / "train.csv", index=False)
    data.iloc[hold_idx].to_csv(out / "holdout.csv", index=False)

# 2. Train (the run records train.csv/.npz by name and content hash) and sample.
steps = 10 if args.smoke else (200 if args.data == "digits" else 1000)
options = {"hidden": 16, "width": 8} if args.smoke else {}
run = train(str(out / f"train{suffix}"), "vae", TrainConfig(steps=steps, progress=not args.smoke),
            schema=out / "schema.json", model_options=options, out=out / "run")
n = 200 if args.smoke else 1000
write_samples(Sampler(run).sample(n, seed=0), out / f"samples{suffix}", schema=run.schema)

# 3. Evaluate against the training data and the holdout (the run records only the training file's
#    name and hash, so the real data is always passed; the report says whether it matches).
report = evaluate(out / "run", out / f"samples{suffix}", real=out / f"train{suffix}", holdout=out / f"holdout{suffix}",
                  out=out / "report", progress=not args.smoke)
print(f"wrote {out / 'report' / 'report.html'} ({report['seconds']} s); {report['private_data_notice']}")
for row in report["metric_table"]:
    value = f"{row['value']:.3f}" if isinstance(row["value"], float) else row["value"]
    print(f"  {row['metric']}: {value} ({row['direction']})")
