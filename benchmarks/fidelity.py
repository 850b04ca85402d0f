"""Fidelity and utility of DP synthetic tables, side by side with MST and AIM, on a holdout.

For every table, family, epsilon and seed: train on 70% (stratified split by the seed), sample
as many rows as the holdout has (at least 2,000), and measure against the 30% holdout the model
never saw (trustgen.evaluation.marginal_distances: every number in 10 bins over its declared
range):

* mean 1-way and 2-way total-variation distances, the largest label-rate gap (percentage points);
* TSTR ROC AUC of a logistic regression and of gradient boosting trained on the synthetic rows;
* the same for a real baseline: the training rows themselves (a bootstrap of the same size).

Tables: ``breast_cancer`` (569 rows, 31 columns), ``randhie`` (20,190 rows), and ``rare``, built
here with a known density: 10,000 rows, ages on 5-year bands, a skewed income, a region with a
2% category, an event label of about 4%. Two more, from statsmodels, never used to choose a
setting (added 2026-12-04 as out-of-sample checks): ``anes96`` (944 rows of a 1996 election
survey, 7-point scales, label: the vote) and ``fair`` (6,366 rows of a survey on affairs:
banded ages, years married in steps, counts; label: any affair). Their domains are declared
from the codebooks, not read from the rows.

Peers: with ``--peers-python PATH`` (the python of smartnoise-synth's own virtualenv, see
STACK-NOTES), MST and AIM run through benchmarks/marginal_peers.py on the same split, domain
and epsilon.

    python benchmarks/fidelity.py --tables rare randhie breast_cancer --families vae gan diffusion \
        --epsilons 1 10 --seeds 0 1 2 [--peers-python /path/to/snsynth/bin/python] [--rows N] [--smoke]

``--rows N`` first draws N rows of each table (one fixed draw, stratified by the label): a
smaller table of the same kind, where the plan chooses a larger marginal share. It keeps the
table's steps and batch size.

Prints one JSON line per run, then mean and spread (sd over seeds) per table, method, epsilon.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from quality import logreg

from trustgen.data.loaders import load_data
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.evaluation.marginal_distances import marginal_distances
from trustgen.evaluation.utility import tstr
from trustgen.pipeline import train
from trustgen.privacy.config import PrivacyConfig
from trustgen.sampling import Sampler
from trustgen.training import TrainConfig

HERE = Path(__file__).resolve().parent
# Public settings per table (never tuned on a holdout).
STEPS = {"breast_cancer": 800, "randhie": 1500, "rare": 1500, "anes96": 800, "fair": 1500}
BATCH = {"breast_cancer": 128, "randhie": 256, "rare": 256, "anes96": 128, "fair": 256}
RARE_SCHEMA = TabularSchema([NumericColumn("age", 20, 80, integer=True), NumericColumn("income", 0, 200),
                             CategoricalColumn("region", ("north", "south", "east", "west", "island")),
                             NumericColumn("visits", 0, 12, integer=True), CategoricalColumn("event", ("no", "yes"))],
                            label="event", source="declared")


def rare_table(n: int = 10_000, seed: int = 1234) -> pd.DataFrame:
    """A table whose density is known: banded ages, a log-normal income, a 2% region, Poisson
    visits, and an event of about 4% whose log-odds rise with age and visits."""
    rng = np.random.default_rng(seed)
    age = 20 + 5 * rng.integers(0, 13, n)
    income = np.clip(rng.lognormal(3.6, 0.5, n), 0, 200)
    region = rng.choice(RARE_SCHEMA.column("region").categories, n, p=[0.4, 0.3, 0.18, 0.1, 0.02])
    visits = np.clip(rng.poisson(1.5 + (age - 20) / 30), 0, 12)
    logit = -5.2 + 0.04 * (age - 20) + 0.35 * visits - 0.01 * income + 1.5 * (region == "island")
    event = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"age": age, "income": income, "region": region, "visits": visits, "event": event})


ANES_SCALES = {"TVnews": (0, 7), "selfLR": (1, 7), "ClinLR": (1, 7), "DoleLR": (1, 7), "PID": (0, 6), "educ": (1, 7),
               "income": (1, 24), "age": (18, 95)}
ANES_SCHEMA = TabularSchema([NumericColumn("popul", 0, 10000)]
                            + [NumericColumn(k, lo, hi, integer=True) for k, (lo, hi) in ANES_SCALES.items()]
                            + [CategoricalColumn("vote", ("clinton", "dole"))], label="vote", source="declared")
FAIR_SCALES = {"rate_marriage": (1, 5), "religious": (1, 4), "educ": (9, 20), "occupation": (1, 6),
               "occupation_husb": (1, 6)}
FAIR_SCHEMA = TabularSchema([NumericColumn("age", 17, 45), NumericColumn("yrs_married", 0, 25),
                             NumericColumn("children", 0, 6)]
                            + [NumericColumn(k, lo, hi, integer=True) for k, (lo, hi) in FAIR_SCALES.items()]
                            + [CategoricalColumn("affair", ("no", "yes"))], label="affair", source="declared")


def survey_table(name: str) -> tuple[pd.DataFrame, TabularSchema]:
    """statsmodels' anes96 or fair, with the label made categorical and the scales whole."""
    from statsmodels import datasets

    if name == "anes96":
        d = datasets.anes96.load_pandas().data.drop(columns=["logpopul"])  # a function of popul
        d["vote"] = np.where(d["vote"] > 0.5, "dole", "clinton")
        scales, schema = ANES_SCALES, ANES_SCHEMA
    else:
        d = datasets.fair.load_pandas().data
        d["affair"] = np.where(d.pop("affairs") > 0, "yes", "no")
        scales, schema = FAIR_SCALES, FAIR_SCHEMA
    for c in scales:
        d[c] = d[c].round().astype(int)
    return d[[c.name for c in schema.columns]], schema


def table(name: str):
    if name == "rare":
        return rare_table(), RARE_SCHEMA
    if name in ("anes96", "fair"):
        return survey_table(name)
    return load_data(name)


def as_strings(df: pd.DataFrame, schema) -> pd.DataFrame:
    cats = [c.name for c in schema.columns if isinstance(c, CategoricalColumn)]
    return df.astype({c: str for c in cats})


def utility(synth: pd.DataFrame, test: pd.DataFrame, schema) -> dict:
    label, pos = schema.label, str(schema.classes[-1])
    ys = (synth[label].astype(str) == pos).to_numpy()
    if ys.all() or not ys.any():
        return {"tstr_lr": 0.5, "tstr_gb": 0.5}
    out = tstr(synth.drop(columns=[label]), ys, test.drop(columns=[label]), (test[label].astype(str) == pos).to_numpy(),
               models={"lr": logreg(), "gb": HistGradientBoostingClassifier(random_state=0)})
    return {"tstr_lr": round(out["lr"]["roc_auc"], 4), "tstr_gb": round(out["gb"]["roc_auc"], 4)}


def measure(synth: pd.DataFrame, test: pd.DataFrame, schema) -> dict:
    synth, test = as_strings(synth, schema), as_strings(test, schema)
    d = marginal_distances(test, synth, schema)
    return {"one_way": round(d["one_way_mean"], 4), "two_way": round(d["two_way_mean"], 4),
            "label_gap_pp": round(100 * d["label_rate_gap"], 2), **utility(synth, test, schema)}


def domain(schema) -> dict:
    cols = []
    for c in schema.columns:
        if isinstance(c, NumericColumn):
            cols.append({"name": c.name, "kind": "numeric", "low": c.low, "high": c.high, "integer": bool(c.integer)})
        else:
            cols.append({"name": c.name, "kind": "categorical", "categories": [str(v) for v in c.categories]})
    return {"columns": cols}


def peer(python: str, synth: str, tr: pd.DataFrame, schema, eps: float, n: int, seed: int) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        as_strings(tr, schema).to_csv(d / "train.csv", index=False)
        (d / "domain.json").write_text(json.dumps(domain(schema)))
        cmd = [python, str(HERE / "marginal_peers.py"), "--train", str(d / "train.csv"), "--domain",
               str(d / "domain.json"), "--synth", synth, "--epsilon", str(eps), "--delta", "1e-5", "--n", str(n),
               "--seed", str(seed), "--out", str(d / "synth.csv")]
        if synth == "aim":
            cmd += ["--max-rounds", str(2 * len(schema.columns))]  # bounds AIM's time (STACK-NOTES)
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return pd.read_csv(d / "synth.csv")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", nargs="+", default=["rare", "randhie", "breast_cancer"])
    ap.add_argument("--families", nargs="*", default=["vae", "gan", "diffusion"], help="none: the peers alone")
    ap.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 10.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--marginal-budget", type=float, default=None, help="default: PrivacyConfig's")
    ap.add_argument("--peers-python", help="python of smartnoise-synth's virtualenv: adds MST and AIM")
    ap.add_argument("--rows", type=positive_int, help="first draw this many rows of each table (stratified by the label, "
                    "one fixed draw): a smaller table of the same kind, for the regime where a plan's choices change")
    ap.add_argument("--smoke", action="store_true", help="a few steps, one table row count (CI)")
    args = ap.parse_args(argv)
    rows = []

    def emit(r: dict) -> None:
        rows.append(r)
        print(json.dumps(r), flush=True)

    for name in args.tables:
        data, schema = table(name)
        shown = name if not args.rows or args.rows >= len(data) else f"{name} ({args.rows} rows)"
        if args.rows and args.rows < len(data):
            data, _ = train_test_split(data, train_size=args.rows, random_state=12345, stratify=data[schema.label])
            data = data.reset_index(drop=True)
        if args.smoke:
            data = pd.concat([g.head(200) for _, g in data.groupby(schema.label)]).reset_index(drop=True)
        for seed in args.seeds:
            tr, te = train_test_split(data, test_size=0.3, random_state=seed, stratify=data[schema.label])
            tr, te = tr.reset_index(drop=True), te.reset_index(drop=True)
            n = max(2000, len(te))
            emit({"table": shown, "method": "real (training rows)", "epsilon": None, "seed": seed,
                  **measure(tr.sample(n, replace=len(tr) < n, random_state=seed), te, schema)})
            for eps in args.epsilons:
                for fam in args.families:
                    steps = 20 if args.smoke else STEPS[name]
                    extra = {} if args.marginal_budget is None else {"marginal_budget": args.marginal_budget}
                    t0 = time.time()
                    run = train(tr, fam, TrainConfig(steps=steps, batch_size=BATCH[name], seed=seed, progress=False),
                                schema=schema, privacy=PrivacyConfig(epsilon=eps, **extra))
                    t1 = time.time()
                    for fit in ((False, True) if run.marginals is not None else (False,)):
                        synth = Sampler(run, marginal_fit=fit).sample(n, seed=seed).data
                        emit({"table": shown, "method": f"trustgen {fam}" + (" + marginal fit" if fit else ""),
                              "epsilon": eps, "seed": seed, "epsilon_spent": round(run.privacy.epsilon, 4),
                              "marginal_epsilon": round(run.privacy.marginal_epsilon, 4),
                              "train_s": round(t1 - t0, 1), **measure(synth, te, schema)})
                if args.peers_python:
                    for synth_name in ("mst", "aim"):
                        t0 = time.time()
                        synth = peer(args.peers_python, synth_name, tr, schema, eps, n, seed)
                        emit({"table": shown, "method": synth_name.upper(), "epsilon": eps, "seed": seed,
                              "train_s": round(time.time() - t0, 1), **measure(synth, te, schema)})
    summary = pd.DataFrame(rows).fillna({"epsilon": -1}).groupby(["table", "method", "epsilon"], sort=False)
    keys = ["one_way", "two_way", "label_gap_pp", "tstr_lr", "tstr_gb"]
    agg = summary[keys].agg(["mean", "std"])
    print("\n| table | method | epsilon | " + " | ".join(keys) + " |")
    print("|" + "---|" * (len(keys) + 3))
    for (t, m, e), r in agg.iterrows():
        cells = [f"{r[(k, 'mean')]:.3f} ({r[(k, 'std')]:.3f})" if np.isfinite(r[(k, 'std')]) else
                 f"{r[(k, 'mean')]:.3f}" for k in keys]
        print(f"| {t} | {m} | {'-' if e < 0 else f'{e:g}'} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
