"""How far a synthetic table's low-order marginals are from a real one's, on the schema's domain.

Every column is cut into public bins read from the schema only: a numeric column's declared
range in :data:`BINS` equal bins, a categorical column (the label too) into its categories.
Then, as total-variation distances ``0.5 * sum |p - q|`` in [0, 1] (0: identical):

* the 1-way distance of each column, and their mean;
* the 2-way distance of every pair of columns (their joint bins; keyed ``"a & b"``), and the
  mean over pairs;
* the label rate of every class, real and synthetic.

This is the measure marginal methods (MST, AIM) are judged by, and what a user who reads a
released table's cross-tabulations sees. It reads the real rows: the numbers are not
differentially private (compute them on a holdout the model never saw).

Example:
    >>> import pandas as pd
    >>> from trustgen.data.schema import NumericColumn, CategoricalColumn, TabularSchema
    >>> s = TabularSchema([NumericColumn("a", 0, 10), CategoricalColumn("y", ("n", "p"))], label="y")
    >>> real = pd.DataFrame({"a": [1.0, 2.0, 8.0, 9.0], "y": ["n", "n", "p", "p"]})
    >>> d = marginal_distances(real, real.assign(y=["n", "p", "n", "p"]), s)
    >>> d["one_way_mean"], d["two_way_mean"]
    (0.0, 0.5)
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from trustgen.data.schema import NumericColumn, TabularSchema, category_key
from trustgen.errors import DataError
from trustgen.privacy.marginal_histogram import EDGE_SLACK

BINS = 10


def binned(df: pd.DataFrame, schema: TabularSchema) -> dict[str, tuple[np.ndarray, int]]:
    """Per column of ``schema``: each row's bin and the number of bins."""
    out = {}
    for c in schema.columns:
        if c.name not in df.columns:
            raise DataError(f"column {c.name!r} is missing from the table")
        if isinstance(c, NumericColumn):
            v = pd.to_numeric(df[c.name]).to_numpy(dtype=np.float64)
            u = np.clip((v - c.low) / (c.high - c.low), 0.0, 1.0)
            # the release's rule (EDGE_SLACK): a value a float32 rounding put just below an edge counts above it
            out[c.name] = (np.minimum(np.floor(u * BINS + EDGE_SLACK).astype(np.int64), BINS - 1), BINS)
        else:
            idx = c.index_of()
            out[c.name] = (np.array([idx[category_key(v)] for v in df[c.name]], dtype=np.int64), len(c.categories))
    return out


def _tv(a: np.ndarray, b: np.ndarray, k: int) -> float:
    p = np.bincount(a, minlength=k) / max(len(a), 1)
    q = np.bincount(b, minlength=k) / max(len(b), 1)
    return float(0.5 * np.abs(p - q).sum())


def marginal_distances(real: pd.DataFrame, synth: pd.DataFrame, schema: TabularSchema) -> dict:
    """1-way and 2-way total-variation distances and label rates (module docstring)."""
    r, s = binned(real, schema), binned(synth, schema)
    names = [c.name for c in schema.columns]
    one = {n: _tv(r[n][0], s[n][0], r[n][1]) for n in names}
    two = {}
    for a, b in combinations(names, 2):
        kb = r[b][1]
        two[f"{a} & {b}"] = _tv(r[a][0] * kb + r[b][0], s[a][0] * kb + s[b][0], r[a][1] * kb)
    out = {"one_way_mean": float(np.mean(list(one.values()))),
           "two_way_mean": float(np.mean(list(two.values()))) if two else 0.0, "one_way": one, "two_way": two}
    if schema.label is not None:
        codes, k = r[schema.label]
        classes = [str(c) for c in schema.label_column.categories]
        out["label_rate_real"] = dict(zip(classes, (np.bincount(codes, minlength=k) / len(codes)).tolist()))
        codes_s = s[schema.label][0]
        out["label_rate_synth"] = dict(zip(classes, (np.bincount(codes_s, minlength=k) / len(codes_s)).tolist()))
        out["label_rate_gap"] = float(max(abs(out["label_rate_real"][c] - out["label_rate_synth"][c]) for c in classes))
    return out


__all__ = ["BINS", "binned", "marginal_distances"]
