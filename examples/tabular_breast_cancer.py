"""Train a model on a built-in table, sample it, and check utility on real rows.

    python examples/tabular_breast_cancer.py [--model diffusion] [--smoke]
"""

import argparse

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from trustgen.data.loaders import load_data
from trustgen.pipeline import train
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="vae", choices=["vae", "gan", "diffusion"])
ap.add_argument("--smoke", action="store_true", help="a few steps only (CI)")
args = ap.parse_args()

real, schema = load_data("breast_cancer")
run = train(real, args.model, TrainConfig(steps=20 if args.smoke else 3000, progress=not args.smoke), schema=schema)
synth = Sampler(run).sample(2000, seed=0).data
label = schema.label
clf = LogisticRegression(max_iter=5000).fit(synth.drop(columns=[label]), synth[label] == "benign")
auc = roc_auc_score(real[label] == "benign", clf.predict_proba(real.drop(columns=[label]))[:, 1])
print(synth.head())
print(f"train-on-synthetic, test-on-real ROC AUC: {auc:.3f}")
