"""What is the smallest realistic change that flips a classifier's decision, and why?

  1. trains a VAE on breast_cancer (the generative model whose latent space is searched) and a
     small torch classifier of the diagnosis;
  2. asks for counterfactuals of 5 records towards the other diagnosis, with "mean texture"
     held fixed, and prints what changed;
  3. explains each change with Integrated Gradients, the input as the baseline: the
     attributions add up to the change in the classifier's output;
  4. the same question to a scikit-learn random forest, a black box (predict_proba only);
  5. CLUE: for the record a Bayesian classifier is least sure about, the nearest record on the
     data manifold that it is sure about.

    python examples/counterfactuals.py [--smoke]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from trustgen.constraints.space import Space
from trustgen.data.encoders import make_encoder
from trustgen.data.loaders import load_data
from trustgen.explain import attribute, counterfactual
from trustgen.explain.classifier import SchemaClassifier
from trustgen.pipeline import train
from trustgen.training import TrainConfig

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="a few training steps (CI)")
args = ap.parse_args()
steps = 5 if args.smoke else 2000
torch.manual_seed(0)

df, schema = load_data("breast_cancer")
run = train(df, "vae", TrainConfig(steps=steps, progress=False), schema=schema)
space, enc = Space(schema), make_encoder(schema)
features = [c.name for c in schema.feature_columns]



# 1. a classifier of the diagnosis on the data's units
classifier = SchemaClassifier(schema).fit(df, steps=20 if args.smoke else 300)

# 2. counterfactuals of 5 records
rows = df.iloc[:5].reset_index(drop=True)
before = classifier.predict_proba(rows).argmax(1)
target = 1 - before
res = counterfactual(classifier, rows, target, run, labels=target, immutable=["mean texture"])
for i in range(len(rows)):
    moved = [(f, rows.loc[i, f], res.counterfactuals.loc[i, f]) for f in features
             if abs(res.counterfactuals.loc[i, f] - rows.loc[i, f]) > 0.01 * (schema.column(f).high - schema.column(f).low)]
    print(f"record {i}: {schema.classes[before[i]]} -> {schema.classes[target[i]]} "
          f"(p {res.probs_before[i, target[i]]:.2f} -> {res.probs_after[i, target[i]]:.2f}, valid {res.valid[i]}); "
          f"{len(moved)} features changed: " + ", ".join(f"{f} {a:.3g}->{b:.3g}" for f, a, b in moved[:4])
          + (" ..." if len(moved) > 4 else ""))
assert (res.counterfactuals["mean texture"].to_numpy() == rows["mean texture"].to_numpy()).all()

# 3. why: what each feature's change adds to the target (the input as the baseline)
a = attribute(classifier, space.data_units(res.counterfactuals).float(), target, space.data_units(rows).float())
top = np.argsort(-np.abs(a.values[0]))[:3]
print("record 0, the features that carry the change: " + ", ".join(f"{features[j]} {a.values[0, j]:+.3f}" for j in top)
      + f" (completeness error {abs(a.delta[0]):.1e})")

# 4. a black box: a scikit-learn model the search can only ask for probabilities
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

forest = RandomForestClassifier(50, random_state=0).fit(df[features], df["diagnosis"])
bb = counterfactual(forest, rows, target, run, labels=target)
print(f"random forest (black box, {bb.method}): valid {bb.valid.mean():.0%}, features changed "
      f"{bb.changed.tolist()}")

# 5. CLUE: why is a Bayesian classifier unsure about a record?
from trustgen.explain import clue  # noqa: E402

bayes = SchemaClassifier(schema, bayesian=True).fit(df, steps=20 if args.smoke else 300)
p = bayes.predict_proba(df)
least = int(np.argmax(-(p * np.log(p + 1e-12)).sum(1)))
unsure = df.iloc[[least]].reset_index(drop=True)
c = clue(bayes, unsure, run, labels=p[[least]].argmax(1))
moved = [f for f in features if abs(c.explanations.loc[0, f] - unsure.loc[0, f]) > 0.01 * (
    schema.column(f).high - schema.column(f).low)]
print(f"least certain record: entropy {c.entropy_before[0]:.3f} -> {c.entropy_after[0]:.3f} nats "
      f"({schema.classes[c.prediction_after[0]]}), changing {len(moved)} features: {', '.join(moved[:5])}")
