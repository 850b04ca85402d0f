"""Encoders between user data and the model's tensor space, built from the schema alone.

Numbers map linearly from their declared ``[low, high]`` to ``[-1, 1]``; categories become
one-hot blocks; images scale from their value range to ``[-1, 1]``. The inverse is exact
(up to float64 rounding for real numbers; integers and categories exactly), so a model that
reproduces the encoded value reproduces the record.

Validation happens here, before any training: NaN/inf, values outside the declared domain,
unknown categories, wrong image shapes, empty data and missing columns raise a
:class:`~trustgen.errors.DataError` or :class:`~trustgen.errors.SchemaError` naming the column.

Example:
    >>> import pandas as pd
    >>> from trustgen.data.schema import TabularSchema, NumericColumn
    >>> enc = TabularEncoder(TabularSchema([NumericColumn("x", 0, 10)]))
    >>> x, y = enc.transform(pd.DataFrame({"x": [0.0, 5.0, 10.0]}))
    >>> x.ravel().tolist()
    [-1.0, 0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import pandas as pd

from trustgen.data.schema import (
    CategoricalColumn, ImageSchema, NumericColumn, Schema, TabularSchema, category_key, check_names,
)
from trustgen.errors import DataError


@dataclass(frozen=True)
class Block:
    """Where one column lives in the encoded vector: ``x[:, start:start+size]``."""

    name: str
    kind: Literal["numeric", "categorical"]
    start: int
    size: int


@dataclass
class ImageData:
    """Images ``x`` (N x C x H x W, in the schema's value range) and optional integer labels."""

    x: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


Data = Union[pd.DataFrame, ImageData]


#: What an array of another dtype holds, and how to make it real numbers.
_DTYPE_ADVICE = {
    "c": "complex numbers: keep the real part (x.real) or the magnitude (np.abs(x))",
    "b": "booleans: convert them with .astype(np.uint8)",
    "U": "text: map it to numbers first", "S": "bytes: map them to numbers first",
    "O": "Python objects: convert them to a numeric array first",
    "M": "dates: convert them to numbers first", "m": "time spans: convert them to numbers first",
    "V": "records (a structured dtype): give one plain numeric array",
}


def real_array(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` if its dtype holds real numbers (integer or float), else a DataError naming ``what``
    and how to convert it: the one dtype rule for images and labels. Complex values would
    otherwise lose their imaginary part without a word when cast to float."""
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        advice = _DTYPE_ADVICE.get(a.dtype.kind, "give integers or floats")
        raise DataError(f"{what} must hold real numbers (an integer or float dtype), got dtype {a.dtype}: {advice}")
    return a


def _check_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    y = real_array(y, "labels")
    if y.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError("labels must be whole numbers 0..n_classes-1 (found non-integers or NaN)")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} labels are outside 0..{n_classes - 1} (the first at {_first(bad)}); "
            "the schema declares the classes."
        )
    return y


def _first(mask: np.ndarray) -> str:
    """Where the first offending record is ("row 7", counting data rows from 1): error messages
    name places, never values (a message lands in terminals and logs; a value is private)."""
    return f"row {int(np.flatnonzero(mask)[0]) + 1}"


def numeric_values(col: pd.Series, name: str, integer: bool = False) -> np.ndarray:
    """The values of a numeric column as float64, or a DataError naming the column if any is
    non-numeric, NaN or inf (or, for ``integer``, a fraction)."""
    v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    nonnum = np.isnan(v) & col.notna().to_numpy()
    if nonnum.any():
        raise DataError(f"column {name!r}: {int(nonnum.sum())} non-numeric values (the first at {_first(nonnum)})")
    if not np.all(np.isfinite(v)):
        raise DataError(
            f"column {name!r}: {int((~np.isfinite(v)).sum())} NaN/inf values. "
            "trustgen does not impute (imputation from private data is not private): "
            "drop or fill those rows before training."
        )
    if integer and not np.all(np.equal(np.mod(v, 1), 0)):
        raise DataError(f"column {name!r} is declared integer but holds fractions")
    return v


def fit_to_domain(data: Data, schema: Schema) -> Data:
    """Map the rows of a DP-estimated schema's data into its domain; other data is returned as is.

    A ``source="dp"`` schema's bounds are noisy quantiles and its category lists keep only the
    candidates with a large noisy count, so some rows lie outside them by design. Numbers are
    clipped to the bounds and rows whose category was not kept are dropped. Each row is changed
    or dropped by looking at that row alone, so neighbouring datasets stay neighbours (or become
    equal) and DP training on the result keeps its guarantee. NaN/inf and non-numeric values are
    refused as by :meth:`TabularEncoder.validate` (nothing is imputed); missing categories are
    kept for it to refuse.
    """
    if not isinstance(schema, TabularSchema) or schema.source != "dp" or not isinstance(data, pd.DataFrame):
        return data
    check_names(list(data.columns), schema)
    out = data.copy()
    keep = np.ones(len(out), dtype=bool)
    for c in schema.columns:
        if isinstance(c, NumericColumn):
            out[c.name] = np.clip(numeric_values(out[c.name], c.name, c.integer), c.low, c.high)
        else:
            idx = c.index_of()
            col = out[c.name]
            keep &= (col.isna() | col.map(lambda v: category_key(v) in idx)).to_numpy(dtype=bool)
    return out[keep].reset_index(drop=True)


class TabularEncoder:
    """Encode a DataFrame to ``(x float64 [N, D], y int64 [N] or None)`` and back."""

    kind = "tabular"

    def __init__(self, schema: TabularSchema) -> None:
        self.schema = schema
        blocks, start = [], 0
        for c in schema.feature_columns:
            size = len(c.categories) if isinstance(c, CategoricalColumn) else 1
            kind = "categorical" if isinstance(c, CategoricalColumn) else "numeric"
            blocks.append(Block(c.name, kind, start, size))
            start += size
        self.blocks: list[Block] = blocks
        self.dim = start

    def validate(self, df: pd.DataFrame) -> None:
        """Raise a clear error if ``df`` does not fit the schema. Called by :meth:`transform`."""
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"tabular data must be a pandas DataFrame, got {type(df).__name__}")
        if len(df) == 0:
            raise DataError("the data is empty (0 rows): nothing to train on or encode")
        check_names(list(df.columns), self.schema)
        for c in self.schema.columns:
            col = df[c.name]
            if isinstance(c, NumericColumn):
                v = numeric_values(col, c.name, c.integer)
                out = (v < c.low) | (v > c.high)
                if out.any():
                    raise DataError(
                        f"column {c.name!r}: {int(out.sum())} values outside the declared domain "
                        f"[{c.low}, {c.high}] (the first at {_first(out)}). Widen the bounds in the schema "
                        "from public knowledge, or clip the data yourself."
                    )
            else:
                if col.isna().any():
                    raise DataError(f"column {c.name!r}: {int(col.isna().sum())} missing values")
                idx = c.index_of()
                known = col.map(category_key).isin(set(idx)).to_numpy()
                if not known.all():
                    declared = list(c.categories)
                    shown = declared[:10] + (["..."] if len(declared) > 10 else [])
                    raise DataError(
                        f"column {c.name!r}: {int((~known).sum())} values that are not declared categories "
                        f"(the first at {_first(~known)}; declared: {shown}). Add them to the schema or map "
                        "them first."
                    )

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        self.validate(df)
        x = np.zeros((len(df), self.dim), dtype=np.float64)
        for b in self.blocks:
            c = self.schema.column(b.name)
            if isinstance(c, NumericColumn):
                v = pd.to_numeric(df[c.name]).to_numpy(dtype=np.float64)
                x[:, b.start] = 2.0 * (v - c.low) / (c.high - c.low) - 1.0
            else:
                idx = c.index_of()
                codes = np.array([idx[category_key(v)] for v in df[c.name]], dtype=np.int64)
                x[np.arange(len(df)), b.start + codes] = 1.0
        y = None
        if self.schema.label is not None:
            lc = self.schema.label_column
            idx = lc.index_of()
            y = np.array([idx[category_key(v)] for v in df[lc.name]], dtype=np.int64)
        return x, y

    def inverse_transform(self, x: np.ndarray, y: np.ndarray | None = None) -> pd.DataFrame:
        """Decode model outputs: numbers clipped to their bounds (integers rounded), one-hot
        blocks by argmax, so every decoded record lies inside the declared domain."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DataError(f"encoded data must have shape [N, {self.dim}], got {x.shape}")
        cols: dict[str, object] = {}
        for c in self.schema.columns:
            if c.name == self.schema.label:
                if y is None:
                    raise DataError(f"labels are needed to decode the label column {c.name!r}")
                y = _check_labels(y, len(c.categories))
                cols[c.name] = [c.categories[i] for i in y]
                continue
            b = next(b for b in self.blocks if b.name == c.name)
            if isinstance(c, NumericColumn):
                v = (np.clip(x[:, b.start], -1.0, 1.0) + 1.0) / 2.0 * (c.high - c.low) + c.low
                v = np.clip(v, c.low, c.high)
                # rounded, then kept within the whole values of the bounds ([0.5, 3.5] holds 1..3)
                cols[c.name] = np.clip(np.round(v), *c.whole_bounds).astype(np.int64) if c.integer else v
            else:
                codes = np.argmax(x[:, b.start:b.start + b.size], axis=1)
                cols[c.name] = [c.categories[i] for i in codes]
        return pd.DataFrame(cols, columns=[c.name for c in self.schema.columns])


class ImageEncoder:
    """Encode :class:`ImageData` to ``x in [-1, 1]`` (N x C x H x W float64) and back."""

    kind = "image"

    def __init__(self, schema: ImageSchema) -> None:
        self.schema = schema
        self.dim = schema.channels * schema.height * schema.width

    def validate(self, data: ImageData) -> None:
        s = self.schema
        if not isinstance(data, ImageData):
            raise DataError(f"image data must be ImageData(x, y), got {type(data).__name__}")
        x = np.asarray(data.x)
        if x.ndim == 0 or len(x) == 0:
            raise DataError("the data is empty (0 images): nothing to train on or encode")
        if x.shape[1:] != s.shape:
            hint = ""
            if x.ndim == 3 and s.channels == 1 and x.shape[1:] == (s.height, s.width):
                hint = " Add the channel axis: x[:, None]."
            raise DataError(
                f"images have shape {x.shape[1:]} but the schema declares (C, H, W) = {s.shape}.{hint}"
            )
        real_array(x, "images")
        if not np.all(np.isfinite(x)):
            raise DataError("images contain NaN or inf values")
        outside = ((x < s.low) | (x > s.high)).reshape(len(x), -1).any(1)
        if outside.any():
            raise DataError(
                f"{int(outside.sum())} images have values outside the declared range [{s.low}, {s.high}] "
                f"(the first at {_first(outside)}). Fix the schema's range or rescale the images."
            )
        if s.classes is not None:
            if data.y is None:
                raise DataError(
                    f"the schema declares {s.n_classes} classes but no labels were given (y is missing)"
                )
            y = _check_labels(data.y, s.n_classes)
            if len(y) != len(x):
                raise DataError(f"{len(x)} images but {len(y)} labels")

    def transform(self, data: ImageData) -> tuple[np.ndarray, np.ndarray | None]:
        self.validate(data)
        s = self.schema
        x = 2.0 * (np.asarray(data.x, dtype=np.float64) - s.low) / (s.high - s.low) - 1.0
        y = None if s.classes is None else _check_labels(data.y, s.n_classes)
        return x, y

    def inverse_transform(self, x: np.ndarray, y: np.ndarray | None = None) -> ImageData:
        s = self.schema
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1:] != s.shape:
            raise DataError(f"encoded images must have shape [N, {s.shape}], got {x.shape}")
        v = (np.clip(x, -1.0, 1.0) + 1.0) / 2.0 * (s.high - s.low) + s.low
        yy = None if y is None else _check_labels(y, max(s.n_classes, 1))
        return ImageData(np.clip(v, s.low, s.high), yy)


Encoder = Union[TabularEncoder, ImageEncoder]


def make_encoder(schema: Schema) -> Encoder:
    """The encoder a schema dictates (no data needed: that is the point)."""
    if isinstance(schema, TabularSchema):
        return TabularEncoder(schema)
    if isinstance(schema, ImageSchema):
        return ImageEncoder(schema)
    raise TypeError(f"unknown schema type {type(schema).__name__}")
