"""Counterfactuals on breast_cancer: trustgen's on-manifold search beside DiCE, one classifier.

A VAE (3,000 steps, seed 0) and an MLP classifier are trained on a 70% split; the queries are
held-out records, each asked to flip to the other class. For every method, on the same queries
and the same classifier:

* validity: share whose counterfactual the classifier assigns to the target (p > 0.5);
* proximity: L1 distance to the query, each feature in units of its training-set std;
* sparsity: features changed (numbers by more than 1% of their public range);
* plausibility: share of local-outlier-factor inliers (LOF, 20 neighbours, fitted on the
  training split) and the share of the 5 nearest training records that carry the target label;
* seconds per query (CPU; all queries of a method in one call).

Then digits: a VAE of 3,000 steps and a ``SchemaClassifier`` on a 70% split, 20 held-out digits
each asked to become the next digit; trustgen with and without sparsification beside DiCE
(random and genetic), which searches the 64 raw pixels as continuous features within the
schema's public range 0..16. The same measures for every method: validity (p > 0.5), pixels
changed (of 64, by more than 1% of the range), LOF inliers and the share of the 5 nearest
training digits (pixel space) with the target label, seconds per query.

DiCE (``dice-ml``, random and genetic) is a benchmark-only extra: ``pip install dice-ml``;
without it its rows are left out and the script says so. DiCE gets the classifier as a
``predict_proba`` on DataFrames.

    python benchmarks/counterfactuals.py --queries 30
    python benchmarks/counterfactuals.py --smoke
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

from trustgen.constraints.space import Space
from trustgen.data.datasets import load_breast_cancer
from trustgen.data.encoders import make_encoder
from trustgen.explain import counterfactual
from trustgen.explain.classifier import SchemaClassifier
from trustgen.pipeline import train
from trustgen.training import TrainConfig

ap = argparse.ArgumentParser()
ap.add_argument("--queries", type=int, default=30)
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.queries, args.steps = 4, 5
torch.set_num_threads(1)
torch.manual_seed(0)

df, schema = load_breast_cancer()
tr, te = train_test_split(df, test_size=0.3, random_state=0, stratify=df["diagnosis"])
tr, te = tr.reset_index(drop=True), te.reset_index(drop=True)
features = [c.name for c in schema.feature_columns]
space, enc = Space(schema), make_encoder(schema)
run = train(tr, "vae", TrainConfig(steps=args.steps, batch_size=64, progress=False, seed=0), schema=schema)


clf = SchemaClassifier(schema).fit(tr)
x_tr, y_tr = enc.transform(tr)


class RawProba:
    """The same classifier for DiCE: scores any values, also outside the schema's bounds (DiCE
    random proposes some; SchemaClassifier.predict_proba would refuse them). Every feature of
    breast_cancer is a number, so units are the columns themselves."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(clf(torch.as_tensor(frame[features].to_numpy(dtype=np.float32))), 1).numpy()


queries = te.iloc[: args.queries].reset_index(drop=True)
pred = clf.predict_proba(queries).argmax(1)
target = 1 - pred
print(f"classifier accuracy on the held-out 30%: {(clf.predict_proba(te).argmax(1) == enc.transform(te)[1]).mean():.3f}; "
      f"{len(queries)} queries")

std = tr[features].std().to_numpy()
lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(tr[features].to_numpy() / std)
nn_index = NearestNeighbors(n_neighbors=5).fit(tr[features].to_numpy() / std)


def metrics(name: str, cf: pd.DataFrame, seconds: float) -> dict:
    ok = ~cf[features].isna().any(axis=1).to_numpy()
    p = np.zeros((len(cf), 2))
    if ok.any():
        p[ok] = RawProba().predict_proba(cf[ok])
    valid = ok & (p[np.arange(len(cf)), target] > 0.5)
    q, c = queries[features].to_numpy(), cf[features].to_numpy(dtype=float)
    span = np.array([schema.column(f).high - schema.column(f).low for f in features])
    changed = (np.abs(c - q) > 0.01 * span).sum(1)
    scaled = c[ok] / std
    inlier = np.zeros(len(cf), dtype=bool)
    if ok.any():
        inlier[ok] = lof.predict(scaled) == 1
    agree = np.full(len(cf), np.nan)
    if ok.any():
        _, idx = nn_index.kneighbors(scaled)
        agree[ok] = (y_tr[idx] == target[ok, None]).mean(1)
    return {"method": name, "validity": valid.mean(), "proximity_L1_std": (np.abs(c - q) / std)[valid].sum(1).mean()
            if valid.any() else np.nan, "features_changed": changed[valid].mean() if valid.any() else np.nan,
            "LOF_inliers": inlier[valid].mean() if valid.any() else np.nan,
            "neighbours_with_target": np.nanmean(agree[valid]) if valid.any() else np.nan,
            "s_per_query": seconds / len(cf)}


rows = []
t0 = time.perf_counter()
res = counterfactual(clf, queries, target, run, labels=target)
rows.append(metrics("trustgen (VAE latent + sparsify)", res.counterfactuals, time.perf_counter() - t0))
try:
    import dice_ml
except ImportError:
    print("dice-ml is not installed: DiCE rows left out (pip install dice-ml, a benchmark-only extra)")
else:
    frame = tr[features].assign(diagnosis=y_tr)
    d = dice_ml.Data(dataframe=frame, continuous_features=features, outcome_name="diagnosis")
    m = dice_ml.Model(model=RawProba(), backend="sklearn")
    for method in ("random", "genetic"):
        explainer = dice_ml.Dice(d, m, method=method)
        out = []
        t0 = time.perf_counter()
        for i in range(len(queries)):
            try:
                seeded = {"random_seed": 0} if method == "random" else {}  # genetic takes no seed
                e = explainer.generate_counterfactuals(queries.iloc[[i]][features], total_CFs=1,
                                                       desired_class=int(target[i]), verbose=False, **seeded)
                cf = e.cf_examples_list[0].final_cfs_df
                out.append(cf[features].iloc[0] if cf is not None and len(cf) else pd.Series(np.nan, features))
            except Exception as err:  # DiCE raises when it finds none: counted invalid
                if i == 0:
                    print(f"DiCE {method}, first query: {type(err).__name__}: {str(err)[:200]}")
                out.append(pd.Series(np.nan, index=features))
        rows.append(metrics(f"DiCE {method}", pd.DataFrame(out).reset_index(drop=True), time.perf_counter() - t0))
table = pd.DataFrame(rows)
print(table.round(3).to_string(index=False))


# ---------------------------------------------------------------------------------- digits
import random  # noqa: E402

from trustgen.data.datasets import load_digits  # noqa: E402
from trustgen.data.encoders import ImageData  # noqa: E402

data, dschema = load_digits()
i_tr, i_te = train_test_split(np.arange(len(data)), test_size=0.3, random_state=0, stratify=data.y)
dtr, dte = ImageData(data.x[i_tr], data.y[i_tr]), ImageData(data.x[i_te], data.y[i_te])
drun = train(dtr, "vae", TrainConfig(steps=args.steps, batch_size=128, progress=False, seed=0), schema=dschema)
dclf = SchemaClassifier(dschema, hidden=64).fit(dtr, steps=300)
nq = min(20, args.queries)
dq = ImageData(dte.x[:nq], dte.y[:nq])
dtarget = (dclf.predict_proba(dq).argmax(1) + 1) % 10
pixels = [f"pixel_{i}" for i in range(64)]  # row-major 8 x 8
dflat, dq_flat = dtr.x.reshape(len(dtr.x), -1), dq.x.reshape(nq, -1)
dlof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(dflat)
dnn_index = NearestNeighbors(n_neighbors=5).fit(dflat)


class PixelProba:
    """dclf for DiCE: a DataFrame of the 64 pixel columns -> probabilities of the 10 digits (the
    classifier's units are the pixel values themselves)."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(dclf(torch.tensor(frame[pixels].to_numpy(dtype=np.float32))), 1).numpy()


def dmetrics(name: str, cf: np.ndarray, seconds: float) -> dict:
    """The same measures for every method; ``cf`` is [nq, 64] pixels, a NaN row where none was found."""
    ok = ~np.isnan(cf).any(1)
    p = np.zeros((nq, 10))
    if ok.any():
        p[ok] = PixelProba().predict_proba(pd.DataFrame(cf[ok], columns=pixels))
    valid = ok & (p[np.arange(nq), dtarget] > 0.5)
    row = {"digits": name, "validity": valid.mean(), "pixels_changed": np.nan, "LOF_inliers": np.nan,
           "neighbours_with_target": np.nan, "s_per_query": seconds / nq}
    if valid.any():
        c = cf[valid]
        _, idx = dnn_index.kneighbors(c)
        row.update(pixels_changed=(np.abs(c - dq_flat[valid]) > 0.01 * (dschema.high - dschema.low)).sum(1).mean(),
                   LOF_inliers=(dlof.predict(c) == 1).mean(),
                   neighbours_with_target=(dtr.y[idx] == dtarget[valid, None]).mean())
    return row


print(f"\ndigits: classifier accuracy {(dclf.predict_proba(dte).argmax(1) == dte.y).mean():.3f}; {nq} queries, "
      "each to the next digit; DiCE on the 64 pixels as continuous features in the schema's [0, 16]")
drows = []
for sparse in (False, True):
    t0 = time.perf_counter()
    r = counterfactual(dclf, dq, dtarget, drun, labels=dtarget, sparsify=sparse)
    drows.append(dmetrics("sparsified" if sparse else "decoded (default)", r.counterfactuals.x.reshape(nq, -1),
                          time.perf_counter() - t0))
try:
    import dice_ml  # the module imported above, if it was
except ImportError:
    print("dice-ml is not installed: DiCE rows left out")
else:
    frame = pd.DataFrame(dflat, columns=pixels).assign(label=dtr.y)
    d = dice_ml.Data(dataframe=frame, continuous_features=pixels, outcome_name="label",
                     permitted_range={p: [dschema.low, dschema.high] for p in pixels})  # the schema's 0..16
    m = dice_ml.Model(model=PixelProba(), backend="sklearn")
    dqf = pd.DataFrame(dq_flat, columns=pixels)
    for method in ("random", "genetic"):
        explainer = dice_ml.Dice(d, m, method=method)
        out, errors = np.full((nq, 64), np.nan), []
        np.random.seed(0)  # genetic takes no seed and draws from both streams
        random.seed(0)
        t0 = time.perf_counter()
        for i in range(nq):
            try:
                seeded = {"random_seed": 0} if method == "random" else {}
                e = explainer.generate_counterfactuals(dqf.iloc[[i]], total_CFs=1, desired_class=int(dtarget[i]),
                                                       verbose=False, **seeded)
                cf = e.cf_examples_list[0].final_cfs_df
                if cf is not None and len(cf):
                    out[i] = cf[pixels].iloc[0].to_numpy(dtype=float)
            except Exception as err:  # DiCE raises when it finds none: counted invalid
                errors.append(f"{type(err).__name__}: {str(err)[:120]}")
        if errors:
            print(f"DiCE {method}: none found for {len(errors)} of {nq} digits (first: {errors[0]})")
        drows.append(dmetrics(f"DiCE {method}", out, time.perf_counter() - t0))
print(pd.DataFrame(drows).round(3).to_string(index=False))
