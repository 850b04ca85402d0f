"""The PNG figures of the evaluation report, written beside ``report.html``.

Images: a grid of synthetic samples and one of real training images. Tables: per-column
marginals (the columns with the largest fidelity distance first) and, when the fidelity section
computed them, the binned 1-way / 2-way marginal distances, the association matrices and their
difference. Both: TSTR beside TRTR per model, when the utility section computed them, and one
figure per section from what that section computed (kept in its in-memory
:attr:`~trustgen.evaluation.report_section.Section.figure_data`, never in the JSON):

* ``dcr.png``: distance to closest record, synthetic-to-train beside holdout-to-train;
* ``membership_roc.png``: the membership attack's ROC curve (needs a holdout);
* ``fairness.png``: group shares real vs synthetic and the TSTR models' parity gaps (``sensitive``);
* ``diversity.png``: cluster coverage and, for conditional images, label coverage.

Each ``*_figure`` function returns a :class:`SectionFigure` (the matplotlib figure and its entry
in the report), or None when its section has nothing to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_section import Section
from trustgen.evaluation.marginal_distances import BINS, marginal_distances
from trustgen.plots import (
    association_heatmap, coverage_bars, dcr_histograms, group_share_bars, image_grid, marginal_distance_figure,
    marginals, roc_figure, save_figure, utility_bars,
)

MAX_MARGINAL_PLOTS = 12


@dataclass
class SectionFigure:
    """A figure drawn from one section's numbers, and its entry in the report's figure list."""

    file: str
    width: Literal["full", "half"]
    caption: str
    figure: Any  # a matplotlib Figure

    def entry(self) -> dict:
        return {"file": self.file, "width": self.width, "caption": self.caption}


def write_figures(out: Path, inputs: EvaluationInputs, fidelity: Section, utility: Section | None = None,
                  privacy_attacks: Section | None = None, fairness: Section | None = None,
                  diversity: Section | None = None) -> list[dict]:
    """Write the figures into ``out``; returns ``[{"file", "width", "caption"}]`` in page order.

    A section that is not given, or has nothing to draw, adds no figure.
    """
    figs = _image_figures(out, inputs) if inputs.is_image else _table_figures(out, inputs, fidelity)
    if utility is not None and "tstr" in utility.metrics:
        m = utility.metrics
        test = "holdout" if inputs.has_holdout else "training data"
        save_figure(utility_bars(m["tstr"], m.get("trtr"), test_data=test), out / "utility.png")
        figs.append({"file": "utility.png", "width": "half",
                     "caption": f"TSTR beside TRTR per model, scored on the {test}"
                                + ("" if "trtr" in m else " (TRTR needs a holdout)") + ". Private data."})
    for section, draw in ((privacy_attacks, dcr_figure), (privacy_attacks, membership_roc_figure),
                          (fairness, fairness_figure), (diversity, diversity_figure)):
        fig = None if section is None else draw(section)
        if fig is not None:
            save_figure(fig.figure, out / fig.file)
            figs.append(fig.entry())
    return figs


def dcr_figure(attacks: Section) -> SectionFigure | None:
    """Distance to closest record: histograms of the synthetic-to-train (and holdout-to-train)
    distances the privacy-attack section computed; None if it computed none."""
    dist = attacks.figure_data.get("dcr")
    if dist is None:
        return None
    dcr = attacks.metrics["distance_to_closest_record"]
    pixels = str(attacks.extra.get("features", "")).startswith("pixels")
    fig = dcr_histograms(dist.synth, dist.holdout, synth_median=dcr["synth_median"],
                         holdout_median=dcr.get("holdout_median"),
                         features="standardised pixels" if pixels else "standardised features")
    compare = ("each synthetic row (red) and each real holdout row (grey) to its nearest training row, over the "
               "same bins, as shares of their rows; dashed lines: the medians of the metric table. Synthetic rows "
               "piling up left of the holdout, or in the first bin (exact copies), point to memorisation"
               if dist.holdout is not None else
               "each synthetic row to its nearest training row, as shares of the rows; dashed line: the median of "
               "the metric table; a pile in the first bin means exact copies (the holdout comparison needs "
               "--holdout)")
    caption = (f"Distance to the closest training record: {compare}. Drawn from the distances the privacy-attack "
               "section computes on the training records; no row is named or shown. Private data.")
    return SectionFigure("dcr.png", "half", caption, fig)


def membership_roc_figure(attacks: Section) -> SectionFigure | None:
    """The membership attack's ROC curve, with the diagonal and its AUC; None without the attack."""
    roc = attacks.figure_data.get("mia_roc")
    if roc is None:
        return None
    auc = attacks.metrics["density_ratio_mia"]["auc"]
    fig = roc_figure(roc["fpr"], roc["tpr"], auc, attack="density-ratio attack")
    setup = attacks.extra.get("mia_setup", {})
    caption = (f"ROC curve of the density-ratio membership attack ({setup.get('members', 'training rows')} as "
               f"members against {setup.get('non_members', 'holdout rows')} as non-members), AUC {auc:.3f} as in "
               "the metric table; the dashed diagonal is guessing. A curve above it, above all at a low "
               "false-positive rate, means the samples reveal which records were in the training data. Computed "
               "from the training records, as the privacy-attack section states. Private data.")
    return SectionFigure("membership_roc.png", "half", caption, fig)


def fairness_figure(fairness: Section) -> SectionFigure | None:
    """Group shares real vs synthetic and the parity gaps of the TSTR models; None without a
    sensitive column (or when the group shares failed)."""
    shares = fairness.metrics.get("group_representation")
    if not shares:
        return None
    sensitive = fairness.metrics["sensitive"]
    parity = fairness.figure_data.get("parity_gaps")
    gaps = None if parity is None else parity["gaps"]
    fig = group_share_bars(shares, gaps, group_name=sensitive,
                           gap_title="parity gaps" + ("" if parity is None else f" ({parity['which']})"))
    caption = (f"Fairness: the share of each group of {sensitive!r} in the real training data and in the samples"
               + ("" if parity is None else
                  f" (left), and the demographic-parity and equal-opportunity gaps of each TSTR model "
                  f"{parity['test_data']} ({parity['which']}; right), as in the metric table; 0 is parity")
               + ". Private data.")
    return SectionFigure("fairness.png", "full" if gaps else "half", caption, fig)


def diversity_figure(diversity: Section) -> SectionFigure | None:
    """Cluster coverage (and label coverage of conditional images) as bars; None when the cluster
    coverage was not computed (it fails only where label coverage cannot be computed either)."""
    cc = diversity.metrics.get("cluster_coverage")
    if cc is None:
        return None
    lc = diversity.metrics.get("label_coverage")
    need = diversity.figure_data["cluster_coverage"]["min_relative_share"]
    fig = coverage_bars(cc["real_shares"], cc["synth_shares"], need,
                        class_shares=None if lc is None else lc["per_class_share"],
                        class_names=diversity.metrics.get("classes"),
                        class_threshold=None if lc is None else diversity.figure_data["label_coverage"]["threshold"])
    caption = (f"Cluster coverage: the share of the real rows and of the samples in each of the "
               f"{len(cc['real_shares'])} KMeans clusters of the real data ({cc['coverage']} covered; largest "
               f"first); a cluster counts as covered when its synthetic bar reaches the black tick ({need:g} times "
               "its real share), uncovered ones are numbered in red"
               + ("" if lc is None else
                  ". Right: the share of the samples generated for each class that the real-data classifier "
                  "recognises as that class (covered above the dashed line)")
               + ". Private data.")
    return SectionFigure("diversity.png", "full" if lc is not None else "half", caption, fig)


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
                 "caption": f"Per-column marginals, real (grey) vs synthetic (red), as shares of the rows{more}. "
                            "Private data."})
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
