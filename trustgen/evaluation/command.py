"""``trustgen evaluate``: fidelity, utility, privacy-attack, fairness and diversity report for samples.

    trustgen evaluate RUN --samples FILE [--real DATA] [--holdout DATA] [--sensitive COLUMN]
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

from trustgen.evaluation.labels import PRIVATE_NOTICE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` arguments to ``parser``."""
    parser.add_argument("run", help="run directory written by `trustgen train`")
    parser.add_argument("--samples", required=True,
                        help="samples written by `trustgen sample`: .csv (tables, every schema column incl. the "
                             "label) or .npz (images, arrays x and y)")
    parser.add_argument("--real", help="the real training data (built-in name or file); default: the data the run "
                                       "was trained on, as recorded in run.json")
    parser.add_argument("--holdout", help="real data the model did NOT train on (enables TRTR, the DCR comparison "
                                          "and the membership attack; without it they are skipped)")
    parser.add_argument("--sensitive", metavar="COLUMN",
                        help="column to check group representation and parity gaps on (tables)")
    parser.add_argument("--out", required=True, help="report directory (report.json, report.html, PNG figures)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")


def _text(report: dict) -> str:
    lines = [f"wrote {report['files']['dir']}/report.html and report.json",
             f"  WARNING: this report was {PRIVATE_NOTICE}; treat it as private."]
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
    from trustgen.evaluation.report import evaluate  # the metrics import torch and sklearn: not for --help

    report = evaluate(args.run, args.samples, real=args.real, holdout=args.holdout, sensitive=args.sensitive,
                      seed=args.seed, out=args.out, progress=True)
    if args.json:
        print(json.dumps(report))
    else:
        print(_text(report))
    return 0
