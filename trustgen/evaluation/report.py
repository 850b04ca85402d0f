"""Evaluation report for one run and its samples: ``report.json`` + ``report.html`` + PNG figures.

:func:`evaluate` loads the samples written by ``trustgen sample`` through the run's schema,
compares them with the real training data (and, when given, a real *holdout* the model never
saw), and assembles the metric functions of :mod:`trustgen.evaluation` into six sections, one
module each, every one returning a :class:`~trustgen.evaluation.report_section.Section` computed
from the shared :class:`~trustgen.evaluation.report_inputs.EvaluationInputs`:

* ``privacy_report`` (``report_privacy_guarantee``): the run's DP guarantee (reads no records).
* ``fidelity`` (``report_fidelity``): tables: per-column KS / TV distance, correlation
  difference, classifier two-sample AUC; images: Frechet distance and PRDC in the feature space
  of a :class:`~trustgen.evaluation.fidelity_image.FeatureExtractor` trained on the real images.
* ``utility`` (``report_utility``): TSTR (logistic regression, random forest) vs TRTR on the holdout.
* ``privacy_attacks`` (``report_privacy_attacks``): distance to closest record and a
  density-ratio membership attack.
* ``fairness`` (``report_fairness``, with ``sensitive``): group representation and parity gaps
  of the TSTR models.
* ``diversity`` (``report_diversity``): label coverage (conditional images) and cluster
  coverage, with a collapse flag.

Figures are drawn by ``report_figures``, the page by ``report_html``; this module loads the
inputs, runs the sections in order and writes the files.

Nothing is split silently: without a holdout, metrics that need one are listed as skipped with
the reason, and metrics that fall back to the training data say "tested on training data".
Every section computed on real data carries ``private_data_used: true`` and the notice
:data:`PRIVATE_NOTICE`; the HTML shows it as a banner. The report itself is NOT differentially
private: treat it like the private data.

Example:
    >>> report = evaluate("runs/bc", "bc.csv", real="bc_train.csv", holdout="bc_holdout.csv",
    ...                   out="report")  # doctest: +SKIP
    >>> report["fidelity"]["metrics"]["classifier_two_sample_auc"]  # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

import trustgen
from trustgen.data.datasets import BUILTIN
from trustgen.data.encoders import Data, ImageData, make_encoder
from trustgen.data.loaders import load_data
from trustgen.data.schema import ImageSchema, Schema
from trustgen.errors import ConfigError, DataError, TrustgenError
from trustgen.evaluation.labels import PRIVATE_NOTICE, TRAINING_DATA_NOTICE
from trustgen.evaluation.report_diversity import diversity_section
from trustgen.evaluation.report_fairness import fairness_section
from trustgen.evaluation.report_fidelity import fidelity_section
from trustgen.evaluation.report_figures import write_figures
from trustgen.evaluation.report_html import render_html
from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_privacy_attacks import privacy_attacks_section
from trustgen.evaluation.report_privacy_guarantee import privacy_guarantee_section
from trustgen.evaluation.report_section import Section
from trustgen.evaluation.report_utility import utility_section
from trustgen.io import atomic_write_text, file_sha256, json_value
from trustgen.run import Run, TrainingData

__all__ = ["PRIVATE_NOTICE", "REPORT_FORMAT", "REPORT_VERSION", "RealDataMismatch", "evaluate",
           "matches_training_data", "render_html"]

REPORT_FORMAT = "trustgen-evaluation-report"
REPORT_VERSION = 1

MAX_SENSITIVE_GROUPS = 20  # a sensitive column with more distinct values must be binned first


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
            ImageData). Required: a run records only the name and hash of its training data,
            never where to read it; the report's ``real_matches_training_data`` says whether
            ``real`` is what the run recorded (True/False; None when that cannot be checked).
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
        DataError: if the samples, real data or holdout do not match the run's schema.
        ConfigError: without ``real``, on a bad ``sensitive`` column or a holdout that is the
            training data.
    """
    t_start = time.time()

    def log(msg: str) -> None:
        if progress:
            print(f"evaluate: {msg} ({time.time() - t_start:.1f} s)", file=sys.stderr, flush=True)

    if real is None:
        raise ConfigError("pass the real training data (real=..., --real on the command line): the report compares "
                          "the samples with it, and a run records only the name and hash of its training data, "
                          "never where to read it.")
    run = run_or_path if isinstance(run_or_path, Run) else Run.load(run_or_path)
    schema = run.schema
    is_image = isinstance(schema, ImageSchema)
    synth_data, samples_desc = _load(samples, schema, "samples", "--samples")
    real_data, real_desc = _load(real, schema, "real training data", "--real")
    matches = matches_training_data(real, run.data)
    if matches is False:
        warnings.warn(_MISMATCH.format(real=real_desc, name=run.data.name), RealDataMismatch, stacklevel=2)
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

    inputs = EvaluationInputs.from_data(schema, synth_data, real_data, holdout_data, seed)
    has_holdout = inputs.has_holdout
    notes = [
        "Every metric in this report reads the real training (and holdout) data: the report is "
        f"{PRIVATE_NOTICE}. Treat it as private; the DP guarantee of the run covers the model and its "
        "samples, not this report.",
        "Privacy attacks are audits, not proofs: a failed attack does not show privacy; only the DP "
        "accounting of the run gives a guarantee.",
    ]
    if matches is False:
        notes.append(_MISMATCH.format(real=real_desc, name=run.data.name))
    if not has_holdout:
        notes.append(f"No holdout was given: TSTR, label-classifier accuracy and parity gaps are "
                     f"{TRAINING_DATA_NOTICE} (rows the generator saw, so they are optimistic); TRTR, the "
                     "distance-to-closest-record comparison and the membership attack are skipped. Pass "
                     "--holdout with real rows the model did not train on.")

    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "trustgen_version": trustgen.__version__,
        "private_data_used": True,
        "private_data_notice": PRIVATE_NOTICE,
        "tested_on_training_data": not has_holdout,
        "real_matches_training_data": matches,
        "run": {"path": None if run.path is None else str(run.path), "family": run.family,
                "data": run.data.name, "data_sha256": run.data.sha256, "kind": "image" if is_image else "tabular",
                "label": schema.label, "n_classes": schema.n_classes},
        "inputs": {"samples": samples_desc, "n_samples": len(synth_data), "real": real_desc,
                   "n_real": len(real_data), "holdout": holdout_desc,
                   "n_holdout": None if holdout_data is None else len(holdout_data),
                   "sensitive": sensitive, "seed": seed},
        "notes": notes,
    }
    sections: dict[str, Section] = {"privacy_report": privacy_guarantee_section(run.privacy)}
    for key, compute in (("fidelity", fidelity_section), ("utility", utility_section),
                         ("privacy_attacks", privacy_attacks_section),
                         ("fairness", lambda i: fairness_section(i, sensitive, positive_label)),
                         ("diversity", diversity_section)):
        sections[key] = compute(inputs)
        log(f"{key.replace('_', ' ')} done")
    report.update({key: section.to_dict() for key, section in sections.items()})
    report["notes"].extend(note for section in sections.values() for note in section.report_notes)
    report["metric_table"] = [row for section in sections.values() for row in section.rows]
    report["skipped"] = [{"section": key, "metric": m, "reason": r}
                         for key, section in sections.items() for m, r in section.skipped.items()]
    report["figures"] = []
    report["files"] = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        report["figures"] = write_figures(out, inputs, sections["fidelity"], sections["utility"],
                                          sections["privacy_attacks"], sections["fairness"], sections["diversity"])
        report["files"] = {"dir": str(out), "json": "report.json", "html": "report.html"}
        log(f"{len(report['figures'])} figures written")
    report["seconds"] = round(time.time() - t_start, 2)
    report = json_value(report)
    json.dumps(report, allow_nan=False)  # fail here, not in a half-written file
    if out is not None:
        atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(out / "report.html", render_html(report))
        log(f"wrote {out / 'report.html'} and {out / 'report.json'}")
    return report


class RealDataMismatch(UserWarning):
    """The real data given to :func:`evaluate` is not the training data its run recorded."""


_MISMATCH = ("The real data given ({real}) is not the training data the run recorded ({name!r}: its content hash "
             "or name differs). Metrics that compare the samples with the training data then describe that other "
             "data; pass the file the run was trained on (a byte-identical copy matches).")


def matches_training_data(real: Any, recorded: TrainingData) -> bool | None:
    """Whether ``real`` is the training data a run recorded: for a recorded file, the content
    hash of ``real``'s file; for a recorded built-in dataset, the name. None when it cannot be
    checked (in-memory data on either side, or a run that recorded no hash)."""
    if not isinstance(real, (str, Path)):
        return None
    name = str(real)
    if recorded.sha256 is not None:
        return name not in BUILTIN and Path(real).is_file() and file_sha256(real) == recorded.sha256
    if recorded.name in BUILTIN:
        if name in BUILTIN:
            return name == recorded.name
        return None  # a file holding a built-in dataset cannot be told from another by name
    return None


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
