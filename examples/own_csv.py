"""Bring your own CSV: declare its schema (public bounds and categories), train, sample.

    python examples/own_csv.py [--smoke]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema, save_schema
from trustgen.pipeline import train
from trustgen.run import Run
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="a few steps only (CI)")
args = ap.parse_args()

work = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
n = 1000
age = rng.integers(18, 90, n)
treated = rng.choice(["placebo", "drug"], n)
recovered = np.where(rng.random(n) < np.where(treated == "drug", 0.7, 0.4), "yes", "no")
pd.DataFrame({"age": age, "systolic": rng.normal(120 + 0.3 * (age - 50), 12, n).clip(70, 220),
              "treated": treated, "recovered": recovered}).to_csv(work / "trial.csv", index=False)

# The schema states what values are *possible*, from public knowledge, not from the rows.
schema = TabularSchema([
    NumericColumn("age", 18, 100, integer=True),
    NumericColumn("systolic", 70, 220),
    CategoricalColumn("treated", ("placebo", "drug")),
    CategoricalColumn("recovered", ("no", "yes")),
], label="recovered")
save_schema(schema, work / "schema.json")

train(work / "trial.csv", "vae", TrainConfig(steps=20 if args.smoke else 2000, progress=not args.smoke),
      schema=work / "schema.json", out=work / "run")
synth = Sampler(Run.load(work / "run")).sample(1000, seed=0).data
print(synth.groupby("treated")["recovered"].apply(lambda s: (s == "yes").mean()).rename("recovery rate"))
