"""Non-private sample quality: train-on-synthetic, test-on-real (TSTR).

digits: a logistic regression trained on 2,000 samples per family (labels from conditioning,
drawn uniformly over the 10 classes) and tested on the real digits; label coverage beside it.
breast_cancer: ROC AUC of a logistic regression trained on synthetic rows, tested on real rows.

The models are trained on the full dataset (the issue's protocol: "tested on the real digits");
with --holdout the test set is a 30% split the model never saw (stricter).

    python benchmarks/quality.py --families vae gan diffusion --seed 0 [--holdout]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trustgen.data.encoders import ImageData
from trustgen.data.loaders import load_data
from trustgen.evaluation.utility import tstr
from trustgen.pipeline import train
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler

# Settings per (dataset, family): public choices, the same for every seed.
STEPS = {
    ("digits", "vae"): 3000, ("digits", "gan"): 6000, ("digits", "diffusion"): 4000,
    ("breast_cancer", "vae"): 3000, ("breast_cancer", "gan"): 4000, ("breast_cancer", "diffusion"): 4000,
}


def split(name: str, data, seed: int, holdout: bool):
    if not holdout:
        return data, data
    if isinstance(data, ImageData):
        i_tr, i_te = train_test_split(np.arange(len(data)), test_size=0.3, random_state=seed, stratify=data.y)
        return ImageData(data.x[i_tr], data.y[i_tr]), ImageData(data.x[i_te], data.y[i_te])
    tr, te = train_test_split(data, test_size=0.3, random_state=seed, stratify=data.iloc[:, -1])
    return tr.reset_index(drop=True), te.reset_index(drop=True)


def logreg():
    """The benchmarks' classifier (the one behind the README's numbers): standardised logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def evaluate_digits(run, test: ImageData, seed: int) -> dict:
    s = Sampler(run).sample(2000, labels=np.arange(2000) % 10, seed=seed)
    xs = s.data.x.reshape(2000, -1)
    acc = tstr(xs, s.labels, test.x.reshape(len(test), -1), test.y, models={"logistic": logreg()})["logistic"]["accuracy"]
    # Label coverage: a classifier trained on real images, applied to each class's samples.
    real_clf = logreg().fit(test.x.reshape(len(test), -1), test.y)
    pred = real_clf.predict(xs)
    per_class = [float(np.mean(pred[s.labels == c] == c)) for c in range(10)]
    return {"tstr_accuracy": round(float(acc), 4), "label_coverage": int(sum(p >= 0.5 for p in per_class)),
            "per_class_recognised": [round(p, 3) for p in per_class]}


def evaluate_table(run, test, seed: int) -> dict:
    s = Sampler(run).sample(2000, seed=seed)
    label = run.schema.label
    xs, ys = s.data.drop(columns=[label]), s.data[label]
    classes = run.schema.classes
    if ys.nunique() < 2:
        return {"tstr_auc": 0.5, "note": "samples contain a single class"}
    # positive class: the schema's second class (as booleans, so tstr's positive class is the same)
    auc = tstr(xs, (ys == classes[1]).to_numpy(), test.drop(columns=[label]), (test[label] == classes[1]).to_numpy(),
               models={"logistic": logreg()})["logistic"]["roc_auc"]
    return {"tstr_auc": round(float(auc), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["digits", "breast_cancer"])
    ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", action="store_true")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply training steps (smoke runs)")
    args = ap.parse_args(argv)
    results = []
    for ds in args.datasets:
        data, schema = load_data(ds)
        tr, te = split(ds, data, args.seed, args.holdout)
        for fam in args.families:
            steps = max(1, int(STEPS[(ds, fam)] * args.steps_scale))
            t0 = time.time()
            run = train(tr, fam, TrainConfig(steps=steps, batch_size=128, seed=args.seed, progress=False), schema=schema)
            t1 = time.time()
            ev = evaluate_digits(run, te, args.seed) if ds == "digits" else evaluate_table(run, te, args.seed)
            row = {"dataset": ds, "family": fam, "seed": args.seed, "steps": steps, "holdout": args.holdout,
                   "train_seconds": round(t1 - t0, 1), **ev}
            results.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
