"""Load user data (CSV, NumPy ``.npz``) or a built-in dataset together with its schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trustgen.data.datasets import BUILTIN
from trustgen.data.encoders import Data, ImageData, fit_to_domain, make_encoder
from trustgen.data.schema import ImageSchema, Schema, TabularSchema, load_schema
from trustgen.errors import DataError, SchemaError


def read_data_file(path: str | Path, nrows: int | None = None) -> Data:
    """Read a CSV (to a DataFrame) or ``.npz`` with ``x`` and optional ``y`` (to ImageData).

    ``nrows`` reads only that many rows of a CSV (0: just its header)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"data {str(p)!r} is neither a built-in dataset ({', '.join(BUILTIN)}) nor an existing file"
        )
    if p.suffix.lower() == ".csv":
        try:
            df = pd.read_csv(p, nrows=nrows)
        except pd.errors.EmptyDataError as e:
            raise DataError(f"{str(p)!r} is empty") from e
        return df
    if p.suffix.lower() == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "x" not in z:
                raise DataError(f"{str(p)!r} has no array 'x' (found {list(z.keys())}); save it with np.savez(path, x=..., y=...)")
            return ImageData(z["x"], z["y"] if "y" in z else None)
    raise DataError(f"unsupported data file {str(p)!r}: use .csv (tables) or .npz (images, arrays x and y)")


def load_data(source: str | Path, schema: Schema | str | Path | None = None) -> tuple[Data, Schema]:
    """Load a built-in dataset by name or a user file, and check it against its schema.

    Args:
        source: ``"digits"``, ``"breast_cancer"``, ``"randhie"`` or a ``.csv`` / ``.npz`` path.
        schema: a Schema or a path to a schema JSON. Required for user files: trustgen never
            derives a schema from private data silently (see ``trustgen schema infer``).

    Returns:
        The data and its schema, already validated (errors are raised before any training). For
        a DP-estimated schema (``source="dp"``) the data is first mapped into its domain
        (:func:`~trustgen.data.encoders.fit_to_domain`).
    """
    if isinstance(schema, (str, Path)):
        schema = load_schema(schema)
    name = str(source)
    if name in BUILTIN:
        data, builtin_schema = BUILTIN[name]()
        schema = schema or builtin_schema
    else:
        data = read_data_file(source)
        if schema is None:
            raise SchemaError(
                f"no schema given for {name!r}. Declare the public domain of every column "
                f"(bounds, categories, label) in a JSON schema; `trustgen schema infer {name}` "
                "drafts one for you to review (a data-derived draft is not private)."
            )
    kind_ok = isinstance(data, ImageData) == isinstance(schema, ImageSchema)
    if not kind_ok:
        want = "image" if isinstance(schema, ImageSchema) else "tabular"
        raise SchemaError(f"the schema is for {want} data but {name!r} holds the other kind")
    data = fit_to_domain(data, schema)  # a DP schema's bounds clip rows by design
    make_encoder(schema).validate(data)
    return data, schema


def infer_schema(data: Data, label: str | None = None, max_categories: int = 20) -> Schema:
    """Draft a schema from the data itself, marked ``source="data-derived"``.

    This reads the private data (min, max, unique values), so it is *not* differentially
    private: review the draft, replace bounds with public knowledge, and set ``source`` to
    ``"declared"`` once you have. Training with a data-derived schema records a caveat.
    """
    from trustgen.data.datasets import round_up_bound
    from trustgen.data.schema import CategoricalColumn, NumericColumn

    if isinstance(data, ImageData):
        x = np.asarray(data.x)
        if x.ndim != 4:
            raise DataError(f"images must be N x C x H x W, got shape {x.shape}")
        lo, hi = float(x.min()), float(x.max())
        lo, hi = (0.0, 1.0) if lo >= 0 and hi <= 1 else (0.0, 255.0) if lo >= 0 and hi <= 255 else (lo, hi)
        classes = None if data.y is None else tuple(str(i) for i in range(int(np.max(data.y)) + 1))
        return ImageSchema(x.shape[1], x.shape[2], x.shape[3], lo, hi, classes, "data-derived")
    if len(data) == 0:
        raise DataError("the data is empty (0 rows)")
    cols = []
    for name in data.columns:
        col = data[name].dropna()
        numeric = pd.api.types.is_numeric_dtype(col)
        if name == label or not numeric or (pd.api.types.is_integer_dtype(col) and col.nunique() <= 2):
            cats = sorted(col.unique().tolist(), key=str)
            if len(cats) > max_categories and name != label:
                raise DataError(f"column {name!r} has {len(cats)} distinct text values; too many for a category list")
            cats = [c.item() if hasattr(c, "item") else c for c in cats]
            if len(cats) == 1:
                cats.append("other")
            cols.append(CategoricalColumn(name, tuple(str(c) if not isinstance(c, (int, str)) else c for c in cats)))
        else:
            lo, hi = float(col.min()), float(col.max())
            lo = 0.0 if lo >= 0 else -round_up_bound(-lo)
            hi = round_up_bound(hi) if hi > 0 else 0.0
            if hi <= lo:
                hi = lo + 1.0
            cols.append(NumericColumn(name, lo, hi, integer=pd.api.types.is_integer_dtype(col)))
    return TabularSchema(cols, label, "data-derived")
