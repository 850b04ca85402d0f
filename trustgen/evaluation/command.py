"""``trustgen evaluate``: fidelity, utility, privacy-attack, fairness and diversity report for samples.

    trustgen evaluate RUN --samples FILE --real DATA [--holdout DATA] [--sensitive COLUMN]
                          --out DIR [--json] [--seed S]

Writes ``DIR/report.json``, ``DIR/report.html`` and PNG figures (see
:func:`trustgen.evaluation.report.evaluate`). Progress goes to stderr; with ``--json`` stdout
holds exactly one JSON object, the report. Bad input raises a
:class:`~trustgen.errors.TrustgenError` (``RunError``, ``DataError``, ``ConfigError``), which the
CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import warnings

from trustgen.evaluation.labels import PRIVATE_NOTICE
from trustgen.limits import MAX_NUMPY_SEED, bounded_number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` arguments to ``parser``."""
    parser.add_argument("run", help="run directory written by `trustgen train`")
    parser.add_argument("--samples", required=True,
                        help="samples written by `trustgen sample`: .csv (tables, every schema column incl. the "
                             "label) or .npz (images, arrays x and y); required")
    parser.add_argument("--real", required=True,
                        help="the real training data (built-in name or file); required: a run records only the "
                             "name and hash of its training data, and the report says whether this matches it")
    parser.add_argument("--holdout", help="real data the model did NOT train on (enables TRTR, the DCR comparison "
                                          "and the membership attack; default: none, they are skipped)")
    parser.add_argument("--sensitive", metavar="COLUMN",
                        help="column to check group representation and parity gaps on (tables; default: none, "
                             "no fairness section)")
    parser.add_argument("--out", required=True,
                        help="report directory (report.json, report.html, PNG figures); required")
    parser.add_argument("--seed", type=bounded_number(int, 0, MAX_NUMPY_SEED), default=0,
                        help="seed of every random step (default: %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON object on stdout (default: a summary in text)")


def _text(report: dict) -> str:
    lines = [f"wrote {report['files']['dir']}/report.html and report.json",
             f"  WARNING: this report was {PRIVATE_NOTICE}; treat it as private."]
    if report["real_matches_training_data"] is False:
        lines.append(f"  WARNING: --real {report['inputs']['real']} is not the training data this run recorded "
                     f"({report['run']['data']!r}: another content hash or name); the metrics compare the samples "
                     "with that other data")
    if report["tested_on_training_data"]:
        lines.append("  no --holdout: some metrics were tested on training data, others are skipped")
    for row in report["metric_table"]:
        v = row["value"]
        v = str(v).lower() if isinstance(v, bool) else f"{v:.4g}" if isinstance(v, float) else str(v)
        where = "  [tested on training data]" if "tested on training data" in row["data"] else ""
        lines.append(f"  {row['section']:<17} {row['metric']}: {v}  ({row['direction']}){where}")
    for s in report["skipped"]:
        lines.append(f"  skipped {s['section']}/{s['metric']}: {s['reason']}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``trustgen evaluate``; returns the exit code (errors propagate as TrustgenError)."""
    from trustgen.evaluation.report import RealDataMismatch, evaluate  # imports torch, sklearn: not for --help

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealDataMismatch)  # the output below says it, on its own line
        report = evaluate(args.run, args.samples, real=args.real, holdout=args.holdout, sensitive=args.sensitive,
                          seed=args.seed, out=args.out, progress=True)
    if args.json:
        print(json.dumps(report))
    else:
        print(_text(report))
    return 0
