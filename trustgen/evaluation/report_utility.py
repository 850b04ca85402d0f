"""The ``utility`` section of the evaluation report: TSTR vs TRTR on the real holdout.

Models trained on the synthetic samples (TSTR) are tested on the holdout, or, without one, on the
training data (and say so); the real-data reference (TRTR) and the gap need a holdout.
"""

from __future__ import annotations

from trustgen.evaluation.labels import TRAINING_DATA_NOTICE
from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_section import Section
from trustgen.evaluation.utility import MODELS, trtr, tstr


def utility_section(inputs: EvaluationInputs) -> Section:
    """TSTR scores of the utility models, with TRTR and the gap when there is a holdout."""
    schema = inputs.schema
    s = Section("utility", f"trained on synthetic samples, {inputs.test_desc}",
                tested_on_training_data=not inputs.has_holdout)
    m = s.metrics
    if schema.label is None:
        s.skipped["tstr"] = s.skipped["trtr"] = ("the run has no label (unconditional schema): TSTR/TRTR "
                                                 "need a label to predict")
        return s.finish()
    xs, ys = inputs.xy("synth")
    xt, yt = inputs.test_xy()
    m["task"] = f"predict {schema.label!r} ({schema.n_classes} classes)"
    m["models"] = list(MODELS)
    m["test_data"] = "holdout" if inputs.has_holdout else TRAINING_DATA_NOTICE
    res = s.try_metric("tstr", lambda: tstr(xs, ys, xt, yt, seed=inputs.seed))
    if res is not None:
        m["tstr"] = res
        for model, scores in res.items():
            for key, val in scores.items():
                s.add_row(f"TSTR {model} {key}", val, "higher is better (compare with TRTR)", "[0, 1]", s.data)
    if not inputs.has_holdout:
        s.skipped["trtr"] = ("needs a holdout: training and testing a real-data model on the same rows gives "
                             "no ceiling; pass --holdout")
        return s.finish()
    xr, yr = inputs.xy("real")
    ref = s.try_metric("trtr", lambda: trtr(xr, yr, xt, yt, seed=inputs.seed))
    if ref is not None:
        m["trtr"] = ref
        for model, scores in ref.items():
            for key, val in scores.items():
                s.add_row(f"TRTR {model} {key} (real-data reference)", val, "reference ceiling for TSTR", "[0, 1]",
                          "trained on real training data, tested on the real holdout")
        if res is not None:
            m["gap"] = {model: {k: ref[model][k] - res[model][k] for k in res[model]} for model in res}
            for model, gaps in m["gap"].items():
                s.add_row(f"Utility gap TRTR - TSTR, {model} accuracy", gaps["accuracy"],
                          "lower is better (0: no loss)", "[-1, 1]", "holdout")
    return s.finish()
