"""Shared input validation and encoding for the evaluation metrics and report sections.

Every public metric funnels its inputs through these functions so that bad data fails the same
way everywhere: with a :class:`~trustgen.errors.DataError` that names the argument, says what is
wrong and how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trustgen.errors import DataError


def to_numpy(x: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor, list or pandas object to a numpy array."""
    if hasattr(x, "detach"):  # torch.Tensor, possibly on an accelerator or requiring grad
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def builtin_key(value: Any) -> Any:
    """A numpy scalar as the matching built-in Python value, for the keys of a metric's dict.

    Metrics key their results by the caller's column names and group labels; numpy scalars
    among those would make the dict unfit for ``json.dumps``. Other keys are kept as given (not
    :func:`trustgen.io.json_value`, which would turn a tuple key into an unhashable list), so the
    result can still be indexed with the caller's own labels.
    """
    return value.item() if isinstance(value, np.generic) else value


def as_matrix(x: Any, name: str, *, min_rows: int = 1) -> np.ndarray:
    """Validate ``x`` as a finite 2-D float matrix with at least ``min_rows`` rows."""
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise DataError(f"{name} must be 2-D (rows x features), got shape {arr.shape}; "
                        "reshape it, e.g. x.reshape(len(x), -1).")
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise DataError(f"{name} has shape {arr.shape} but needs at least {min_rows} row(s) and "
                        "1 column; pass a non-empty sample.")
    try:
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric ({exc}); encode categorical columns first or "
                        "pass a pandas DataFrame to a metric that accepts one.") from exc
    if not np.isfinite(arr).all():
        raise DataError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN/inf value(s); "
                        "impute or drop them before evaluating.")
    return arr


def same_width(arrays: dict[str, np.ndarray]) -> None:
    """Raise unless all 2-D ``arrays`` have the same number of columns."""
    widths = {name: a.shape[1] for name, a in arrays.items()}
    if len(set(widths.values())) > 1:
        raise DataError(f"column counts differ: {widths}; all inputs must share the same features "
                        "in the same order.")


def as_labels(x: Any, name: str, *, n: int | None = None) -> np.ndarray:
    """Validate ``x`` as a non-empty 1-D label vector without missing values, of length ``n``."""
    arr = to_numpy(x)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"{name} must be a non-empty 1-D array of labels, got shape {arr.shape}.")
    if pd.isna(arr).any():
        raise DataError(f"{name} contains missing values (NaN/None); drop or relabel those rows.")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{name} has {arr.shape[0]} entries but {n} were expected; inputs must be "
                        "row-aligned.")
    return arr


def is_categorical(s: pd.Series) -> bool:
    """True for object/str/category/bool columns, False for numeric ones."""
    return pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s)


def as_frame(x: Any, name: str) -> pd.DataFrame:
    """Validate ``x`` as a non-empty table; arrays become a DataFrame with integer column names."""
    if isinstance(x, pd.DataFrame):
        df = x
    else:
        arr = to_numpy(x)
        if arr.ndim != 2:
            raise DataError(f"{name} must be 2-D (rows x columns), got shape {arr.shape}.")
        df = pd.DataFrame(arr).infer_objects()  # numbers in an object array become numeric
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {df.shape}); pass at least one row and column.")
    for col in df.columns:
        s = df[col]
        if is_categorical(s):
            bad = s.isna()
        else:
            bad = ~np.isfinite(s.to_numpy(np.float64, na_value=np.nan))
        if bad.any():
            raise DataError(f"{name}[{col!r}] has {int(bad.sum())} missing/NaN/inf value(s); "
                            "impute or drop them before evaluating.")
    return df


def as_frames(tables: dict[str, Any]) -> list[pd.DataFrame]:
    """Validate several tables that must share columns (same names, same numeric/categorical kind).

    The columns of the later tables are reordered to match the first one.
    """
    frames = {name: as_frame(t, name) for name, t in tables.items()}
    (ref_name, ref), *rest = frames.items()
    out = [ref]
    for name, df in rest:
        if set(df.columns) != set(ref.columns):
            raise DataError(
                f"{name} has columns {list(df.columns)} but {ref_name} has {list(ref.columns)}; "
                "all tables must share the same columns (for arrays: the same column count).")
        df = df[list(ref.columns)]
        for col in ref.columns:
            if is_categorical(df[col]) != is_categorical(ref[col]):
                raise DataError(f"column {col!r} is categorical in one of {ref_name}/{name} and "
                                "numeric in the other; cast it to the same dtype in both.")
        out.append(df)
    return out


def encode(tables: dict[str, Any], *, scale_by: str | None = None) -> list[np.ndarray]:
    """Validate tables and encode them into aligned float matrices.

    Numeric columns are kept; categorical columns are one-hot encoded over the *union* of the
    categories seen in all tables, so every output has the same columns. If ``scale_by`` names
    one of the tables, every column is standardised with that table's mean and standard
    deviation (a constant column is only centred).
    """
    frames = as_frames(tables)
    cats = [c for c in frames[0].columns if is_categorical(frames[0][c])]
    if cats:
        both = pd.concat(frames, keys=range(len(frames)))
        both[cats] = both[cats].astype(str)
        both = pd.get_dummies(both, columns=cats, dtype=np.float64)
        mats = [both.xs(i).to_numpy(dtype=np.float64) for i in range(len(frames))]
    else:
        mats = [f.to_numpy(dtype=np.float64) for f in frames]
    if scale_by is not None:
        ref = mats[list(tables).index(scale_by)]
        mu, sd = ref.mean(axis=0), ref.std(axis=0)
        sd[sd == 0] = 1.0
        mats = [(m - mu) / sd for m in mats]
    return mats
