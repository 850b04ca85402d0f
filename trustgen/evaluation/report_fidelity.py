"""The ``fidelity`` section of the evaluation report: how closely the samples match the real data.

Tables: per-column KS / TV distance, binned 1-way and 2-way marginal distances and the label-rate
gap, correlation difference and the classifier two-sample AUC.
Images: Frechet distance and PRDC in the feature space of
:meth:`~trustgen.evaluation.report_inputs.EvaluationInputs.image_features`.
"""

from __future__ import annotations

import numpy as np

from trustgen.evaluation.fidelity_image import frechet_distance, prdc
from trustgen.evaluation.fidelity_tabular import classifier_two_sample_auc, column_distances
from trustgen.evaluation.marginal_distances import BINS, marginal_distances
from trustgen.evaluation.report_inputs import MAX_ROWS, EvaluationInputs, subsample
from trustgen.evaluation.report_section import Section

PRDC_K = 5


def fidelity_section(inputs: EvaluationInputs) -> Section:
    """Fidelity metrics of the synthetic samples against the real training data."""
    s = Section("fidelity", "synthetic samples vs the real training data")
    if inputs.is_image:
        _images(inputs, s)
    else:
        _tables(inputs, s)
    return s.finish()


def _images(inputs: EvaluationInputs, s: Section) -> None:
    m, rng = s.metrics, inputs.rng()
    feats = inputs.image_features()
    fr, fs = feats.real, feats.synth
    s.extra["feature_space"] = m["feature_space"] = feats.description
    fd = s.try_metric("frechet_distance", lambda: frechet_distance(fr, fs))
    if fd is not None:
        m["frechet_distance"] = fd
        s.add_row("Frechet distance (feature space: extractor trained on real images)", fd, "lower is better",
                  "[0, inf)", s.data)
    ir, is_ = subsample(len(fr), MAX_ROWS, rng), subsample(len(fs), MAX_ROWS, rng)
    res = s.try_metric("prdc", lambda: prdc(fr[ir], fs[is_], k=PRDC_K))
    if res is not None:
        m["prdc"] = res
        for key, direction, value_range in (("precision", "higher is better", "[0, 1]"),
                                            ("recall", "higher is better", "[0, 1]"),
                                            ("density", "closer to 1 is better", "[0, n_real/k]"),
                                            ("coverage", "higher is better", "[0, 1]")):
            s.add_row(f"PRDC {key} (k={PRDC_K})", res[key], direction, value_range, s.data)


def _tables(inputs: EvaluationInputs, s: Section) -> None:
    m, rng = s.metrics, inputs.rng()
    dist = s.try_metric("column_distances", lambda: column_distances(inputs.real_t, inputs.synth_t))
    if dist is not None:
        worst = max(dist, key=dist.get)
        m["column_distances"] = dist
        m["column_distance_mean"] = float(np.mean(list(dist.values())))
        m["column_distance_max"] = dist[worst]
        m["worst_column"] = worst
        s.add_row("Mean per-column distance (KS numeric, TV categorical)", m["column_distance_mean"],
                  "lower is better", "[0, 1]", s.data)
        s.add_row(f"Worst column distance ({worst})", dist[worst], "lower is better", "[0, 1]", s.data)
    if inputs.real_t.shape[1] >= 2:
        def corr() -> float:  # = correlation_difference, on the matrices the heat-map figure draws too
            a, b = (x.to_numpy() for x in inputs.associations())
            return float(np.abs(a - b)[np.triu_indices_from(a, k=1)].mean())
        cd = s.try_metric("correlation_difference", corr)
        if cd is not None:
            m["correlation_difference"] = cd
            s.add_row("Correlation difference (mean |assoc real - assoc synth|)", cd, "lower is better", "[0, 2]",
                      s.data)
    else:
        s.skipped["correlation_difference"] = "the table has a single column"
    md = s.try_metric("marginal_distances", lambda: marginal_distances(inputs.real_t, inputs.synth_t, inputs.schema))
    if md is not None:
        m["one_way_marginal_distance"], m["two_way_marginal_distance"] = md["one_way_mean"], md["two_way_mean"]
        s.add_row(f"Mean 1-way marginal distance (TV, numbers in {BINS} bins of their declared range)",
                  md["one_way_mean"], "lower is better", "[0, 1]", s.data)
        s.add_row("Mean 2-way marginal distance (TV over every pair of columns)", md["two_way_mean"],
                  "lower is better", "[0, 1]", s.data)
        if "label_rate_gap" in md:
            m["label_rate_gap"] = md["label_rate_gap"]
            s.add_row("Largest label-rate gap (real vs synthetic class share)", md["label_rate_gap"],
                      "lower is better", "[0, 1]", s.data)
    ir = subsample(len(inputs.real_t), MAX_ROWS, rng)
    is_ = subsample(len(inputs.synth_t), MAX_ROWS, rng)
    auc = s.try_metric("classifier_two_sample_auc", lambda: classifier_two_sample_auc(
        inputs.real_t.iloc[ir], inputs.synth_t.iloc[is_], seed=inputs.seed))
    if auc is not None:
        m["classifier_two_sample_auc"] = auc
        s.add_row("Classifier two-sample AUC (random forest, real vs synthetic)", auc, "closer to 0.5 is better",
                  "[0, 1]", s.data)
