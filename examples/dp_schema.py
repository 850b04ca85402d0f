"""A schema estimated with differential privacy, then DP training on it: one end-to-end epsilon.

The CLI equivalent: ``trustgen schema infer table.csv --epsilon 3 --label diagnosis
--categories diagnosis=malignant,benign --range "mean radius=0:31" ... --out schema.json``, then
``trustgen train --data table.csv --schema schema.json --model vae --epsilon 3 --out run``.

    python examples/dp_schema.py [--smoke]
"""

import argparse
import tempfile
from pathlib import Path

from trustgen.data.datasets import load_breast_cancer
from trustgen.data.schema import NumericColumn, save_schema
from trustgen.pipeline import train
from trustgen.privacy.config import PrivacyConfig
from trustgen.privacy.dp_domains import infer_dp_schema
from trustgen.training import TrainConfig

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="a few steps only (CI)")
args = ap.parse_args()

work = Path(tempfile.mkdtemp())
df, published = load_breast_cancer()  # stands in for your private table
df.to_csv(work / "table.csv", index=False)

# Public knowledge: the label's classes, and each measurement's published range (its declared
# schema). The DP quantiles narrow each range to where the data lies; with 569 rows and 31
# columns the budget per column is small, so the bounds stay fairly wide (docs/privacy.md).
ranges = {c.name: (c.low, c.high) for c in published.columns if isinstance(c, NumericColumn)}
schema = infer_dp_schema(df, 3.0, categories={"diagnosis": ["malignant", "benign"]}, ranges=ranges,
                         label="diagnosis")
save_schema(schema, work / "schema.json")
for c in schema.columns[:3]:
    print(f"{c.name}: DP bounds [{c.low:g}, {c.high:g}] inside the public range {ranges[c.name]}")

run = train(work / "table.csv", "vae", TrainConfig(steps=5 if args.smoke else 1500, batch_size=64,
                                                     progress=not args.smoke),
            schema=work / "schema.json", privacy=PrivacyConfig(3.0), out=work / "run",
            model_options={"hidden": 16} if args.smoke else None)
print(run.privacy.summary())
