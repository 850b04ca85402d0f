"""Machine-learning utility: train synthetic/test real (TSTR) vs train real/test real (TRTR).

Compare ``tstr`` with ``trtr`` on the same real test set: the gap is the utility lost by
training on synthetic data. The real test set must be held out from the generator's training
data, and scores computed on it are NOT differentially private.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trustgen.errors import ConfigError, DataError
from trustgen.evaluation._checks import as_labels, encode

MODELS = ("logistic", "random_forest")


def _make_model(name: str, seed: int) -> Any:
    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)


def _train_test(x_train: Any, y_train: Any, x_test: Any, y_test: Any, models: Sequence[str],
                seed: int, train_name: str) -> dict[str, dict[str, float]]:
    xa, xb = encode({train_name: x_train, "x_test": x_test})
    ya = as_labels(y_train, f"y for {train_name}", n=len(xa))
    yb = as_labels(y_test, "y_test", n=len(xb))
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"models must be a non-empty subset of {MODELS}, got {tuple(models)}.")
    if len(set(ya.tolist())) < 2:
        raise DataError(f"the labels for {train_name} hold a single class ({ya[0]!r}); a "
                        "classifier needs two or more (a sign of a collapsed generator).")
    binary = len(set(ya.tolist()) | set(yb.tolist())) == 2 and len(set(yb.tolist())) == 2
    out: dict[str, dict[str, float]] = {}
    for name in models:
        model = _make_model(name, seed).fit(xa, ya)
        scores = {"accuracy": float(accuracy_score(yb, model.predict(xb)))}
        if binary:  # positive class = model.classes_[1], the larger label
            proba = model.predict_proba(xb)[:, 1]
            scores["roc_auc"] = float(roc_auc_score(yb == model.classes_[1], proba))
        out[name] = scores
    return out


def tstr(x_synth: Any, y_synth: Any, x_test: Any, y_test: Any,
         models: Sequence[str] = MODELS, seed: int = 0) -> dict[str, dict[str, float]]:
    """Train on synthetic, test on real: fit each model on synthetic rows, score on real test rows.

    Features may be numeric arrays or DataFrames; categorical columns are one-hot encoded over
    the union of the categories seen in both sets. ``"logistic"`` is a standardised logistic
    regression, ``"random_forest"`` a 100-tree forest seeded with ``seed``.

    Range and direction: accuracy and ROC AUC are in [0, 1], higher is better; compare with
    :func:`trtr` (the real-data ceiling) rather than reading them alone. ROC AUC is reported
    only for binary tasks (positive class: the larger of the two test labels).

    Args:
        x_synth: Synthetic features (DataFrame or 2-D array).
        y_synth: Synthetic labels, one per row of ``x_synth``.
        x_test: Real held-out features with the same columns.
        y_test: Real held-out labels.
        models: Names of the models to fit, from ``("logistic", "random_forest")``.
        seed: Seed of the random forest.

    Returns:
        ``{model: {"accuracy": float, "roc_auc": float (binary only)}}``.

    Raises:
        DataError: on empty/NaN inputs, mismatched columns or lengths, or a single training class.
        ConfigError: on an unknown model name.
    """
    return _train_test(x_synth, y_synth, x_test, y_test, models, seed, "x_synth")


def trtr(x_train: Any, y_train: Any, x_test: Any, y_test: Any,
         models: Sequence[str] = MODELS, seed: int = 0) -> dict[str, dict[str, float]]:
    """Train on real, test on real: the reference for :func:`tstr` (same arguments and output)."""
    return _train_test(x_train, y_train, x_test, y_test, models, seed, "x_train")
