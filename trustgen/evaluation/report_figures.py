"""The PNG figures of the evaluation report, written beside ``report.html``.

Images: a grid of synthetic samples and one of real training images. Tables: per-column
marginals (the columns with the largest fidelity distance first) and, when the fidelity section
computed them, the binned 1-way / 2-way marginal distances, the association matrices and their
difference. Both: TSTR beside TRTR per model, when the utility section computed them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_section import Section
from trustgen.evaluation.marginal_distances import BINS, marginal_distances
from trustgen.plots import (
    association_heatmap, image_grid, marginal_distance_figure, marginals, save_figure, utility_bars,
)

MAX_MARGINAL_PLOTS = 12


def write_figures(out: Path, inputs: EvaluationInputs, fidelity: Section, utility: Section | None = None) -> list[dict]:
    """Write the figures into ``out``; returns ``[{"file", "width", "caption"}]`` in page order."""
    figs = _image_figures(out, inputs) if inputs.is_image else _table_figures(out, inputs, fidelity)
    if utility is not None and "tstr" in utility.metrics:
        m = utility.metrics
        test = "holdout" if inputs.has_holdout else "training data"
        save_figure(utility_bars(m["tstr"], m.get("trtr"), test_data=test), out / "utility.png")
        figs.append({"file": "utility.png", "width": "half",
                     "caption": f"TSTR beside TRTR per model, scored on the {test}"
                                + ("" if "trtr" in m else " (TRTR needs a holdout)") + ". Private data."})
    return figs


def _image_figures(out: Path, inputs: EvaluationInputs) -> list[dict]:
    classes = inputs.schema.classes
    names = None if classes is None else list(classes)
    figs = []
    for file, x, y, title, caption in (
            ("samples.png", inputs.synth_x, inputs.synth_y, "synthetic samples (first 10 per class)",
             "Synthetic samples (one row per requested class)."),
            ("real.png", inputs.real_x, inputs.real_y, "real training images (first 10 per class)",
             "Real training images, for comparison (private data).")):
        save_figure(image_grid(x, None if y is None else np.asarray(y), names, title=title), out / file)
        figs.append({"file": file, "width": "half", "caption": caption})
    return figs


def _table_figures(out: Path, inputs: EvaluationInputs, fidelity: Section) -> list[dict]:
    figs = []
    cols = list(inputs.real_t.columns)
    distances = fidelity.metrics.get("column_distances")
    if distances:
        cols = sorted(cols, key=lambda c: -distances.get(c, 0.0))
    shown = cols[:MAX_MARGINAL_PLOTS]
    save_figure(marginals(inputs.real_t, inputs.synth_t, shown, max_columns=MAX_MARGINAL_PLOTS), out / "marginals.png")
    more = f" (the {len(shown)} with the largest distance of {len(cols)})" if len(cols) > len(shown) else ""
    figs.append({"file": "marginals.png", "width": "full",
                 "caption": f"Per-column marginals, real vs synthetic{more}. Private data."})
    if "one_way_marginal_distance" in fidelity.metrics:
        md = marginal_distances(inputs.real_t, inputs.synth_t, inputs.schema)
        bars, heat = marginal_distance_figure(md["one_way"], md["two_way"], list(inputs.real_t.columns))
        save_figure(bars, out / "marginal_distances.png")
        save_figure(heat, out / "pair_distances.png")
        figs.append({"file": "marginal_distances.png", "width": "full",
                     "caption": f"1-way marginal distance per column (total variation; numbers in {BINS} bins of "
                                f"their declared range), largest first: mean {md['one_way_mean']:.3f}. Private data."})
        figs.append({"file": "pair_distances.png", "width": "full",
                     "caption": f"2-way marginal distance of every pair of columns (their joint bins), the 1-way "
                                f"distance on the diagonal: mean over pairs {md['two_way_mean']:.3f}. Private data."})
    if "correlation_difference" not in fidelity.metrics:  # the association matrices failed or were skipped
        return figs
    real_a, synth_a = inputs.associations()
    save_figure(association_heatmap([(real_a, "real", True), (synth_a, "synthetic", True)]), out / "correlation.png")
    figs.append({"file": "correlation.png", "width": "full",
                 "caption": "Association matrices of the real and synthetic data (Pearson r for number pairs, "
                            "Cramer's V for category pairs, correlation ratio for mixed pairs). Private data."})
    diff = (real_a - synth_a).abs()
    save_figure(association_heatmap([(diff, "|real - synthetic| association", False)]),
                out / "correlation_difference.png")
    figs.append({"file": "correlation_difference.png", "width": "half",
                 "caption": "Correlation-difference heat map: absolute difference of the two association matrices "
                            "(0, white, is ideal; the correlation difference metric is the mean over column pairs). "
                            "Private data."})
    return figs
