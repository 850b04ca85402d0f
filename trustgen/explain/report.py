"""``trustgen explain``: the explanations of a file of records, written whole into one directory.

For counterfactuals (``target``) or CLUEs (``clue=True``) of every input, the directory holds

* ``counterfactuals.csv`` / ``clues.csv`` (tables: the records, with per row the query index,
  validity, the classifier's probabilities before and after, features changed, distance) or
  ``counterfactuals.npz`` / ``clues.npz`` (images);
* ``attributions.csv`` (tables) or inside the ``.npz`` (images): what each feature's change
  adds to the classifier's target output, by Captum with the input as the baseline (Integrated
  Gradients on the logit for a torch classifier, adding up to the logit's change; feature
  ablation on the probability for a black box);
* ``attributions.png`` (tables: the largest attributions per input as bars) or
  ``counterfactuals.png`` / ``clues.png`` (images: input, explanation, change, attribution);
* ``explanation.json``: what was asked and the totals.

Everything in it is computed from the inputs: it is as private as they are (the CLI refuses to
write it inside a run directory, which is what people share).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trustgen.constraints.space import Space
from trustgen.data.encoders import Data, ImageData
from trustgen.errors import ConfigError
from trustgen.explain.attribution import attribute
from trustgen.explain.clue import clue
from trustgen.explain.counterfactual import counterfactual
from trustgen.explain.scorer import make_scorer
from trustgen.explain.search import features

MARKER = "explanation.json"
FORMAT = "trustgen-explanation-1"
FIGURES = 8  # inputs shown in the figure


def class_names(classifier, schema, k: int) -> list[str]:
    """The names of the classifier's ``k`` outputs: a scikit-learn model's ``classes_``, the
    schema's classes when a torch classifier has as many outputs, else their indices."""
    names = getattr(classifier, "classes_", None)
    if names is not None and len(names) == k:
        return [str(c) for c in names]
    if schema.n_classes == k:
        return [str(c) for c in schema.classes]
    return [str(i) for i in range(k)]


def resolve_target(text: str, names: list[str], predicted: np.ndarray) -> np.ndarray:
    """``--target``: a class name, a class index, or ``flip`` (two classes: the other one)."""
    if text == "flip":
        if len(names) != 2:
            raise ConfigError(f"--target flip needs a classifier of two classes; this one has {len(names)}: name one")
        return 1 - predicted
    if text in names:
        return np.full(len(predicted), names.index(text))
    if text.isdigit() and int(text) < len(names):
        return np.full(len(predicted), int(text))
    raise ConfigError(f"--target {text!r} is not one of the classifier's classes {names} (or flip)")


def _generator_labels(names: list[str], schema, classes: np.ndarray, labelled: bool):
    """What the run is conditioned on: the classifier's class, when its classes are the
    schema's label classes (matched by name, in any order); else the inputs' own labels (None),
    which an input file without the label column does not have."""
    if not schema.n_classes:
        return None
    own = [str(c) for c in schema.classes]
    if sorted(names) == sorted(own):
        return np.array([own.index(names[i]) for i in classes], dtype=np.int64)
    if labelled:
        return None
    raise ConfigError(f"the classifier's classes {names} are not the run's label classes {own}, so the run is "
                      f"conditioned on the inputs' own labels: add the label column {schema.label!r} to --input")


def explain_records(run, classifier, data: Data, out: str | Path, *, target: str | None = None, clue_mode: bool = False,
                    immutable=(), constraints=None, n_counterfactuals: int = 1, steps: int = 300,
                    threshold: float = 0.5, seed: int = 0, source: str = "", labelled: bool = True) -> dict:
    """Explain ``data`` (records in the run's schema) and write the directory ``out``; returns
    the summary written to ``explanation.json``. ``labelled``: ``data``'s label column is the
    inputs' own (False: a placeholder, never used)."""
    from trustgen.io import atomic_write_directory

    if (target is None) == (not clue_mode):
        raise ConfigError("give --target T (counterfactuals) or --clue (explanations of uncertainty), one of them")
    space = Space(run.schema)
    if isinstance(classifier, nn.Module):
        classifier.to(run.model.device)
    scorer = make_scorer(classifier, space, seed=seed)
    x_units = space.data_units(data).float()
    with torch.no_grad():
        before = scorer.probs(space.from_units(x_units.to(run.model.device))).cpu().numpy()
    names = class_names(classifier, run.schema, before.shape[1])
    predicted = before.argmax(1)
    groups = features(space, space.dim)
    feature_names = _feature_names(space, groups)
    if clue_mode:
        res = clue(classifier, data, run, labels=_generator_labels(names, run.schema, predicted, labelled),
                   immutable=immutable, constraints=constraints, steps=steps, seed=seed)
        explained, query, t = res.explanations, np.arange(len(predicted)), res.prediction_after
        table = pd.DataFrame({"query": query, "prediction_before": [names[i] for i in res.prediction_before],
                              "prediction_after": [names[i] for i in res.prediction_after],
                              "entropy_before": res.entropy_before, "entropy_after": res.entropy_after,
                              "epistemic_before": res.epistemic_before, "epistemic_after": res.epistemic_after,
                              "features_changed": res.changed, "distance": res.proximity})
        totals = {"entropy_before_mean": float(res.entropy_before.mean()),
                  "entropy_after_mean": float(res.entropy_after.mean())}
        stem = "clues"
    else:
        t_in = resolve_target(target, names, predicted)
        res = counterfactual(classifier, data, t_in, run, labels=_generator_labels(names, run.schema, t_in, labelled),
                             immutable=immutable, constraints=constraints, n_counterfactuals=n_counterfactuals,
                             steps=steps, threshold=threshold, seed=seed)
        explained, query, t = res.counterfactuals, res.query, t_in[res.query]
        rows = np.arange(len(query))
        table = pd.DataFrame({"query": query, "rank": rows - query * n_counterfactuals,
                              "target": [names[i] for i in t], "valid": res.valid,
                              "p_target_before": res.probs_before[rows, t], "p_target_after": res.probs_after[rows, t],
                              "features_changed": res.changed, "distance": res.proximity})
        totals = {"validity": float(res.valid.mean()), "features_changed_mean": float(res.changed[res.valid].mean())
                  if res.valid.any() else None, "method": res.method}
        stem = "counterfactuals"
    cf_units = space.data_units(explained).float()
    forward = classifier if scorer.differentiable else (lambda u: scorer.probs(space.from_units(u.double())).float())
    dev = run.model.device
    # the explanation attributed against the input: each feature's share of what its change does to the target
    attr = attribute(forward, cf_units.to(dev), t, x_units[query].to(dev), features=groups, names=feature_names,
                     method="integrated_gradients" if scorer.differentiable else "feature_ablation")
    summary = {"format": FORMAT, "input": source, "n_inputs": int(len(predicted)), "rows": int(len(query)),
               "mode": "clue" if clue_mode else "counterfactual", "target": target, "classes": names,
               "threshold": None if clue_mode else threshold,
               "attribution": attr.method, "immutable": list(immutable), "steps": steps, "seed": seed,
               "classifier": "torch (gradient path)" if scorer.differentiable else "predict_proba (black box)",
               "privacy": "every file here is computed from the input records and discloses them: keep it as "
                          "private as the inputs; the run itself is not spent (no privacy budget is used)",
               **totals}

    def fill(d: Path) -> None:
        if space.image:
            np.savez(d / f"{stem}.npz", x=np.asarray(explained.x, dtype=np.float32),
                     attributions=attr.values.reshape((len(query),) + run.schema.shape).astype(np.float32),
                     **{c: _plain_array(table[c]) for c in table.columns})
            _image_figure(d / f"{stem}.png", data, explained, attr, query, table, run.schema, clue_mode)
        else:
            records = explained.reset_index(drop=True)
            _apart(table, records.columns).join(records).to_csv(d / f"{stem}.csv", index=False)
            attributions = pd.DataFrame(attr.per_feature, columns=feature_names)
            _apart(pd.DataFrame({"query": query}), attributions.columns).join(attributions).to_csv(
                d / "attributions.csv", index=False)
            _bar_figure(d / "attributions.png", attr, table, clue_mode)
        (d / MARKER).write_text(json.dumps(summary, indent=2) + "\n")

    atomic_write_directory(out, fill)
    return summary


def _apart(table: pd.DataFrame, columns) -> pd.DataFrame:
    """``table``'s columns renamed ``explain.NAME`` where a record's column has the same name
    (a feature called ``distance`` or ``query``), so no column shadows another."""
    taken = set(map(str, columns))
    return table.rename(columns={c: f"explain.{c}" for c in table.columns if c in taken})


def _plain_array(column: pd.Series) -> np.ndarray:
    """A column as an array ``np.load`` reads without pickles (class names as strings)."""
    v = column.to_numpy()
    return v.astype(str) if v.dtype == object else v


def _feature_names(space: Space, groups) -> list[str]:
    if space.image:
        return [f"pixel_{int(g[0])}" for g in groups]
    by_start = {**{i: n for n, i in space.numeric.items()}, **{s: n for n, (s, _) in space.categorical.items()}}
    return [by_start[int(g[0])] for g in groups]


def _titles(table: pd.DataFrame, clue_mode: bool) -> list[str]:
    if clue_mode:
        return [f"input {r.query}: entropy {r.entropy_before:.2f} -> {r.entropy_after:.2f} ({r.prediction_after})"
                for r in table.itertuples()]
    return [f"input {r.query}: p({r.target}) {r.p_target_before:.2f} -> {r.p_target_after:.2f}"
            + ("" if r.valid else " (not reached)") for r in table.itertuples()]


def _bar_figure(path: Path, attr, table: pd.DataFrame, clue_mode: bool) -> None:
    from trustgen.plots import attribution_bars, save_figure

    n = min(len(table), FIGURES)
    label = "what the change adds to the explanation's class" if clue_mode else "what the change adds to the target"
    save_figure(attribution_bars(attr.per_feature[:n], attr.names, _titles(table.iloc[:n], clue_mode), label=label),
                path)


def _image_figure(path: Path, data: ImageData, explained: ImageData, attr, query, table, schema, clue_mode) -> None:
    from trustgen.plots import counterfactual_images, save_figure

    n = min(len(table), FIGURES)
    x = np.asarray(data.x, dtype=np.float64)[query[:n]]
    maps = attr.values[:n].reshape((n,) + schema.shape)
    save_figure(counterfactual_images(x, np.asarray(explained.x[:n], dtype=np.float64), maps,
                                      [t.split(":")[0] for t in _titles(table.iloc[:n], clue_mode)],
                                      low=schema.low, high=schema.high), path)


def check_out_directory(out: str | Path, reads: dict[str, str | None] | None = None) -> None:
    """``--out`` is new, empty, or a previous explanation (never a directory of other files,
    which writing it whole would replace), and holds none of the files the command reads
    (``reads``: option -> path), which replacing it would delete."""
    p = Path(out)
    for option, path in (reads or {}).items():
        if path is not None and Path(path).resolve().is_relative_to(p.resolve()):
            raise ConfigError(f"{option} {str(path)!r} is inside --out {str(out)!r}, which is replaced whole: move it "
                              "or write the explanations elsewhere")
    if p.is_dir() and any(p.iterdir()) and not (p / MARKER).is_file():
        raise ConfigError(f"--out {str(out)!r} is a directory of other files; writing the explanations replaces the "
                          "whole directory: give a new or empty one")


def explain_summary_text(summary: dict[str, Any], out: str) -> str:
    if summary["mode"] == "clue":
        return (f"wrote CLUEs of {summary['n_inputs']} inputs to {out}: mean entropy "
                f"{summary['entropy_before_mean']:.3f} -> {summary['entropy_after_mean']:.3f}")
    goal = "the other class" if summary["target"] == "flip" else summary["target"]
    return (f"wrote {summary['rows']} counterfactuals of {summary['n_inputs']} inputs to {out}: "
            f"{summary['validity']:.0%} reach {goal}")


__all__ = ["MARKER", "check_out_directory", "class_names", "explain_records", "explain_summary_text",
           "resolve_target"]
