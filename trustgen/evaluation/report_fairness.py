"""The ``fairness`` section of the evaluation report (tables with a ``sensitive`` column).

Group representation compares the sensitive column's group shares in the samples and the real
data; parity gaps are those of the TSTR models' predictions on the holdout (or, without one, on
the training data, and it says so). The gaps of the metric table (per model, the largest over
the positive classes checked) are also kept in the in-memory
:attr:`~trustgen.evaluation.report_section.Section.figure_data` (``"parity_gaps"``) for the
report's figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trustgen.data.schema import category_index, category_key
from trustgen.errors import ConfigError, DataError
from trustgen.evaluation.checks import encode
from trustgen.evaluation.fairness import group_representation, parity_gaps
from trustgen.evaluation.labels import TRAINING_DATA_NOTICE
from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_section import Section
from trustgen.evaluation.utility import MODELS, make_classifier


def fairness_section(inputs: EvaluationInputs, sensitive: str | None, positive_label: Any = None) -> Section:
    """Group representation of ``sensitive`` and the parity gaps of the TSTR models.

    Args:
        inputs: the loaded inputs (a tabular run; ``sensitive`` was checked against its schema).
        sensitive: the column to group by; None skips the section.
        positive_label: the favourable class (default: the last class of a binary label; a
            multi-class label is checked one class against the rest).

    Raises:
        ConfigError: if ``positive_label`` is not a class of the run's label.
    """
    s = Section("fairness", f"group shares: synthetic vs real training data; parity: TSTR models {inputs.test_desc}",
                tested_on_training_data=not inputs.has_holdout)
    if sensitive is None:
        s.skipped["group_representation, parity_gaps"] = "no sensitive column given (--sensitive COLUMN)"
        s.status = "skipped"
        s.tested_on_training_data = False
        return s
    m = s.metrics
    m["sensitive"] = sensitive
    rep = s.try_metric("group_representation", lambda: group_representation(
        inputs.real_t[sensitive].to_numpy(), inputs.synth_t[sensitive].to_numpy()))
    if rep is not None:
        m["group_representation"] = rep
        worst = max(rep, key=lambda g: abs(rep[g]["diff"]))
        m["max_abs_representation_diff"] = abs(rep[worst]["diff"])
        s.add_row(f"Largest group share difference ({sensitive} = {worst})", abs(rep[worst]["diff"]),
                  "lower is better", "[0, 1]", "synthetic vs real training data")
    if inputs.schema.label is None:
        s.skipped["parity_gaps"] = "the run has no label: parity gaps need a prediction task"
    else:
        _parity(inputs, s, sensitive, _positive_labels(inputs, positive_label))
    return s.finish()


def _positive_labels(inputs: EvaluationInputs, positive_label: Any) -> list[str]:
    """The class keys counted as the favourable outcome, one parity check each."""
    classes = list(category_index(inputs.schema.classes))
    if positive_label is None:
        return [classes[-1]] if len(classes) == 2 else classes
    if category_key(positive_label) not in classes:
        raise ConfigError(f"positive_label {positive_label!r} is not a class of {inputs.schema.label!r}: {classes}")
    return [category_key(positive_label)]


def _parity(inputs: EvaluationInputs, s: Section, sensitive: str, positives: list[str]) -> None:
    m = s.metrics
    xs, ys = inputs.xy("synth")
    xt, yt = inputs.test_xy()
    groups = (inputs.hold_t if inputs.has_holdout else inputs.real_t)[sensitive].to_numpy()
    m["positive_labels"] = positives
    m["test_data"] = "holdout" if inputs.has_holdout else TRAINING_DATA_NOTICE
    parity: dict[str, Any] = {}
    shown: dict[str, dict[str, float | None]] = {}  # the table's gaps per model, for the figure
    which = f"positive = {positives[0]!r}" if len(positives) == 1 else "max over classes"
    for name in MODELS:
        def fit_predict(name: str = name) -> np.ndarray:
            if len(set(ys.tolist())) < 2:
                raise DataError("the synthetic labels hold a single class; no classifier can be trained")
            xa, xb = encode({"x_synth": xs, "x_test": xt})
            return make_classifier(name, inputs.seed).fit(xa, ys).predict(xb)
        pred = s.try_metric(f"parity_gaps ({name})", fit_predict)
        if pred is None:
            continue
        per_pos = {}
        for pos in positives:
            r = s.try_metric(f"parity_gaps ({name}, positive {pos!r})",
                             lambda pos=pos: parity_gaps(yt, pred, groups, positive_label=pos))
            if r is not None:
                per_pos[pos] = r
        if not per_pos:
            continue
        parity[name] = per_pos
        dp = max(r["demographic_parity_gap"] for r in per_pos.values())
        eo = [r["equal_opportunity_gap"] for r in per_pos.values() if r["equal_opportunity_gap"] is not None]
        pdata = f"TSTR {name}, {inputs.test_desc}"
        s.add_row(f"Demographic parity gap, TSTR {name} ({which})", dp, "lower is better", "[0, 1]", pdata)
        if eo:
            s.add_row(f"Equal opportunity gap, TSTR {name} ({which})", max(eo), "lower is better", "[0, 1]", pdata)
        shown[name] = {"demographic parity": dp, "equal opportunity": max(eo) if eo else None}
    if parity:
        m["parity_gaps"] = parity
        s.figure_data["parity_gaps"] = {"gaps": shown, "which": which, "test_data": inputs.test_desc}
