"""The ``diversity`` section of the evaluation report: label and cluster coverage, mode collapse.

Label coverage (conditional images) checks the requested labels with the real-data classifier of
:meth:`~trustgen.evaluation.report_inputs.EvaluationInputs.image_features`; cluster coverage
clusters the real data (image features, or the encoded table) and counts the clusters the samples
reach. The thresholds those counts used stay in the in-memory
:attr:`~trustgen.evaluation.report_section.Section.figure_data` (``"cluster_coverage"``,
``"label_coverage"``) for the report's figure.
"""

from __future__ import annotations

import numpy as np

from trustgen.evaluation.diversity import (
    LABEL_THRESHOLD, MIN_RELATIVE_SHARE, cluster_coverage, is_collapsed, label_coverage,
)
from trustgen.evaluation.labels import TRAINING_DATA_NOTICE
from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_section import Section

MAX_CLUSTERS = 10


def diversity_section(inputs: EvaluationInputs) -> Section:
    """Coverage of the real data's labels and clusters by the samples, with a collapse flag."""
    s = Section("diversity", "synthetic samples vs the real training data")
    m = s.metrics
    results = []
    if inputs.is_image:
        lc = _label_coverage(inputs, s)
        if lc is not None:
            results.append(lc)
        feats = inputs.image_features()
        fr, fs = feats.real, feats.synth
        feats_desc = "feature space: " + feats.description
    else:
        fr, fs = inputs.real_t, inputs.synth_t
        feats_desc = "all columns, one-hot encoded and standardised with real statistics"
    n_clusters = min(MAX_CLUSTERS, len(fr))
    cc = s.try_metric("cluster_coverage", lambda: cluster_coverage(fr, fs, n_clusters=n_clusters, seed=inputs.seed,
                                                                   min_relative_share=MIN_RELATIVE_SHARE))
    if cc is not None:
        m["cluster_coverage"] = cc
        s.figure_data["cluster_coverage"] = {"min_relative_share": MIN_RELATIVE_SHARE, "space": feats_desc}
        m["cluster_space"] = feats_desc
        results.append(cc)
        s.add_row(f"Cluster coverage ({n_clusters} KMeans clusters of the real data)", cc["coverage_fraction"],
                  "higher is better", "[0, 1]", s.data)
        s.add_row("Cluster entropy ratio (synthetic / real)", cc["entropy_ratio"], "closer to 1 is better",
                  "[0, ~1]", s.data)
    if results:
        m["collapsed"] = is_collapsed(*results)
        s.add_row("Mode collapse flagged", m["collapsed"], "false is better", "true / false", s.data)
    return s.finish()


def _label_coverage(inputs: EvaluationInputs, s: Section) -> dict | None:
    """Label coverage of conditional images, and the accuracy of the classifier that bounds it."""
    extractor = inputs.image_features().extractor
    if inputs.synth_y is None:
        s.skipped["label_coverage"] = "unconditional images: no requested labels to check"
        return None
    if extractor is None:
        s.skipped["label_coverage"] = "the real images have no labels to train a classifier on"
        return None
    m = s.metrics
    lc = s.try_metric("label_coverage", lambda: label_coverage(
        extractor.predict(inputs.synth_x), np.asarray(inputs.synth_y), inputs.schema.n_classes,
        threshold=LABEL_THRESHOLD))
    if lc is not None:
        m["label_coverage"] = lc
        s.figure_data["label_coverage"] = {"threshold": LABEL_THRESHOLD}
        m["classes"] = [str(c) for c in inputs.schema.classes]
        s.add_row("Label coverage (share of classes recognised by a real-data classifier)", lc["coverage_fraction"],
                  "higher is better", "[0, 1]", s.data)
        s.add_row("Predicted-label entropy ratio", lc["entropy_ratio"], "closer to 1 is better", "[0, ~1]", s.data)
    if inputs.has_holdout:
        acc, where = float(np.mean(extractor.predict(inputs.hold_x) == inputs.hold_y)), "real holdout"
    else:
        acc, where = float(np.mean(extractor.predict(inputs.real_x) == inputs.real_y)), TRAINING_DATA_NOTICE
    m["label_classifier"] = {"accuracy": acc, "tested_on": where, "note": "label coverage is bounded by this accuracy"}
    s.add_row("Accuracy of the label classifier (bounds label coverage)", acc, "higher is better", "[0, 1]",
              "real holdout" if inputs.has_holdout else f"real training images, {TRAINING_DATA_NOTICE}")
    return lc
