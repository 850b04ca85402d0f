"""Evaluation report for one run and its samples: ``report.json`` + ``report.html`` + PNG figures.

:func:`evaluate` loads the samples written by ``trustgen sample`` through the run's schema,
compares them with the real training data (and, when given, a real *holdout* the model never
saw), and assembles the metric functions of :mod:`trustgen.evaluation` into five sections:

* ``fidelity``: tables: per-column KS / TV distance, correlation difference, classifier
  two-sample AUC; images: Frechet distance and PRDC in the feature space of a
  :class:`~trustgen.evaluation.fidelity_image.FeatureExtractor` trained on the real images.
* ``utility``: TSTR (logistic regression, random forest) vs TRTR on the holdout.
* ``privacy_attacks``: distance to closest record and a density-ratio membership attack.
* ``fairness`` (with ``sensitive``): group representation and parity gaps of the TSTR models.
* ``diversity``: label coverage (conditional images) and cluster coverage, with a collapse flag.

Nothing is split silently: without a holdout, metrics that need one are listed as skipped with
the reason, and metrics that fall back to the training data say "tested on training data".
Every section computed on real data carries ``private_data_used: true`` and the notice
:data:`PRIVATE_NOTICE`; the HTML shows it as a banner. The report itself is NOT differentially
private: treat it like the private data.

Example:
    >>> report = evaluate("runs/bc", "bc.csv", holdout="bc_holdout.csv", out="report")  # doctest: +SKIP
    >>> report["fidelity"]["metrics"]["classifier_two_sample_auc"]  # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

import trustgen
from trustgen.data.encoders import Data, ImageData, make_encoder
from trustgen.data.loaders import load_data
from trustgen.data.schema import CategoricalColumn, ImageSchema, Schema, category_key
from trustgen.errors import ConfigError, DataError, TrustgenError
from trustgen.evaluation.checks import encode
from trustgen.evaluation.diversity import cluster_coverage, is_collapsed, label_coverage
from trustgen.evaluation.fairness import group_representation, parity_gaps
from trustgen.evaluation.fidelity_image import FeatureExtractor, frechet_distance, prdc
from trustgen.evaluation.fidelity_tabular import (
    association_matrix,
    classifier_two_sample_auc,
    column_distances,
)
from trustgen.evaluation.privacy_attacks import density_ratio_mia, distance_to_closest_record
from trustgen.evaluation.labels import PRIVATE_NOTICE, TRAINING_DATA_NOTICE
from trustgen.evaluation.report_html import render_html
from trustgen.evaluation.utility import MODELS, make_classifier, trtr, tstr
from trustgen.io import atomic_write_text
from trustgen.plots import association_heatmap, image_grid, marginals, save_figure

REPORT_FORMAT = "trustgen-evaluation-report"
REPORT_VERSION = 1

MAX_SENSITIVE_GROUPS = 20  # a sensitive column with more distinct values must be binned first
MIN_MIA_HOLDOUT = 20  # rows of holdout needed to split it into non-members and a reference
MAX_ROWS = 5000  # cap on the rows fed to the quadratic-cost metrics (C2ST, KDE attack, PRDC)
MAX_MARGINAL_PLOTS = 12


# ---------------------------------------------------------------------------------- helpers
def _plain(obj: Any) -> Any:
    """Recursively convert to JSON-ready built-in types (str keys, no numpy, no NaN/inf)."""
    if isinstance(obj, dict):
        return {str(_plain(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _section(data: str, *, private: bool = True, tested_on_training_data: bool = False) -> dict:
    return {
        "private_data_used": private,
        "notice": PRIVATE_NOTICE if private else "does not read the private records",
        "data": data,
        "tested_on_training_data": tested_on_training_data,
        "status": "ok",
        "metrics": {},
        "skipped": {},
        "notes": [],
        "seconds": 0.0,
    }


class _Rows:
    """The flat metric table shared by JSON and HTML: one row per headline number."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, section: str, metric: str, value: Any, direction: str, value_range: str,
            data: str, *, private: bool = True) -> None:
        self.rows.append({"section": section, "metric": metric, "value": value, "direction": direction,
                          "range": value_range, "data": data, "private_data_used": private})


def _tabular(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Columns in schema order; categories as their normalised string key, numbers as floats."""
    out = {}
    for c in schema.columns:
        if isinstance(c, CategoricalColumn):
            out[c.name] = df[c.name].map(category_key).astype(str).to_numpy()
        else:
            out[c.name] = pd.to_numeric(df[c.name]).to_numpy(np.float64)
    return pd.DataFrame(out, columns=[c.name for c in schema.columns])


def _pixels(data: ImageData, schema: ImageSchema) -> np.ndarray:
    """Images scaled to [0, 1] (N x C x H x W, float32)."""
    return ((np.asarray(data.x, np.float64) - schema.low) / (schema.high - schema.low)).astype(np.float32)


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))


def _load(source: Any, schema: Schema, what: str, flag: str) -> tuple[Data, str]:
    """Load and validate ``source`` against the run's schema, naming the input on failure."""
    if isinstance(source, (pd.DataFrame, ImageData)):
        try:
            make_encoder(schema).validate(source)
        except TrustgenError as e:
            raise DataError(f"the {what} do not match the run's schema: {e}") from e
        return source, f"in-memory {what}"
    try:
        data, _ = load_data(source, schema)
    except TrustgenError as e:
        raise DataError(f"{what} {str(source)!r} ({flag}) cannot be used with the run's schema: {e}") from e
    return data, str(source)


def _try(section: dict, name: str, fn: Callable[[], Any]) -> Any:
    """Run one metric; a TrustgenError (e.g. a single class in the samples) marks it skipped."""
    try:
        return fn()
    except TrustgenError as e:
        section["skipped"][name] = f"failed: {e}"
        return None


def _finish(section: dict, t0: float) -> None:
    section["seconds"] = round(time.time() - t0, 2)
    if section["skipped"]:
        section["status"] = "partial" if section["metrics"] else "skipped"


# ---------------------------------------------------------------------------------- evaluate
def evaluate(run_or_path: Any, samples: Any, real: Any = None, holdout: Any = None,
             sensitive: str | None = None, seed: int = 0, out: str | Path | None = None, *,
             positive_label: Any = None, progress: bool = False) -> dict:
    """Evaluate a run's samples against real data and (if ``out``) write the report files.

    Args:
        run_or_path: a :class:`~trustgen.run.Run` or its directory.
        samples: file written by ``trustgen sample`` (``.csv`` tables with every schema column,
            label included; ``.npz`` with ``x`` and ``y`` for images), or a DataFrame/ImageData.
            Loaded and validated with the run's schema.
        real: the real data the model was trained on (built-in name, file, or DataFrame/
            ImageData). Default: the run's training data as recorded in ``run.json``.
        holdout: real data from the same population that the model did NOT train on. Needed for
            TRTR, the distance-to-closest-record comparison and the membership attack; without
            it those are reported as skipped, and TSTR is tested on the training data (and says so).
        sensitive: a column (tables only) to check group representation and parity gaps on.
        seed: seed of every random step (subsampling, forests, KMeans, the feature extractor).
        out: report directory; writes ``report.json``, ``report.html`` and PNG figures.
            None computes the report without writing anything.
        positive_label: the favourable class for parity gaps of a binary label (default: the
            schema's last class); multi-class labels are checked one class against the rest.
        progress: print one line per section to stderr.

    Returns:
        The report as a dict of built-in Python types (identical to ``report.json``).

    Raises:
        RunError: if the run directory is missing or incomplete.
        DataError: if the samples, real data or holdout do not match the run's schema, or the
            training data cannot be found (pass ``real``).
        ConfigError: on a bad ``sensitive`` column or a holdout that is the training data.
    """
    from trustgen.run import Run  # runs come after evaluation in the import graph

    t_start = time.time()

    def log(msg: str) -> None:
        if progress:
            print(f"evaluate: {msg} ({time.time() - t_start:.1f} s)", file=sys.stderr, flush=True)

    run = run_or_path if isinstance(run_or_path, Run) else Run.load(run_or_path)
    schema = run.schema
    is_image = isinstance(schema, ImageSchema)
    synth_data, samples_desc = _load(samples, schema, "samples", "--samples")
    if real is None:
        if run.data_name in ("", "in-memory"):
            raise DataError("the run was trained on in-memory data, so its training data cannot be reloaded; "
                            "pass the real training data with --real (real=...).")
        real = run.data_name
    real_data, real_desc = _load(real, schema, "real training data", "--real; default: the run's training data")
    holdout_data, holdout_desc = None, None
    if holdout is not None:
        if _same_source(holdout, real):
            raise ConfigError(f"--holdout {str(holdout)!r} is the training data itself; a holdout must be real "
                              "data the model did NOT train on (or omit it).")
        holdout_data, holdout_desc = _load(holdout, schema, "holdout", "--holdout")
    if sensitive is not None:
        _check_sensitive(sensitive, schema, real_data)
    log(f"loaded {len(synth_data)} samples, {len(real_data)} real rows"
        + (f", {len(holdout_data)} holdout rows" if holdout_data is not None else ", no holdout"))

    has_holdout = holdout_data is not None
    test_desc = ("tested on the real holdout" if has_holdout
                 else f"{TRAINING_DATA_NOTICE} (rows the generator saw: optimistic)")
    notes = [
        "Every metric in this report reads the real training (and holdout) data: the report is "
        f"{PRIVATE_NOTICE}. Treat it as private; the DP guarantee of the run covers the model and its "
        "samples, not this report.",
        "Privacy attacks are audits, not proofs: a failed attack does not show privacy; only the DP "
        "accounting of the run gives a guarantee.",
    ]
    if not has_holdout:
        notes.append(f"No holdout was given: TSTR, label-classifier accuracy and parity gaps are "
                     f"{TRAINING_DATA_NOTICE} (rows the generator saw, so they are optimistic); TRTR, the "
                     "distance-to-closest-record comparison and the membership attack are skipped. Pass "
                     "--holdout with real rows the model did not train on.")
    rows = _Rows()
    ctx = _Context(schema, is_image, synth_data, real_data, holdout_data, seed, rows, test_desc)

    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "trustgen_version": trustgen.__version__,
        "private_data_used": True,
        "private_data_notice": PRIVATE_NOTICE,
        "tested_on_training_data": not has_holdout,
        "run": {"path": None if run.path is None else str(run.path), "family": run.family,
                "data": run.data_name, "kind": "image" if is_image else "tabular",
                "label": schema.label, "n_classes": schema.n_classes},
        "inputs": {"samples": samples_desc, "n_samples": len(synth_data), "real": real_desc,
                   "n_real": len(real_data), "holdout": holdout_desc,
                   "n_holdout": None if holdout_data is None else len(holdout_data),
                   "sensitive": sensitive, "seed": seed},
        "notes": notes,
    }
    privacy = _section("the run's DP accounting (training hyper-parameters), not the records", private=False)
    if run.privacy is None:
        privacy["skipped"]["privacy_report"] = "the run has no privacy.json"
        privacy["status"] = "skipped"
    else:
        privacy["metrics"] = {"is_private": run.privacy.is_private, "epsilon": run.privacy.total_epsilon,
                              "delta": run.privacy.delta}
        privacy["summary"] = run.privacy.summary()
        privacy["report"] = run.privacy.to_dict()
        eps = run.privacy.total_epsilon
        rows.add("privacy guarantee", "DP epsilon of the training run", eps, "lower is better (inf: no guarantee)",
                 "[0, inf]", "training hyper-parameters", private=False)
    report["privacy_report"] = privacy

    report["fidelity"] = ctx.fidelity()
    log("fidelity done")
    report["utility"] = ctx.utility()
    log("utility done")
    report["privacy_attacks"] = ctx.privacy_attacks()
    log("privacy attacks done")
    report["fairness"] = ctx.fairness(sensitive, positive_label)
    log("fairness done")
    report["diversity"] = ctx.diversity()
    log("diversity done")
    report["notes"].extend(ctx.extra_notes)

    report["metric_table"] = rows.rows
    report["skipped"] = [{"section": name, "metric": m, "reason": r}
                         for name in ("privacy_report", "fidelity", "utility", "privacy_attacks", "fairness",
                                      "diversity")
                         for m, r in report[name]["skipped"].items()]
    report["figures"] = []
    report["files"] = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        report["figures"] = ctx.figures(out, report)
        report["files"] = {"dir": str(out), "json": "report.json", "html": "report.html"}
        log(f"{len(report['figures'])} figures written")
    report["seconds"] = round(time.time() - t_start, 2)
    report = _plain(report)
    json.dumps(report, allow_nan=False)  # fail here, not in a half-written file
    if out is not None:
        atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(out / "report.html", render_html(report))
        log(f"wrote {out / 'report.html'} and {out / 'report.json'}")
    return report


def _same_source(a: Any, b: Any) -> bool:
    """True when two data arguments name the same built-in dataset or the same file."""
    if not (isinstance(a, (str, Path)) and isinstance(b, (str, Path))):
        return a is b
    if str(a) == str(b):
        return True
    pa, pb = Path(a), Path(b)
    return pa.is_file() and pb.is_file() and pa.resolve() == pb.resolve()


def _check_sensitive(sensitive: str, schema: Schema, real: Data) -> None:
    if isinstance(schema, ImageSchema):
        raise ConfigError("--sensitive needs a tabular run (a column to group by); image runs have no columns.")
    names = [c.name for c in schema.columns]
    if sensitive not in names:
        raise ConfigError(f"--sensitive {sensitive!r} is not a column of the run's schema {names}.")
    n_groups = real[sensitive].nunique()
    if n_groups > MAX_SENSITIVE_GROUPS:
        raise ConfigError(f"--sensitive {sensitive!r} has {n_groups} distinct values in the real data "
                          f"(more than {MAX_SENSITIVE_GROUPS}); bin it into groups first (e.g. age bands) and "
                          "declare it as a categorical column.")


class _Context:
    """The loaded inputs and their per-kind views, shared by the sections."""

    def __init__(self, schema: Schema, is_image: bool, synth: Data, real: Data, holdout: Data | None,
                 seed: int, rows: _Rows, test_desc: str) -> None:
        self.schema, self.is_image, self.seed, self.rows = schema, is_image, seed, rows
        self.test_desc = test_desc
        self.has_holdout = holdout is not None
        self.extra_notes: list[str] = []
        self.extractor: FeatureExtractor | None = None
        self.feature_space = ""
        if is_image:
            self.synth_x, self.real_x = _pixels(synth, schema), _pixels(real, schema)
            self.hold_x = None if holdout is None else _pixels(holdout, schema)
            self.synth_y, self.real_y = synth.y, real.y
            self.hold_y = None if holdout is None else holdout.y
            # flat pixel matrices for the utility models and the privacy attacks
            self.synth_t = self.synth_x.reshape(len(self.synth_x), -1).astype(np.float64)
            self.real_t = self.real_x.reshape(len(self.real_x), -1).astype(np.float64)
            self.hold_t = None if self.hold_x is None else self.hold_x.reshape(len(self.hold_x), -1).astype(np.float64)
        else:
            self.synth_t, self.real_t = _tabular(synth, schema), _tabular(real, schema)
            self.hold_t = None if holdout is None else _tabular(holdout, schema)
        self.assoc: tuple[pd.DataFrame, pd.DataFrame] | None = None
        self.distances: dict | None = None

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    # -- features and labels ------------------------------------------------------------------
    def _xy(self, which: str) -> tuple[Any, Any]:
        """Features and labels of ``which`` in ("synth", "real", "holdout") for the utility models."""
        if self.is_image:
            x = {"synth": self.synth_t, "real": self.real_t, "holdout": self.hold_t}[which]
            y = {"synth": self.synth_y, "real": self.real_y, "holdout": self.hold_y}[which]
            return x, None if y is None else np.asarray(y)
        df = {"synth": self.synth_t, "real": self.real_t, "holdout": self.hold_t}[which]
        label = self.schema.label
        return df.drop(columns=[label]), df[label].to_numpy()

    def _fit_extractor(self) -> tuple[np.ndarray, np.ndarray]:
        """Features of real and synthetic images; fits the FeatureExtractor on real labelled images."""
        if self.real_y is not None:
            self.extractor = FeatureExtractor(seed=self.seed).fit(self.real_x, self.real_y)
            self.feature_space = ("penultimate layer of a FeatureExtractor conv net trained on the real training "
                                  "images and labels (no pretrained weights; not comparable to Inception FID)")
            return self.extractor.transform(self.real_x), self.extractor.transform(self.synth_x)
        self.feature_space = "raw pixels scaled to [0, 1] (the images have no labels to train a feature extractor on)"
        return self.real_t, self.synth_t

    # -- sections -----------------------------------------------------------------------------
    def fidelity(self) -> dict:
        t0 = time.time()
        data = "synthetic samples vs the real training data"
        s = _section(data)
        m, add = s["metrics"], self.rows.add
        rng = self.rng()
        if self.is_image:
            fr, fs = self._fit_extractor()
            self.feats = (fr, fs)
            s["feature_space"] = self.feature_space
            m["feature_space"] = self.feature_space
            fd = _try(s, "frechet_distance", lambda: frechet_distance(fr, fs))
            if fd is not None:
                m["frechet_distance"] = fd
                add("fidelity", "Frechet distance (feature space: extractor trained on real images)", fd,
                    "lower is better", "[0, inf)", data)
            ir, is_ = _subsample(len(fr), MAX_ROWS, rng), _subsample(len(fs), MAX_ROWS, rng)
            res = _try(s, "prdc", lambda: prdc(fr[ir], fs[is_], k=5))
            if res is not None:
                m["prdc"] = res
                for key, direction, rng_ in (("precision", "higher is better", "[0, 1]"),
                                             ("recall", "higher is better", "[0, 1]"),
                                             ("density", "closer to 1 is better", "[0, n_real/k]"),
                                             ("coverage", "higher is better", "[0, 1]")):
                    add("fidelity", f"PRDC {key} (k=5)", res[key], direction, rng_, data)
        else:
            dist = _try(s, "column_distances", lambda: column_distances(self.real_t, self.synth_t))
            if dist is not None:
                self.distances = dist
                worst = max(dist, key=dist.get)
                m["column_distances"] = dist
                m["column_distance_mean"] = float(np.mean(list(dist.values())))
                m["column_distance_max"] = dist[worst]
                m["worst_column"] = worst
                add("fidelity", "Mean per-column distance (KS numeric, TV categorical)", m["column_distance_mean"],
                    "lower is better", "[0, 1]", data)
                add("fidelity", f"Worst column distance ({worst})", dist[worst], "lower is better", "[0, 1]", data)
            if self.real_t.shape[1] >= 2:
                def corr() -> float:  # = correlation_difference, keeping the matrices for the heat map
                    self.assoc = (association_matrix(self.real_t), association_matrix(self.synth_t))
                    a, b = (x.to_numpy() for x in self.assoc)
                    return float(np.abs(a - b)[np.triu_indices_from(a, k=1)].mean())
                cd = _try(s, "correlation_difference", corr)
                if cd is not None:
                    m["correlation_difference"] = cd
                    add("fidelity", "Correlation difference (mean |assoc real - assoc synth|)", cd,
                        "lower is better", "[0, 2]", data)
            else:
                s["skipped"]["correlation_difference"] = "the table has a single column"
            ir = _subsample(len(self.real_t), MAX_ROWS, rng)
            is_ = _subsample(len(self.synth_t), MAX_ROWS, rng)
            auc = _try(s, "classifier_two_sample_auc", lambda: classifier_two_sample_auc(
                self.real_t.iloc[ir], self.synth_t.iloc[is_], seed=self.seed))
            if auc is not None:
                m["classifier_two_sample_auc"] = auc
                add("fidelity", "Classifier two-sample AUC (random forest, real vs synthetic)", auc,
                    "closer to 0.5 is better", "[0, 1]", data)
        _finish(s, t0)
        return s

    def utility(self) -> dict:
        t0 = time.time()
        data = f"trained on synthetic samples, {self.test_desc}"
        s = _section(data, tested_on_training_data=not self.has_holdout)
        m, add = s["metrics"], self.rows.add
        if self.schema.label is None:
            s["skipped"]["tstr"] = s["skipped"]["trtr"] = ("the run has no label (unconditional schema): TSTR/TRTR "
                                                           "need a label to predict")
            _finish(s, t0)
            return s
        xs, ys = self._xy("synth")
        xt, yt = self._xy("holdout" if self.has_holdout else "real")
        m["task"] = f"predict {self.schema.label!r} ({self.schema.n_classes} classes)"
        m["models"] = list(MODELS)
        m["test_data"] = "holdout" if self.has_holdout else TRAINING_DATA_NOTICE
        res = _try(s, "tstr", lambda: tstr(xs, ys, xt, yt, seed=self.seed))
        if res is not None:
            m["tstr"] = res
            for model, scores in res.items():
                for key, val in scores.items():
                    add("utility", f"TSTR {model} {key}", val, "higher is better (compare with TRTR)", "[0, 1]", data)
        if self.has_holdout:
            xr, yr = self._xy("real")
            ref = _try(s, "trtr", lambda: trtr(xr, yr, xt, yt, seed=self.seed))
            if ref is not None:
                m["trtr"] = ref
                for model, scores in ref.items():
                    for key, val in scores.items():
                        add("utility", f"TRTR {model} {key} (real-data reference)", val,
                            "reference ceiling for TSTR", "[0, 1]", "trained on real training data, tested on the "
                            "real holdout")
                if res is not None:
                    m["gap"] = {model: {k: ref[model][k] - res[model][k] for k in res[model]} for model in res}
                    for model, gaps in m["gap"].items():
                        add("utility", f"Utility gap TRTR - TSTR, {model} accuracy", gaps["accuracy"],
                            "lower is better (0: no loss)", "[-1, 1]", "holdout")
        else:
            s["skipped"]["trtr"] = ("needs a holdout: training and testing a real-data model on the same rows gives "
                                    "no ceiling; pass --holdout")
        _finish(s, t0)
        return s

    def privacy_attacks(self) -> dict:
        t0 = time.time()
        data = "synthetic samples vs real training data" + (" and real holdout" if self.has_holdout else "")
        s = _section(data)
        m, add = s["metrics"], self.rows.add
        s["features"] = ("pixels scaled to [0, 1]" if self.is_image else
                         "all columns, one-hot encoded and standardised")
        if self.has_holdout:
            dcr = _try(s, "distance_to_closest_record",
                       lambda: distance_to_closest_record(self.synth_t, self.real_t, self.hold_t))
        else:
            # Distances of the synthetic rows need no holdout; only the comparison does.
            dcr = _try(s, "distance_to_closest_record",
                       lambda: distance_to_closest_record(self.synth_t, self.real_t, self.synth_t))
            if dcr is not None:
                dcr = {k: v for k, v in dcr.items() if k.startswith("synth_") and "holdout" not in k}
            s["skipped"]["distance_to_closest_record (holdout comparison)"] = (
                "needs a holdout: the holdout-to-train distances are what a non-memorising generator would give")
        if dcr is not None:
            m["distance_to_closest_record"] = dcr
            add("privacy attacks", "Share of synthetic rows that copy a training row", dcr["synth_exact_copy_share"],
                "lower is better (0 ideal)", "[0, 1]", "synthetic vs real training data")
            add("privacy attacks", "Median DCR synthetic-to-train", dcr["synth_median"],
                "higher is safer (compare with holdout-to-train)", "[0, inf)", "synthetic vs real training data")
            if self.has_holdout:
                add("privacy attacks", "Median DCR holdout-to-train (reference)", dcr["holdout_median"],
                    "reference for the synthetic median", "[0, inf)", "real holdout vs real training data")
                add("privacy attacks", "Share of synthetic rows closer to train than the holdout median",
                    dcr["synth_closer_than_holdout_median_share"], "closer to 0.5 is better (towards 1: memorisation)",
                    "[0, 1]", data)
                if dcr["holdout_exact_copy_share"] > 0.5:
                    self.extra_notes.append(
                        f"{dcr['holdout_exact_copy_share']:.0%} of the holdout rows also appear in the training data: "
                        "the holdout overlaps the training data, so holdout-based metrics are not trustworthy.")
        if not self.has_holdout:
            s["skipped"]["density_ratio_mia"] = ("needs a holdout: the attack scores training rows against real "
                                                 "rows the model did not see; pass --holdout")
        elif len(self.hold_t) < MIN_MIA_HOLDOUT:
            s["skipped"]["density_ratio_mia"] = (f"the holdout has {len(self.hold_t)} rows; at least "
                                                 f"{MIN_MIA_HOLDOUT} are needed to split it into non-members and "
                                                 "a reference")
        else:
            rng = self.rng()
            perm = rng.permutation(len(self.hold_t))
            half = min(len(perm) // 2, MAX_ROWS // 2)
            non_idx, ref_idx = perm[:half], perm[half:half + MAX_ROWS]
            mem_idx = rng.choice(len(self.real_t), size=min(half, len(self.real_t)), replace=False)
            syn_idx = _subsample(len(self.synth_t), MAX_ROWS, rng)
            take = (lambda t, i: t.iloc[i]) if not self.is_image else (lambda t, i: t[i])
            s["mia_setup"] = {
                "method": "density ratio (DOMIAS-style), Gaussian KDE",
                "members": f"{len(mem_idx)} random training rows",
                "non_members": f"{len(non_idx)} random holdout rows",
                "reference": f"the other {len(ref_idx)} holdout rows (the attacker's population sample)",
            }
            mia = _try(s, "density_ratio_mia", lambda: density_ratio_mia(
                take(self.synth_t, syn_idx), take(self.real_t, mem_idx), take(self.hold_t, non_idx),
                take(self.hold_t, ref_idx), seed=self.seed))
            if mia is not None:
                m["density_ratio_mia"] = mia
                mdata = "training rows (members) vs holdout rows (non-members); reference: rest of holdout"
                add("privacy attacks", "Membership attack AUC (density ratio)", mia["auc"],
                    "closer to 0.5 is better (higher: leak)", "[0, 1]", mdata)
                add("privacy attacks", "Membership attack TPR at 1% FPR", mia["tpr_at_fpr_0.01"],
                    "close to 0.01 is better (higher: leak)", "[0, 1]", mdata)
                add("privacy attacks", "Membership attack TPR at 10% FPR", mia["tpr_at_fpr_0.1"],
                    "close to 0.1 is better (higher: leak)", "[0, 1]", mdata)
        _finish(s, t0)
        return s

    def fairness(self, sensitive: str | None, positive_label: Any) -> dict:
        t0 = time.time()
        data = f"group shares: synthetic vs real training data; parity: TSTR models {self.test_desc}"
        s = _section(data, tested_on_training_data=not self.has_holdout)
        m, add = s["metrics"], self.rows.add
        if sensitive is None:
            s["skipped"]["group_representation, parity_gaps"] = "no sensitive column given (--sensitive COLUMN)"
            s["status"] = "skipped"
            s["tested_on_training_data"] = False
            s["seconds"] = 0.0
            return s
        m["sensitive"] = sensitive
        rep = _try(s, "group_representation",
                   lambda: group_representation(self.real_t[sensitive].to_numpy(), self.synth_t[sensitive].to_numpy()))
        if rep is not None:
            m["group_representation"] = rep
            worst = max(rep, key=lambda g: abs(rep[g]["diff"]))
            m["max_abs_representation_diff"] = abs(rep[worst]["diff"])
            add("fairness", f"Largest group share difference ({sensitive} = {worst})", abs(rep[worst]["diff"]),
                "lower is better", "[0, 1]", "synthetic vs real training data")
        label = self.schema.label
        if label is None:
            s["skipped"]["parity_gaps"] = "the run has no label: parity gaps need a prediction task"
        else:
            classes = [category_key(c) for c in self.schema.classes]
            if positive_label is not None:
                if category_key(positive_label) not in classes:
                    raise ConfigError(f"positive_label {positive_label!r} is not a class of {label!r}: {classes}")
                positives = [category_key(positive_label)]
            else:
                positives = [classes[-1]] if len(classes) == 2 else classes
            xs, ys = self._xy("synth")
            test = self.hold_t if self.has_holdout else self.real_t
            xt, yt = self._xy("holdout" if self.has_holdout else "real")
            groups = test[sensitive].to_numpy()
            m["positive_labels"] = positives
            m["test_data"] = "holdout" if self.has_holdout else TRAINING_DATA_NOTICE
            parity: dict[str, Any] = {}
            for name in MODELS:
                def fit_predict(name: str = name) -> np.ndarray:
                    if len(set(ys.tolist())) < 2:
                        raise DataError("the synthetic labels hold a single class; no classifier can be trained")
                    xa, xb = encode({"x_synth": xs, "x_test": xt})
                    return make_classifier(name, self.seed).fit(xa, ys).predict(xb)
                pred = _try(s, f"parity_gaps ({name})", fit_predict)
                if pred is None:
                    continue
                per_pos = {}
                for pos in positives:
                    r = _try(s, f"parity_gaps ({name}, positive {pos!r})",
                             lambda pos=pos: parity_gaps(yt, pred, groups, positive_label=pos))
                    if r is not None:
                        per_pos[pos] = r
                if per_pos:
                    parity[name] = per_pos
                    dp = max(r["demographic_parity_gap"] for r in per_pos.values())
                    eo = [r["equal_opportunity_gap"] for r in per_pos.values()
                          if r["equal_opportunity_gap"] is not None]
                    which = f"positive = {positives[0]!r}" if len(positives) == 1 else "max over classes"
                    pdata = f"TSTR {name}, {self.test_desc}"
                    add("fairness", f"Demographic parity gap, TSTR {name} ({which})", dp, "lower is better", "[0, 1]",
                        pdata)
                    if eo:
                        add("fairness", f"Equal opportunity gap, TSTR {name} ({which})", max(eo), "lower is better",
                            "[0, 1]", pdata)
            if parity:
                m["parity_gaps"] = parity
        _finish(s, t0)
        return s

    def diversity(self) -> dict:
        t0 = time.time()
        data = "synthetic samples vs the real training data"
        s = _section(data)
        m, add = s["metrics"], self.rows.add
        results = []
        if self.is_image:
            if self.extractor is not None and self.synth_y is not None:
                k = self.schema.n_classes
                lc = _try(s, "label_coverage", lambda: label_coverage(
                    self.extractor.predict(self.synth_x), np.asarray(self.synth_y), k))
                if lc is not None:
                    m["label_coverage"] = lc
                    m["classes"] = [str(c) for c in self.schema.classes]
                    results.append(lc)
                    add("diversity", "Label coverage (share of classes recognised by a real-data classifier)",
                        lc["coverage_fraction"], "higher is better", "[0, 1]", data)
                    add("diversity", "Predicted-label entropy ratio", lc["entropy_ratio"], "closer to 1 is better",
                        "[0, ~1]", data)
                if self.has_holdout:
                    acc, where = float(np.mean(self.extractor.predict(self.hold_x) == self.hold_y)), "real holdout"
                else:
                    acc = float(np.mean(self.extractor.predict(self.real_x) == self.real_y))
                    where = TRAINING_DATA_NOTICE
                m["label_classifier"] = {"accuracy": acc, "tested_on": where,
                                         "note": "label coverage is bounded by this accuracy"}
                add("diversity", "Accuracy of the label classifier (bounds label coverage)", acc, "higher is better",
                    "[0, 1]", "real holdout" if self.has_holdout else f"real training images, {TRAINING_DATA_NOTICE}")
            elif self.synth_y is None:
                s["skipped"]["label_coverage"] = "unconditional images: no requested labels to check"
            else:
                s["skipped"]["label_coverage"] = "the real images have no labels to train a classifier on"
            fr, fs = self.feats
            feats_desc = "feature space: " + self.feature_space
        else:
            fr, fs = self.real_t, self.synth_t
            feats_desc = "all columns, one-hot encoded and standardised with real statistics"
        n_clusters = min(10, len(fr))
        cc = _try(s, "cluster_coverage", lambda: cluster_coverage(fr, fs, n_clusters=n_clusters, seed=self.seed))
        if cc is not None:
            m["cluster_coverage"] = cc
            m["cluster_space"] = feats_desc
            results.append(cc)
            add("diversity", f"Cluster coverage ({n_clusters} KMeans clusters of the real data)",
                cc["coverage_fraction"], "higher is better", "[0, 1]", data)
            add("diversity", "Cluster entropy ratio (synthetic / real)", cc["entropy_ratio"], "closer to 1 is better",
                "[0, ~1]", data)
        if results:
            m["collapsed"] = is_collapsed(*results)
            add("diversity", "Mode collapse flagged", m["collapsed"], "false is better", "true / false", data)
        _finish(s, t0)
        return s

    # -- figures ------------------------------------------------------------------------------
    def figures(self, out: Path, report: dict) -> list[dict]:
        figs: list[dict] = []
        s = self.schema
        if self.is_image:
            names = None if s.classes is None else list(s.classes)
            save_figure(image_grid(self.synth_x, None if self.synth_y is None else np.asarray(self.synth_y), names,
                                   title="synthetic samples (first 10 per class)"), out / "samples.png")
            figs.append({"file": "samples.png", "width": "half",
                         "caption": "Synthetic samples (one row per requested class)."})
            save_figure(image_grid(self.real_x, None if self.real_y is None else np.asarray(self.real_y), names,
                                   title="real training images (first 10 per class)"), out / "real.png")
            figs.append({"file": "real.png", "width": "half",
                         "caption": "Real training images, for comparison (private data)."})
        else:
            cols = list(self.real_t.columns)
            if self.distances:
                cols = sorted(cols, key=lambda c: -self.distances.get(c, 0.0))
            shown = cols[:MAX_MARGINAL_PLOTS]
            save_figure(marginals(self.real_t, self.synth_t, shown, max_columns=MAX_MARGINAL_PLOTS),
                        out / "marginals.png")
            more = f" (the {len(shown)} with the largest distance of {len(cols)})" if len(cols) > len(shown) else ""
            figs.append({"file": "marginals.png", "width": "full",
                         "caption": f"Per-column marginals, real vs synthetic{more}. Private data."})
            if self.assoc is not None:
                real_a, synth_a = self.assoc
                save_figure(association_heatmap([(real_a, "real", True), (synth_a, "synthetic", True)]),
                            out / "correlation.png")
                figs.append({"file": "correlation.png", "width": "full",
                             "caption": "Association matrices of the real and synthetic data (Pearson r for "
                                        "number pairs, Cramer's V for category pairs, correlation ratio for mixed "
                                        "pairs). Private data."})
                diff = (real_a - synth_a).abs()
                save_figure(association_heatmap([(diff, "|real - synthetic| association", False)]),
                            out / "correlation_difference.png")
                figs.append({"file": "correlation_difference.png", "width": "half",
                             "caption": "Correlation-difference heat map: absolute difference of the two association "
                                        "matrices (0, white, is ideal; the correlation difference metric is the mean "
                                        "over column pairs). Private data."})
        return figs
