"""Fidelity of synthetic tables: per-column marginals, pairwise associations, and a classifier test.

Tables are pandas DataFrames with numeric and categorical (object/str/category/bool) columns, or
2-D numeric arrays of encoded features (columns are then named 0, 1, ...). These metrics are
computed on the real (private) data and are therefore NOT differentially private.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ks_2samp
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from trustgen.errors import DataError
from trustgen.evaluation.checks import as_frame, as_frames, builtin_key, encode, is_categorical


def column_distances(real: Any, synth: Any) -> dict[Any, float]:
    """Distance between the real and synthetic marginal distribution of every column.

    Numeric columns use the two-sample Kolmogorov-Smirnov statistic (largest gap between the
    empirical CDFs); categorical columns use the total-variation distance
    ``0.5 * sum_c |p_real(c) - p_synth(c)|`` over the union of categories.

    Range and direction: each value is in [0, 1]; 0 is ideal (identical marginals), higher is
    worse, 1 means disjoint supports. Matching marginals say nothing about joint structure.

    Args:
        real: Real table (DataFrame or 2-D array).
        synth: Synthetic table with the same columns.

    Returns:
        ``{column: distance}`` in the column order of ``real``.

    Raises:
        DataError: if a table is empty, has NaN/missing values, or the columns differ.
    """
    real_df, synth_df = as_frames({"real": real, "synth": synth})
    out: dict[Any, float] = {}
    for col in real_df.columns:
        r, s = real_df[col], synth_df[col]
        if is_categorical(r):
            p = r.astype(str).value_counts(normalize=True)
            q = s.astype(str).value_counts(normalize=True)
            out[builtin_key(col)] = float(0.5 * p.sub(q, fill_value=0.0).abs().sum())
        else:
            out[builtin_key(col)] = float(ks_2samp(r.to_numpy(float), s.to_numpy(float)).statistic)
    return out


def _cramers_v(a: pd.Series, b: pd.Series) -> float:
    table = pd.crosstab(a.astype(str), b.astype(str)).to_numpy()
    k = min(table.shape) - 1
    if k == 0:
        return 0.0
    chi2 = chi2_contingency(table, correction=False)[0]
    return float(np.sqrt(chi2 / (table.sum() * k)))


def _correlation_ratio(cat: pd.Series, num: pd.Series) -> float:
    x = num.to_numpy(float)
    total = ((x - x.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    groups = pd.Series(x).groupby(cat.astype(str).to_numpy())
    between = (groups.size() * (groups.mean() - x.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def _pearson(a: pd.Series, b: pd.Series) -> float:
    x, y = a.to_numpy(float), b.to_numpy(float)
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def association_matrix(df: Any) -> pd.DataFrame:
    """Pairwise association between all columns of a table, e.g. for a heat map.

    Numeric-numeric pairs use Pearson's r (in [-1, 1]); categorical-categorical pairs use
    Cramer's V (in [0, 1], no bias correction); numeric-categorical pairs use the correlation
    ratio eta (in [0, 1]). A pair involving a constant column has association 0. The diagonal
    is 1. Higher absolute values mean stronger association.

    Args:
        df: Table (DataFrame or 2-D array).

    Returns:
        A symmetric DataFrame indexed by column names on both axes.

    Raises:
        DataError: if the table is empty or has missing values.
    """
    df = as_frame(df, "df")
    cols = list(df.columns)
    mat = pd.DataFrame(np.eye(len(cols)), index=cols, columns=cols)
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            ca, cb = is_categorical(df[a]), is_categorical(df[b])
            if ca and cb:
                v = _cramers_v(df[a], df[b])
            elif ca or cb:
                v = _correlation_ratio(df[a], df[b]) if ca else _correlation_ratio(df[b], df[a])
            else:
                v = _pearson(df[a], df[b])
            mat.loc[a, b] = mat.loc[b, a] = v
    return mat


def correlation_difference(real: Any, synth: Any) -> float:
    """Mean absolute difference between the real and synthetic association matrices.

    Averages ``|A_real[i, j] - A_synth[i, j]|`` over all column pairs ``i < j``, with the
    associations of :func:`association_matrix`.

    Range and direction: [0, 2] (at most 1 for pairs that are not both numeric); 0 is ideal,
    higher is worse. Only pairwise (not higher-order) dependence is compared.

    Args:
        real: Real table (DataFrame or 2-D array) with at least two columns.
        synth: Synthetic table with the same columns.

    Returns:
        The mean absolute difference as a float.

    Raises:
        DataError: if a table is empty, has missing values, has fewer than two columns, or the
            columns differ.
    """
    real_df, synth_df = as_frames({"real": real, "synth": synth})
    if real_df.shape[1] < 2:
        raise DataError("correlation_difference needs at least 2 columns to form a pair; got "
                        f"{real_df.shape[1]}. Use column_distances for a single column.")
    a = association_matrix(real_df).to_numpy()
    b = association_matrix(synth_df).to_numpy()
    iu = np.triu_indices_from(a, k=1)
    return float(np.abs(a - b)[iu].mean())


def classifier_two_sample_auc(real: Any, synth: Any, seed: int = 0, n_splits: int = 5) -> float:
    """Cross-validated ROC AUC of a random forest trained to tell real rows from synthetic rows.

    Categorical columns are one-hot encoded over the union of categories. Out-of-fold
    probabilities from stratified ``n_splits``-fold cross-validation are pooled into one AUC.

    Range and direction: [0, 1]; 0.5 is ideal (indistinguishable), 1 means the classifier
    separates real from synthetic perfectly. Values slightly below 0.5 are noise; values far
    below 0.5 mean synthetic rows duplicate the real rows given here (the forest memorises the
    duplicates) - check :func:`~trustgen.evaluation.privacy_attacks.distance_to_closest_record`.

    Args:
        real: Real table (DataFrame or 2-D array).
        synth: Synthetic table with the same columns.
        seed: Seed of the fold split and the forest.
        n_splits: Number of cross-validation folds.

    Returns:
        The AUC as a float.

    Raises:
        DataError: if a table is empty, has missing values, has fewer rows than ``n_splits``,
            or the columns differ.
    """
    xr, xs = encode({"real": real, "synth": synth})
    if min(len(xr), len(xs)) < n_splits:
        raise DataError(f"real and synth need at least n_splits={n_splits} rows each, got "
                        f"{len(xr)} and {len(xs)}; pass more rows or lower n_splits.")
    x = np.vstack([xr, xs])
    y = np.r_[np.ones(len(xr)), np.zeros(len(xs))]
    clf = RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    proba = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))
