"""Does the uncertainty of a Bayesian run mean something? Filtering, novelty, calibration.

* **Filtering** (digits, VAE with a mean-field decoder output layer and a Bayesian label
  head, trained on a 70% split): 1,500 samples per seed; drop the 20% with the highest
  uncertainty, or a random 20% (the control), and measure the fidelity of what is left against
  the 30% of real digits the model never saw, in the feature space of
  ``trustgen.evaluation.FeatureExtractor`` (fitted on the training split): precision (k=2 and
  k=5), density (k=5) and the Frechet distance. Scores: ``pixel`` (the mean per-pixel spread
  across 16 posterior draws for the same latent) and ``label`` (the label head's disagreement
  with the asked label over the same draws). Reported: the change each filter makes, mean and
  standard deviation over seeds, and filter minus random, paired by seed.
* **Novelty** (``score_inputs``): ROC AUC of held-out real inputs against out-of-distribution
  ones. Digits: rotated by 90 degrees, inverted, uniform noise, and mirrored (a hard case:
  many digits are near-symmetric). breast_cancer: rows whose columns are shuffled independently
  (every marginal kept, the joint broken) and rows uniform within the schema's bounds.
* **Calibration** (breast_cancer, 5-fold cross-validation, every row predicted once by a model
  that did not train on it): the VAE's label head, deterministic (``mlp``) against Bayesian
  (``bayes-mlp``, posterior predictive over 64 draws), and the deterministic head with a
  post-hoc last-layer Laplace approximation (non-private only: it reads the rows outside DP);
  NLL, ECE (10 bins) and accuracy, non-private and at epsilon 1 (DP runs: batch 128, 800
  steps, lr 1e-2, the head linear by the DP default).

    python benchmarks/uncertainty.py --part filtering --seeds 5     # ~5 min on CPU
    python benchmarks/uncertainty.py --part novelty                  # ~3 min
    python benchmarks/uncertainty.py --part calibration              # ~25 min (DP folds included)
    python benchmarks/uncertainty.py --smoke                         # seconds: CI
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from trustgen.data.datasets import load_breast_cancer, load_digits
from trustgen.data.encoders import ImageData, make_encoder
from trustgen.evaluation.calibration import expected_calibration_error, negative_log_likelihood
from trustgen.evaluation.fidelity_image import FeatureExtractor, frechet_distance, prdc
from trustgen.pipeline import train
from trustgen.privacy.config import PrivacyConfig
from trustgen.sampling import Sampler
from trustgen.training import TrainConfig
from trustgen.uncertainty import posterior_draws, sample_uncertainty, score_inputs
from trustgen.uncertainty.laplace import LastLayerLaplace

ap = argparse.ArgumentParser()
ap.add_argument("--part", nargs="+", default=["filtering", "novelty", "calibration"])
ap.add_argument("--seeds", type=int, default=5)
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--n", type=int, default=1500, help="samples per seed (filtering)")
ap.add_argument("--cv-seed", type=int, default=0, help="calibration: seed of the 5-fold split and the training")
ap.add_argument("--epsilons", nargs="+", default=["none", "1"], help="calibration: 'none' (non-private) and/or epsilons")
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.seeds, args.steps, args.n = 2, 5, 60
torch.set_num_threads(1)
BAYES = {"decoder_net": "bayes-mlp", "label_head": "bayes-mlp"}


def digits_split():
    data, schema = load_digits()
    i_tr, i_te = train_test_split(np.arange(len(data)), test_size=0.3, random_state=0, stratify=data.y)
    return ImageData(data.x[i_tr], data.y[i_tr]), ImageData(data.x[i_te], data.y[i_te]), schema


def fidelity(ft, fs) -> dict[str, float]:
    p2, p5 = prdc(ft, fs, k=2), prdc(ft, fs, k=5)
    return {"precision@2": p2["precision"], "precision@5": p5["precision"], "density@5": p5["density"],
            "FD": frechet_distance(ft, fs)}


def filtering():
    tr, te, schema = digits_split()
    t0 = time.time()
    run = train(tr, "vae", TrainConfig(steps=args.steps, batch_size=128, progress=False, seed=0), schema=schema,
                model_options=BAYES)
    print(f"trained in {time.time() - t0:.0f} s; sampling {args.n} per seed, {args.seeds} seeds")
    fx = FeatureExtractor(epochs=1 if args.smoke else 5).fit(tr.x, tr.y)
    ft = fx.transform(te.x)
    deltas: dict[str, list[dict]] = {"pixel": [], "label": [], "random": []}
    for seed in range(args.seeds):
        batch = Sampler(run).sample(args.n, seed=seed)
        u = sample_uncertainty(run.model, batch.noise, batch.labels, draws=16, seed=seed)
        fs = fx.transform(batch.data.x)
        keep = int(round(0.8 * len(fs)))
        before = fidelity(ft, fs)
        orders = {"pixel": np.argsort(u.score), "label": np.argsort(u.label_disagreement),
                  "random": np.random.default_rng(seed).permutation(len(fs))}
        for name, order in orders.items():
            after = fidelity(ft, fs[order[:keep]])
            deltas[name].append({m: after[m] - before[m] for m in after})
        paired = {name: {m: round(deltas[name][-1][m] - deltas["random"][-1][m], 4) for m in before}
                  for name in ("pixel", "label")}
        print(f"seed {seed}: minus random: {paired}", flush=True)
    print("\nchange in fidelity after dropping 20% (mean +- std over seeds; FD: lower is better)")
    metrics = list(deltas["random"][0])
    rows = []
    for name in deltas:
        d = pd.DataFrame(deltas[name])
        row = {"filter": name}
        for m in metrics:
            row[m] = f"{d[m].mean():+.4f} +- {d[m].std():.4f}"
            if name != "random":
                diff = d[m] - pd.DataFrame(deltas["random"])[m]
                row[m] += f" (vs random {diff.mean():+.4f} +- {diff.std():.4f})"
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False))


def auc(inside: np.ndarray, outside: np.ndarray) -> float:
    return roc_auc_score(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside])


def novelty_table(run, x_in: torch.Tensor, cases: dict[str, torch.Tensor], draws: int, reference: int):
    s_in = score_inputs(run.model, x_in, label_prior=run.label_prior, draws=draws, reference=reference)
    for name, x in cases.items():
        s = score_inputs(run.model, x, label_prior=run.label_prior, draws=draws, reference=reference)
        print(f"  {name:>16}: " + ", ".join(f"{f} {auc(getattr(s_in, f), getattr(s, f)):.3f}"
                                          for f in ("nll", "epistemic", "novelty")))


def novelty():
    tr, te, schema = digits_split()
    run = train(tr, "vae", TrainConfig(steps=args.steps, batch_size=128, progress=False, seed=0), schema=schema,
                model_options=BAYES)
    x = torch.as_tensor(make_encoder(schema).transform(te)[0], dtype=torch.float32)[: 60 if args.smoke else 400]
    g = torch.Generator().manual_seed(0)
    print(f"\nnovelty ROC AUC, digits: {len(x)} held-out real vs as many of each kind")
    draws, ref = (4, 20) if args.smoke else (8, 500)
    novelty_table(run, x, {"rotated 90": torch.rot90(x, 1, (2, 3)), "inverted": -x,
                           "uniform noise": torch.rand(x.shape, generator=g) * 2 - 1,
                           "mirrored": torch.flip(x, (3,))}, draws, ref)
    df, schema = load_breast_cancer()
    tr_df, te_df = train_test_split(df, test_size=0.3, random_state=0, stratify=df["diagnosis"])
    run = train(tr_df.reset_index(drop=True), "vae", TrainConfig(steps=args.steps, batch_size=64, progress=False,
                                                                 seed=0), schema=schema, model_options=BAYES)
    enc = make_encoder(schema)
    x = torch.as_tensor(enc.transform(te_df.reset_index(drop=True))[0], dtype=torch.float32)
    rng = np.random.default_rng(0)
    shuffled = te_df.copy()
    for c in shuffled.columns[:-1]:
        shuffled[c] = rng.permutation(shuffled[c].to_numpy())
    uniform = te_df.copy()
    for col in schema.columns:
        if col.name != "diagnosis":
            uniform[col.name] = rng.uniform(col.low, col.high, len(uniform))
    cases = {name: torch.as_tensor(enc.transform(d.reset_index(drop=True))[0], dtype=torch.float32)
             for name, d in (("columns shuffled", shuffled), ("uniform in bounds", uniform))}
    print(f"\nnovelty ROC AUC, breast_cancer: {len(x)} held-out rows vs as many of each kind")
    novelty_table(run, x, cases, draws, ref)


def calibration():
    df, schema = load_breast_cancer()
    y = (df["diagnosis"] == "benign").to_numpy().astype(int)
    cls = list(schema.classes).index("benign")
    enc = make_encoder(schema)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=args.cv_seed).split(df, y))
    if args.smoke:
        folds = folds[:1]
    rows = []
    for eps in (None if e == "none" else float(e) for e in args.epsilons):
        for head in ("mlp", "bayes-mlp"):
            methods = [head] + (["mlp + last-layer Laplace"] if head == "mlp" and eps is None else [])
            probs = {name: np.zeros(len(df)) for name in methods}
            seen = np.zeros(len(df), dtype=bool)
            t0 = time.time()
            for k, (tr, te) in enumerate(folds):
                # DP: the settings of dp_quality.py for breast_cancer (batch 128, 800 steps), lr 1e-2
                # (the linear DP head moves too slowly at 1e-3 under sigma ~30)
                steps, batch, lr = (args.steps, 64, None) if eps is None else (max(5, args.steps * 4 // 15), 128, 1e-2)
                run = train(df.iloc[tr].reset_index(drop=True), "vae",
                            TrainConfig(steps=steps, batch_size=batch, progress=False, seed=100 * args.cv_seed + k, lr=lr), schema=schema,
                            model_options={"label_head": head},
                            privacy=None if eps is None else PrivacyConfig(epsilon=eps))
                m = run.model.eval()
                x = torch.as_tensor(enc.transform(df.iloc[te].reset_index(drop=True))[0], dtype=torch.float32)
                with torch.no_grad():
                    if m.bayesian:
                        with posterior_draws(m, 64, seed=100 * args.cv_seed + k) as steps_:
                            p = torch.stack([torch.softmax(m.label_logits(x), 1) for _ in steps_]).mean(0)
                    else:
                        p = torch.softmax(m.label_logits(x), 1)
                probs[head][te] = p[:, cls].numpy()
                if len(methods) > 1:  # the post-hoc baseline, fitted on the same training fold
                    x_tr, y_tr = enc.transform(df.iloc[tr].reset_index(drop=True))
                    la = LastLayerLaplace().fit(m, x_tr, y_tr)
                    probs[methods[1]][te] = la.predict_proba(x)[:, cls]
                seen[te] = True
            for name in methods:
                p2 = np.c_[1 - probs[name][seen], probs[name][seen]]
                rows.append({"epsilon": "none" if eps is None else eps, "head": name,
                             "NLL": round(negative_log_likelihood(p2, y[seen]), 4),
                             "ECE": round(expected_calibration_error(p2, y[seen]), 4),
                             "accuracy": round(float(((probs[name][seen] > 0.5) == y[seen]).mean()), 4),
                             "seconds": round(time.time() - t0)})
                print(rows[-1], flush=True)
    print(f"\ncalibration of the label head, breast_cancer, pooled over 5 folds (split seed {args.cv_seed})")
    print(pd.DataFrame(rows).to_string(index=False))


for part in args.part:
    {"filtering": filtering, "novelty": novelty, "calibration": calibration}[part]()
