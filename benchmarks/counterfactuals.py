"""Counterfactuals on breast_cancer: trustgen's on-manifold search beside DiCE, one classifier,
over several splits; then CLUE; then digits.

Per split seed (``--seeds``, default 3: seeds 0, 1, 2), a VAE (3,000 steps) and an MLP classifier
(``SchemaClassifier``) are trained on a 70% split; the queries are held-out records, each asked to
flip to the other class. For every method, on the same queries and the same classifier:

* validity: share whose counterfactual the classifier assigns to the target (p > 0.5);
* proximity: L1 distance to the query, each feature in units of its training-set std;
* sparsity: features changed (numbers by more than 1% of their public range);
* plausibility: share of local-outlier-factor inliers (LOF, 20 neighbours, fitted on the
  training split) and the share of the 5 nearest training records that carry the target label;
* seconds per query (CPU; all queries of a method in one call).

trustgen's rows: the default (gradient through the decoder, then sparsified); the decoded
counterfactual itself (not sparsified); a threshold of 0.9 (further into the target class); the
black-box path (the same classifier through ``predict_proba`` only: sphere search in latent
space); three diverse counterfactuals per query (with their mean pairwise L1 distance). The
table shows the mean over seeds with the standard deviation in brackets.

CLUE (uncertainty explanations): per seed, a Bayesian ``SchemaClassifier`` (mean-field) on the
same split; the 20 held-out records with the highest predictive entropy; trustgen's CLUE (the
default objective, and the closest candidate below 0.2 nats) beside two baselines: the same
objective descended in input space (no generative model), and the
nearest training record the classifier is sure of (entropy < 0.05). Entropy before and after,
distance, features changed, LOF inliers.

Then digits: a VAE of 3,000 steps and a ``SchemaClassifier`` on a 70% split, 20 held-out digits
each asked to become the next digit; trustgen with and without sparsification beside DiCE
(random and genetic), which searches the 64 raw pixels as continuous features within the
schema's public range 0..16. The same measures for every method: validity (p > 0.5), pixels
changed (of 64, by more than 1% of the range), LOF inliers and the share of the 5 nearest
training digits (pixel space) with the target label, seconds per query.

DiCE (``dice-ml``, random and genetic) is a benchmark-only extra: ``pip install dice-ml``;
without it its rows are left out and the script says so. DiCE gets the classifier as a
``predict_proba`` on DataFrames.

    python benchmarks/counterfactuals.py --queries 30 --seeds 3
    python benchmarks/counterfactuals.py --smoke
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

from trustgen.constraints.space import Space
from trustgen.data.datasets import load_breast_cancer
from trustgen.data.encoders import make_encoder
from trustgen.explain import clue, counterfactual
from trustgen.explain.classifier import SchemaClassifier
from trustgen.explain.scorer import TorchScorer, entropy
from trustgen.pipeline import train
from trustgen.training import TrainConfig

ap = argparse.ArgumentParser()
ap.add_argument("--queries", type=int, default=30)
ap.add_argument("--seeds", type=int, default=3)
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.queries, args.steps, args.seeds = 4, 5, 1
torch.set_num_threads(1)
torch.manual_seed(0)
try:
    import dice_ml
except ImportError:
    dice_ml = None
    print("dice-ml is not installed: DiCE rows left out (pip install dice-ml, a benchmark-only extra)")

df, schema = load_breast_cancer()
features = [c.name for c in schema.feature_columns]
space, enc = Space(schema), make_encoder(schema)
span = np.array([schema.column(f).high - schema.column(f).low for f in features])


class RawProba:
    """A classifier for DiCE and for trustgen's black-box path: scores any values, also outside the
    schema's bounds (DiCE random proposes some; SchemaClassifier.predict_proba would refuse them).
    Every feature of breast_cancer is a number, so units are the columns themselves."""

    def __init__(self, clf):
        self.clf = clf

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.clf(torch.tensor(frame[features].to_numpy(dtype=np.float32))), 1).numpy()


def split(seed):
    tr, te = train_test_split(df, test_size=0.3, random_state=seed, stratify=df["diagnosis"])
    return tr.reset_index(drop=True), te.reset_index(drop=True)


def breast_cancer(seed: int) -> list[dict]:
    tr, te = split(seed)
    run = train(tr, "vae", TrainConfig(steps=args.steps, batch_size=64, progress=False, seed=seed), schema=schema)
    clf = SchemaClassifier(schema).fit(tr, seed=seed)
    proba = RawProba(clf)
    y_tr = enc.transform(tr)[1]
    queries = te.iloc[: args.queries].reset_index(drop=True)
    target = 1 - clf.predict_proba(queries).argmax(1)
    print(f"seed {seed}: classifier accuracy on the held-out 30%: "
          f"{(clf.predict_proba(te).argmax(1) == enc.transform(te)[1]).mean():.3f}; {len(queries)} queries")
    std = tr[features].std().to_numpy()
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(tr[features].to_numpy() / std)
    nn_index = NearestNeighbors(n_neighbors=5).fit(tr[features].to_numpy() / std)

    def metrics(name: str, cf: pd.DataFrame, seconds: float, per: int = 1) -> dict:
        q, t = queries[features].to_numpy().repeat(per, 0), target.repeat(per)
        ok = ~cf[features].isna().any(axis=1).to_numpy()
        p = np.zeros((len(cf), 2))
        if ok.any():
            p[ok] = proba.predict_proba(cf[ok])
        valid = ok & (p[np.arange(len(cf)), t] > 0.5)
        c = cf[features].to_numpy(dtype=float)
        changed = (np.abs(c - q) > 0.01 * span).sum(1)
        inlier, agree = np.zeros(len(cf), dtype=bool), np.full(len(cf), np.nan)
        if ok.any():
            inlier[ok] = lof.predict(c[ok] / std) == 1
            _, idx = nn_index.kneighbors(c[ok] / std)
            agree[ok] = (y_tr[idx] == t[ok, None]).mean(1)
        row = {"method": name, "validity": valid.mean(), "proximity_L1_std": np.nan, "features_changed": np.nan,
               "LOF_inliers": np.nan, "neighbours_with_target": np.nan, "s_per_query": seconds / len(queries)}
        if valid.any():
            row.update(proximity_L1_std=(np.abs(c - q) / std)[valid].sum(1).mean(),
                       features_changed=changed[valid].mean(), LOF_inliers=inlier[valid].mean(),
                       neighbours_with_target=np.nanmean(agree[valid]))
        if per > 1:  # diversity: mean pairwise L1 (stds) among a query's valid counterfactuals
            g, v = (c / std).reshape(len(queries), per, -1), valid.reshape(len(queries), per)
            pairs = [np.abs(g[i, a] - g[i, b]).sum() for i in range(len(queries)) for a in range(per)
                     for b in range(a + 1, per) if v[i, a] and v[i, b]]
            row["diversity_L1_std"] = float(np.mean(pairs)) if pairs else np.nan
        return row

    rows = []
    for name, kwargs in (("trustgen (gradient + sparsify)", {}),
                         ("trustgen decoded (no sparsify)", {"sparsify": False}),
                         ("trustgen threshold 0.9", {"threshold": 0.9}),
                         ("trustgen black box (predict_proba only)", {"model": proba})):
        t0 = time.perf_counter()
        res = counterfactual(kwargs.pop("model", clf), queries, target, run, labels=target, **kwargs)
        rows.append(metrics(name, res.counterfactuals, time.perf_counter() - t0))
    t0 = time.perf_counter()
    res = counterfactual(clf, queries, target, run, labels=target, n_counterfactuals=3)
    rows.append(metrics("trustgen, 3 diverse per query", res.counterfactuals, time.perf_counter() - t0, per=3))
    if dice_ml is not None:
        frame = tr[features].assign(diagnosis=y_tr)
        d = dice_ml.Data(dataframe=frame, continuous_features=features, outcome_name="diagnosis")
        m = dice_ml.Model(model=proba, backend="sklearn")
        for method in ("random", "genetic"):
            explainer = dice_ml.Dice(d, m, method=method)
            out, errors = [], []
            np.random.seed(seed)  # genetic takes no seed and draws from both streams
            random.seed(seed)
            t0 = time.perf_counter()
            for i in range(len(queries)):
                try:
                    seeded = {"random_seed": seed} if method == "random" else {}
                    e = explainer.generate_counterfactuals(queries.iloc[[i]][features], total_CFs=1,
                                                           desired_class=int(target[i]), verbose=False, **seeded)
                    cf = e.cf_examples_list[0].final_cfs_df
                    out.append(cf[features].iloc[0] if cf is not None and len(cf) else pd.Series(np.nan, features))
                except Exception as err:  # DiCE raises when it finds none: counted invalid
                    errors.append(f"{type(err).__name__}: {str(err)[:120]}")
                    out.append(pd.Series(np.nan, index=features))
            if errors:
                print(f"DiCE {method}: none found for {len(errors)} of {len(queries)} queries (first: {errors[0]})")
            rows.append(metrics(f"DiCE {method}", pd.DataFrame(out).reset_index(drop=True), time.perf_counter() - t0))
    rows += clue_rows(seed, tr, te, run, std, lof)
    return rows


def clue_rows(seed, tr, te, run, std, lof) -> list[dict]:
    """CLUE beside input-space descent and the nearest confident training record."""
    bayes = SchemaClassifier(schema, bayesian=True).fit(tr, seed=seed)
    scorer = TorchScorer(bayes, space, draws=16, seed=seed)
    x_te = torch.as_tensor(enc.transform(te)[0], dtype=torch.float32)
    with torch.no_grad():
        h = entropy(scorer.probs(x_te)).numpy()
    order = np.argsort(-h, kind="stable")[: min(20, args.queries)]
    q = te.iloc[order].reset_index(drop=True)
    qx = x_te[order]

    def row(name, cf: pd.DataFrame, seconds):
        c = torch.as_tensor(enc.transform(cf.assign(diagnosis=q["diagnosis"]))[0], dtype=torch.float32)
        with torch.no_grad():
            p = scorer.probs(c)
        d = np.abs(cf[features].to_numpy(dtype=float) - q[features].to_numpy()) / std
        return {"method": name, "entropy_before": h[order].mean(), "entropy_after": entropy(p).mean().item(),
                "proximity_L1_std": d.sum(1).mean(),
                "features_changed": (d * std > 0.01 * span).sum(1).mean(),
                "LOF_inliers": (lof.predict(cf[features].to_numpy(dtype=float) / std) == 1).mean(),
                "s_per_query": seconds / len(q)}

    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        predicted = scorer.probs(qx).argmax(1).numpy()  # the run is conditioned as the CLI does: on the prediction
    res = clue(bayes, q, run, labels=predicted, seed=seed)
    out.append(row("CLUE (trustgen, VAE latent)", res.explanations, time.perf_counter() - t0))
    t0 = time.perf_counter()
    res = clue(bayes, q, run, labels=predicted, below=0.2, seed=seed)
    out.append(row("CLUE, closest below 0.2 nats", res.explanations, time.perf_counter() - t0))
    t0 = time.perf_counter()
    x = qx.clone().requires_grad_(True)  # the same objective, descended on the record itself
    opt = torch.optim.Adam([x], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        (entropy(scorer.probs(x.clamp(-1, 1))) + 0.05 * (x.clamp(-1, 1) - qx).abs().sum(1)).sum().backward()
        opt.step()
    moved = space.units_to_data(space.to_units(x.detach().clamp(-1, 1).double()), np.zeros(len(q), dtype=np.int64))
    out.append(row("input-space descent (no generator)", moved, time.perf_counter() - t0))
    t0 = time.perf_counter()
    x_tr = torch.as_tensor(enc.transform(tr)[0], dtype=torch.float32)
    with torch.no_grad():
        sure = (entropy(scorer.probs(x_tr)) < 0.05).numpy()
    pool = tr[features].to_numpy()[sure] / std
    nearest = np.abs(q[features].to_numpy()[:, None] / std - pool[None]).sum(-1).argmin(1)
    out.append(row("nearest confident training record", tr[features][sure].iloc[nearest].reset_index(drop=True),
                   time.perf_counter() - t0))
    for r in out:
        r["seed"] = seed
    return out


rows = []
for seed in range(args.seeds):
    rows += [{**r, "seed": seed} for r in breast_cancer(seed)]
table = pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds, standard deviation in brackets."""
    cols = [c for c in frame.columns if c not in ("method", "seed")]
    g = frame.groupby("method", sort=False)[cols]
    mean, sd = g.mean(), g.std()
    fmt = lambda m, s: "" if np.isnan(m) else (f"{m:.3f}" if np.isnan(s) else f"{m:.3f} ({s:.3f})")  # noqa: E731
    return pd.DataFrame({c: [fmt(m, s) for m, s in zip(mean[c], sd[c])] for c in cols}, index=mean.index)


cf_table = table[table["entropy_before"].isna()].drop(columns=["entropy_before", "entropy_after"])
print(f"\nbreast_cancer counterfactuals, {args.seeds} split seeds x {args.queries} queries")
print(summarise(cf_table.dropna(axis=1, how="all")).to_string())
print(f"\nbreast_cancer CLUE: the {min(20, args.queries)} most uncertain held-out records per seed, Bayesian MLP")
print(summarise(table[table["entropy_before"].notna()].dropna(axis=1, how="all")).to_string())


# ---------------------------------------------------------------------------------- digits
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
if dice_ml is not None:
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
