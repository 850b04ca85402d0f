"""HTML rendering of an evaluation report (a dict from :func:`trustgen.evaluation.report.evaluate`).

Self-contained page: inline CSS, figures as PNG files beside it, every value escaped.
"""

from __future__ import annotations

import html
from typing import Any

from trustgen.evaluation.labels import PRIVATE_NOTICE, TRAINING_DATA_NOTICE

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#1d2330;line-height:1.45}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
.banner{background:#fde8e8;border:2px solid #c81e1e;color:#771d1d;padding:12px 16px;border-radius:6px;
font-weight:600;margin:16px 0}
.warn{background:#fff6dd;border:1px solid #d69e2e;color:#6b4a00;padding:10px 16px;border-radius:6px;margin:12px 0}
table{border-collapse:collapse;width:100%;font-size:14px;margin:8px 0}
th,td{border:1px solid #d8dce3;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f7}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.sec td{background:#e9edf5;font-weight:600}
.badge{display:inline-block;background:#c81e1e;color:#fff;border-radius:4px;padding:0 6px;font-size:11px;
font-weight:600;white-space:nowrap}
.badge.ok{background:#2f855a}.small{font-size:12px;color:#555}
pre{background:#f6f8fa;border:1px solid #d8dce3;padding:10px;white-space:pre-wrap;font-size:13px}
.figs{display:flex;flex-wrap:wrap;gap:0 24px;align-items:flex-start}
figure{margin:16px 0;flex:1 1 100%}figure.half{flex:1 1 calc(50% - 24px);min-width:320px}
figure img{max-width:100%;border:1px solid #d8dce3}figcaption{font-size:13px;color:#444}
table.compact{width:auto}
"""

_SECTIONS = (("fidelity", "Fidelity"), ("utility", "Utility"), ("privacy_attacks", "Privacy attacks"),
             ("fairness", "Fairness"), ("diversity", "Diversity"))


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "–"
    return str(v)


def _e(v: Any) -> str:
    return html.escape(_fmt(v))


def _kv_table(pairs: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs) + "</table>"


def render_html(report: dict) -> str:
    """A self-contained HTML page for a report dict (figures are PNG files beside it)."""
    r, inp = report["run"], report["inputs"]
    p: list[str] = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
                    "<title>trustgen evaluation report</title>", f"<style>{_CSS}</style></head><body>",
                    "<h1>trustgen evaluation report</h1>",
                    f'<div class="small">{_e(r["family"])} run {_e(r["path"])} on {_e(r["data"])}, '
                    f'trustgen {_e(report["trustgen_version"])}, {_e(report["seconds"])} s</div>',
                    f'<div class="banner">&#9888; This report was {html.escape(PRIVATE_NOTICE)}. Every section marked '
                    f'<span class="badge">{html.escape(PRIVATE_NOTICE)}</span> reads the real training or holdout records, so the '
                    "report leaks information about them. Treat it as private; the run's DP guarantee does not "
                    "cover it.</div>"]
    if report["tested_on_training_data"]:
        p.append('<div class="warn"><b>No holdout: some metrics were tested on training data.</b> '
                 "Metrics labelled &ldquo;tested on training data&rdquo; use rows the generator saw (optimistic); "
                 "metrics that need a holdout are listed as skipped. Pass <code>--holdout</code> with real rows "
                 "the model did not train on.</div>")
    p.append("<h2>Overview</h2>")
    p.append(_kv_table([("run", r["path"]), ("model family", r["family"]), ("data kind", r["kind"]),
                        ("label", r["label"]), ("samples", f'{inp["samples"]} ({inp["n_samples"]} rows)'),
                        ("real training data", f'{inp["real"]} ({inp["n_real"]} rows)'),
                        ("holdout",
                         "none" if inp["holdout"] is None else f'{inp["holdout"]} ({inp["n_holdout"]} rows)'),
                        ("sensitive column", inp["sensitive"] or "none"), ("seed", inp["seed"])]))

    pr = report["privacy_report"]
    p.append('<h2>Privacy guarantee of the training run <span class="badge ok">no private data read</span></h2>')
    if "summary" in pr:
        p.append(f"<pre>{html.escape(pr['summary'])}</pre>")
    else:
        p.append("<p>The run has no privacy report (privacy.json).</p>")

    p.append("<h2>Metrics</h2>")
    p.append('<table><tr><th>Metric</th><th>Value</th><th>Direction</th><th>Range</th><th>Data used</th></tr>')
    by_section: dict[str, list[dict]] = {}
    for row in report["metric_table"]:
        by_section.setdefault(row["section"], []).append(row)
    for sec, rows in by_section.items():
        private = any(row["private_data_used"] for row in rows)
        badge = (f'<span class="badge">{html.escape(PRIVATE_NOTICE)}</span>' if private
                 else '<span class="badge ok">does not read private records</span>')
        p.append(f'<tr class="sec"><td colspan="5">{html.escape(sec.capitalize())} {badge}</td></tr>')
        for row in rows:
            data = html.escape(row["data"]).replace(html.escape(TRAINING_DATA_NOTICE),
                                                    f"<b>{html.escape(TRAINING_DATA_NOTICE)}</b>")
            p.append(f'<tr><td>{_e(row["metric"])}</td><td class="num">{_e(row["value"])}</td>'
                     f'<td>{_e(row["direction"])}</td><td>{_e(row["range"])}</td><td>{data}</td></tr>')
    p.append("</table>")

    if report["skipped"]:
        p.append("<h2>Skipped metrics</h2><table><tr><th>Section</th><th>Metric</th><th>Reason</th></tr>")
        p += [f'<tr><td>{_e(s["section"])}</td><td>{_e(s["metric"])}</td><td>{_e(s["reason"])}</td></tr>'
              for s in report["skipped"]]
        p.append("</table>")

    if report["figures"]:
        p.append(f'<h2>Figures <span class="badge">{html.escape(PRIVATE_NOTICE)}</span></h2>')
        p.append('<div class="figs">')
        for f in report["figures"]:
            p.append(f'<figure class="{html.escape(f.get("width", "full"))}"><img src="{html.escape(f["file"])}" '
                     f'alt="{html.escape(f["caption"])}"><figcaption>{html.escape(f["caption"])}</figcaption></figure>')
        p.append("</div>")

    p.append("<h2>Details</h2>")
    for key, title in _SECTIONS:
        sec = report[key]
        badge = f'<span class="badge">{html.escape(sec["notice"])}</span>' if sec["private_data_used"] else ""
        p.append(f"<h3>{title} {badge}</h3>")
        p.append(f'<p class="small">Status: {_e(sec["status"])}. Data: {_e(sec["data"])}. '
                 f'Time: {_e(sec["seconds"])} s.'
                 + (" <b>Tested on training data.</b>" if sec["tested_on_training_data"] else "") + "</p>")
        p.append(_details(key, sec))
    p.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report["notes"]) + "</ul>")
    p.append("</body></html>")
    return "\n".join(p) + "\n"


def _details(key: str, sec: dict) -> str:
    m = sec["metrics"]
    out: list[str] = []
    if key == "fidelity" and "column_distances" in m:
        out.append("<details><summary>Per-column distance (KS for numbers, TV for categories; lower is better)"
                   "</summary><table><tr><th>Column</th><th>Distance</th></tr>")
        out += [f'<tr><td>{_e(c)}</td><td class="num">{_e(v)}</td></tr>'
                for c, v in sorted(m["column_distances"].items(), key=lambda kv: -kv[1])]
        out.append("</table></details>")
    if key == "fidelity" and "feature_space" in m:
        out.append(f'<p class="small">Feature space: {_e(m["feature_space"])}.</p>')
    if key == "privacy_attacks" and "mia_setup" in sec:
        out.append(_kv_table(list(sec["mia_setup"].items())))
    if key == "fairness" and "group_representation" in m:
        out.append(f'<table><tr><th>{_e(m["sensitive"])}</th><th>real share</th><th>synthetic share</th>'
                   "<th>difference (0 ideal)</th></tr>")
        out += [f'<tr><td>{_e(g)}</td><td class="num">{_e(v["real_share"])}</td>'
                f'<td class="num">{_e(v["synth_share"])}</td><td class="num">{_e(v["diff"])}</td></tr>'
                for g, v in m["group_representation"].items()]
        out.append("</table>")
    if key == "fairness" and "parity_gaps" in m:
        out.append("<table><tr><th>TSTR model</th><th>positive class</th><th>group</th><th>n</th>"
                   "<th>selection rate</th><th>true-positive rate</th></tr>")
        for model, per_pos in m["parity_gaps"].items():
            for pos, res in per_pos.items():
                for g, v in res["per_group"].items():
                    out.append(f"<tr><td>{_e(model)}</td><td>{_e(pos)}</td><td>{_e(g)}</td>"
                               f'<td class="num">{_e(v["n"])}</td><td class="num">{_e(v["selection_rate"])}</td>'
                               f'<td class="num">{_e(v["true_positive_rate"])}</td></tr>')
        out.append("</table>")
    if key == "diversity" and "label_coverage" in m:
        shares = m["label_coverage"]["per_class_share"]
        names = m.get("classes") or [str(i) for i in range(len(shares))]
        out.append('<p class="small">Share of the samples generated for each class that the real-data classifier '
                   'recognises as that class (higher is better):</p>')
        out.append('<table class="compact"><tr><th>class</th>' + "".join(f"<th>{_e(c)}</th>" for c in names)
                   + "</tr><tr><td>share recognised</td>"
                   + "".join(f'<td class="num">{_e(v)}</td>' for v in shares) + "</tr></table>")
    if sec["skipped"]:
        out.append("<ul>" + "".join(f"<li>Skipped <b>{_e(k)}</b>: {_e(v)}</li>" for k, v in sec["skipped"].items())
                   + "</ul>")
    return "\n".join(out)
