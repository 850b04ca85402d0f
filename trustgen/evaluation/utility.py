"""Machine-learning utility: train synthetic/test real (TSTR) vs train real/test real (TRTR).

Compare ``tstr`` with ``trtr`` on the same real test set: the gap is the utility lost by
training on synthetic data. The real test set must be held out from the generator's training
data, and scores computed on it are NOT differentially private.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trustgen.errors import ConfigError, DataError
from trustgen.evaluation.checks import as_labels, encode

MODELS = ("logistic", "random_forest")
ModelName = Literal["logistic", "random_forest"]
Models = Sequence[str] | Mapping[str, Any]
"""Model names from :data:`MODELS`, or ``{name: unfitted scikit-learn classifier}``."""


def make_classifier(name: ModelName, seed: int = 0) -> Any:
    """A new, unfitted classifier by name: the models TSTR, TRTR and the fairness report use.

    ``"logistic"`` is a standardised logistic regression, ``"random_forest"`` a 100-tree forest
    seeded with ``seed``.

    Example:
        >>> make_classifier("random_forest", seed=1).n_estimators
        100
    """
    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    raise ConfigError(f"unknown classifier {name!r}; known: {MODELS}.")


def _classifiers(models: Models, seed: int) -> dict[str, Any]:
    """``{name: unfitted classifier}``: built by name, or clones of the caller's estimators."""
    if isinstance(models, Mapping):
        bad = [n for n, m in models.items() if not all(hasattr(m, a) for a in ("fit", "predict", "predict_proba"))]
        if bad or not models:
            raise ConfigError(f"models must map names to scikit-learn classifiers (fit, predict, predict_proba); "
                              f"got {dict(models) if models else 'an empty mapping'}.")
        return {name: clone(m) for name, m in models.items()}  # the caller's objects stay unfitted
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"models must be a non-empty subset of {MODELS}, got {tuple(models)}.")
    return {name: make_classifier(name, seed) for name in models}


def _train_test(x_train: Any, y_train: Any, x_test: Any, y_test: Any, models: Models,
                seed: int, train_name: str) -> dict[str, dict[str, float]]:
    xa, xb = encode({train_name: x_train, "x_test": x_test})
    ya = as_labels(y_train, f"y for {train_name}", n=len(xa))
    yb = as_labels(y_test, "y_test", n=len(xb))
    classifiers = _classifiers(models, seed)
    if len(set(ya.tolist())) < 2:
        raise DataError(f"the labels for {train_name} hold a single class ({ya[0]!r}); a "
                        "classifier needs two or more (a sign of a collapsed generator).")
    binary = len(set(ya.tolist()) | set(yb.tolist())) == 2 and len(set(yb.tolist())) == 2
    out: dict[str, dict[str, float]] = {}
    for name, model in classifiers.items():
        model.fit(xa, ya)
        scores = {"accuracy": float(accuracy_score(yb, model.predict(xb)))}
        if binary:  # positive class = model.classes_[1], the larger label
            proba = model.predict_proba(xb)[:, 1]
            scores["roc_auc"] = float(roc_auc_score(yb == model.classes_[1], proba))
        out[name] = scores
    return out


def tstr(x_synth: Any, y_synth: Any, x_test: Any, y_test: Any,
         models: Models = MODELS, seed: int = 0) -> dict[str, dict[str, float]]:
    """Train on synthetic, test on real: fit each model on synthetic rows, score on real test rows.

    Features may be numeric arrays or DataFrames; categorical columns are one-hot encoded over
    the union of the categories seen in both sets. Models are named (see
    :func:`make_classifier`) or given as scikit-learn classifiers, which are cloned, so the
    caller's objects stay unfitted.

    Range and direction: accuracy and ROC AUC are in [0, 1], higher is better; compare with
    :func:`trtr` (the real-data ceiling) rather than reading them alone. ROC AUC is reported
    only for binary tasks (positive class: the larger of the two test labels).

    Args:
        x_synth: Synthetic features (DataFrame or 2-D array).
        y_synth: Synthetic labels, one per row of ``x_synth``.
        x_test: Real held-out features with the same columns.
        y_test: Real held-out labels.
        models: Names of the models to fit, from ``("logistic", "random_forest")``, or
            ``{name: classifier}`` with unfitted scikit-learn classifiers (``fit``,
            ``predict``, ``predict_proba``), e.g. ``{"logistic": LogisticRegression()}``.
        seed: Seed of the named random forest.

    Returns:
        ``{model: {"accuracy": float, "roc_auc": float (binary only)}}``.

    Raises:
        DataError: on empty/NaN inputs, mismatched columns or lengths, or a single training class.
        ConfigError: on an unknown model name or an object that is not a classifier.

    Example:
        >>> import numpy as np
        >>> x = np.r_[np.zeros((20, 1)), np.ones((20, 1))]; y = np.r_[np.zeros(20), np.ones(20)]
        >>> tstr(x, y, x, y, models=("logistic",))["logistic"]["accuracy"]
        1.0
    """
    return _train_test(x_synth, y_synth, x_test, y_test, models, seed, "x_synth")


def trtr(x_train: Any, y_train: Any, x_test: Any, y_test: Any,
         models: Models = MODELS, seed: int = 0) -> dict[str, dict[str, float]]:
    """Train on real, test on real: the reference for :func:`tstr` (same arguments and output)."""
    return _train_test(x_train, y_train, x_test, y_test, models, seed, "x_train")
