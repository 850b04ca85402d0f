"""Tabular watermark: a keyed dither lattice on the continuous columns, detected from a set of rows.

Post-hoc (quantisation-index modulation with a keyed dither, the idea behind TabWak-style table
watermarks made exact): for every row and every continuous column ``c`` (a
:class:`~trustgen.data.schema.NumericColumn` with ``integer=False``) the key gives a dither
``u`` in (0, 1), and the value moves to the nearest point of the lattice
``low + (u + k) * delta_c`` (``k`` whole), where ``delta_c = strength * (high - low)``.

Detection needs the key and the rows only. The residual ``r = ((x - low) / delta - u) mod 1``
is 0 for a watermarked value and stays near 0 under small noise; a trial *agrees* when ``r``
lies within 1/4 of 0 on the circle. For any table made without the key, ``u`` is uniform and
independent of ``x`` over the draw of the key, so ``r`` is uniform and each trial agrees with
probability exactly 1/2: the p-values of :class:`~trustgen.watermark.stats.Detection` are exact
for any table, with no calibration and no assumption about its content.

Where the dither comes from matters:

* **Not from the row's position or the column order**: rows get deleted, inserted and shuffled,
  columns reordered. A row's dithers are ``key.uniform(k, "table-v1", index)`` with ``index`` a
  hash of the row's *coarse feature*: every categorical value (the label included) and the bin
  of every numeric value among equal bins over ``[low, high]`` (8 per column, more for schemas
  with few columns: :func:`feature_bins`), taken column by column in the order of the column
  *names*; the ``k`` dithers go to the continuous columns in name order.
* **Not one dither per column**: values rounded to a grid (2 decimals, say) fall on a few
  residues of the lattice, and one shared dither per column would make all rows agree or
  disagree together: a file p-value that is right on average over keys but far too small for
  half of the keys. A dither per coarse feature varies from row to row.
* **Recomputable after embedding and noise**: embedding keeps every value inside its own bin
  (the nearest lattice point *within the bin*), so the features, hence the dithers, of a
  watermarked row are those it was embedded with. Bins are at least 16 lattice steps wide (125
  for breast_cancer at the default strength), so noise of ``delta / 10`` moves a row's feature only when one of its values sits
  within a few noise widths of a bin edge (about 2% of breast_cancer's rows); such a row then
  gets unrelated dithers, and its trials count as null trials (they lower the power, never the
  validity).
* **One trial per dither**: rows with the same coarse feature share their dithers, and trials
  that share a dither are dependent (200 copies of one row would agree or disagree together).
  Only the first row (in the table's order) of each feature index is counted; the others are
  left out of the test. Breast_cancer's 569 rows have 568 distinct features; a table can never
  count more rows than its schema has feature cells (about 2^16 or more).

Values move by at most ``delta / 2``, except within ``delta / 2`` of a bin edge or a bound,
where the nearest lattice point inside the bin can be up to ``delta`` away. Over keys the
displacement is uniform on ``(-delta/2, delta/2)`` and independent of the value (subtractive
dither), so marginals are smoothed by 0.1% of the range at the default strength.

Example:
    >>> from trustgen.data.loaders import load_data
    >>> df, schema = load_data("breast_cancer")
    >>> key = WatermarkKey.from_seed(0)
    >>> marked = embed_table(df.head(200), schema, key)
    >>> bool(detect_table(marked.sample(frac=0.8, random_state=0), schema, key).p_value < 1e-6)
    True
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd

from trustgen.data.encoders import numeric_values
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema, category_key
from trustgen.errors import ConfigError, DataError, SchemaError
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.stats import Detection

#: Default lattice step as a fraction of each column's range. 1e-3 moves values by at most 0.05%
#: of the range (invisible in marginals and far below a model's sampling error), and survives
#: Gaussian noise of ``delta / 10`` (each trial still agrees with probability 0.988) and rounding
#: to a grid finer than ``delta / 2``.
DEFAULT_STRENGTH = 1e-3

#: Coarse bins per numeric column for the dither feature, at least: wide enough (1/8 of the range)
#: that small noise rarely moves a value across an edge. Schemas with few columns get more
#: (:func:`feature_bins`) so that their rows still have distinct features.
MIN_BINS = 8

#: The feature cells (numeric bins times categorical combinations) :func:`feature_bins` aims for:
#: a table counts at most one row per cell, so a schema with one numeric column and 8 bins
#: could never reach p < 1e-6 (8 trials give at best 2^-8).
TARGET_CELLS = 2 ** 16

#: A bin holds at least this many lattice steps: every value then finds a lattice point in its own
#: bin, and noise of a tenth of a step crosses an edge rarely.
MIN_STEPS_PER_BIN = 16

#: The largest strength: a bin of 1/8 of the range must hold MIN_STEPS_PER_BIN lattice steps.
MAX_STRENGTH = 1 / (MIN_BINS * MIN_STEPS_PER_BIN)

METHOD = "table"
P0 = 0.5  # a trial agrees when the residual is within 1/4 of 0 on the unit circle: half of it
_PURPOSE = "table-v1"  # versioned: another feature definition must never reuse these dithers


def embed_table(df: pd.DataFrame, schema: TabularSchema, key: WatermarkKey, *,
                strength: float = DEFAULT_STRENGTH) -> pd.DataFrame:
    """Watermark a table's continuous columns with ``key``; a new DataFrame (``df`` is untouched).

    Args:
        df: rows with (at least) the schema's columns, by name; other columns pass through.
        schema: the table's schema; its continuous numeric columns carry the watermark, every
            column (categoricals, integers) feeds the row feature the dithers are drawn for.
        key: the secret key (the same one detects).
        strength: lattice step as a fraction of each column's range, in ``(0, 1/128]``;
            detection must use the same value.

    Returns:
        ``df`` with every continuous value moved to its keyed lattice (inside its bounds).

    Raises:
        ConfigError: the schema has no continuous numeric column, or ``strength`` is out of range.
        SchemaError: ``df`` lacks a schema column.
        DataError: no rows, NaN / non-numeric values, or a value outside its declared bounds.

    Example:
        >>> s = TabularSchema([NumericColumn("x", 0.0, 1.0), CategoricalColumn("y", ("a", "b"))])
        >>> out = embed_table(pd.DataFrame({"x": [0.25, 0.5], "y": ["a", "b"]}), s, WatermarkKey.from_seed(1))
        >>> bool((out["x"] - [0.25, 0.5]).abs().max() <= 1e-3)
        True
    """
    cont, strength = _check(df, schema, strength)
    values = {c.name: numeric_values(df[c.name], c.name, c.integer) for c in _numeric(schema)}
    for c in _numeric(schema):
        out = (values[c.name] < c.low) | (values[c.name] > c.high)
        if out.any():
            raise DataError(f"column {c.name!r}: {int(out.sum())} values outside the declared domain [{c.low}, "
                            f"{c.high}] (e.g. {values[c.name][out][0]}); the watermark keeps values inside the "
                            "bounds, so clip the table into them first")
    bins = feature_bins(schema, strength)
    indices = _feature_indices(df, schema, values, bins)
    u = np.stack([key.uniform(len(cont), _PURPOSE, int(i)) for i in indices])
    out = df.copy()
    for j, c in enumerate(cont):
        out[c.name] = _to_lattice(values[c.name], u[:, j], c, strength, bins)
    return out


def detect_table(df: pd.DataFrame, schema: TabularSchema, key: WatermarkKey, *, fpr: float = 1e-6,
                 strength: float = DEFAULT_STRENGTH) -> Detection:
    """Test a set of rows for ``key``'s table watermark.

    Row order, column order, extra columns and extra (unwatermarked) rows do not matter. Values
    outside the bounds are accepted (an edit may push them out).

    Args:
        df: the rows to test, with the schema's columns by name.
        schema: the schema the table was watermarked under.
        key: the key to test for.
        fpr: the false-positive rate of the decisions.
        strength: the strength the table was embedded with.

    Returns:
        A :class:`~trustgen.watermark.stats.Detection` (method ``"table"``): one sample per counted
        row (the first row of each distinct coarse feature), ``trials`` = the number of continuous
        columns, ``p0 = 1/2``; ``p_value`` pools every counted row and is the table's p-value.

    Raises:
        ConfigError, SchemaError, DataError: as :func:`embed_table` (out-of-bound values excepted).

    Example:
        >>> s = TabularSchema([NumericColumn("x", 0.0, 1.0), NumericColumn("z", 0.0, 1.0)])
        >>> rows = pd.DataFrame({"x": np.linspace(0.01, 0.99, 50), "z": np.linspace(0.01, 0.99, 50) ** 2})
        >>> d = detect_table(embed_table(rows, s, WatermarkKey.from_seed(1)), s, WatermarkKey.from_seed(1))
        >>> int(d.counts.sum()), d.trials * len(d.counts), bool(d.file_detected)
        (100, 100, True)
    """
    cont, strength = _check(df, schema, strength)
    values = {c.name: numeric_values(df[c.name], c.name, c.integer) for c in _numeric(schema)}
    bins = feature_bins(schema, strength)
    indices = _feature_indices(df, schema, values, bins)
    # Trials that share a dither are dependent: count the first row of each index only.
    _, first = np.unique(indices, return_index=True)
    first = np.sort(first)
    u = np.stack([key.uniform(len(cont), _PURPOSE, int(indices[i])) for i in first])
    agree = np.zeros(len(first), dtype=np.int64)
    for j, c in enumerate(cont):
        r = np.mod((values[c.name][first] - c.low) / (strength * (c.high - c.low)) - u[:, j], 1.0)
        agree += np.minimum(r, 1.0 - r) < 0.25
    return Detection.from_counts(METHOD, key.key_id, agree, len(cont), P0, fpr=fpr)


def continuous_columns(schema: TabularSchema) -> list[NumericColumn]:
    """The columns a table watermark marks (numeric, not integer), in name order."""
    return sorted((c for c in schema.columns if isinstance(c, NumericColumn) and not c.integer),
                  key=lambda c: c.name)


def feature_bins(schema: TabularSchema, strength: float = DEFAULT_STRENGTH) -> int:
    """Bins per numeric column for the row feature: enough for about :data:`TARGET_CELLS` cells
    with the categorical combinations, at least :data:`MIN_BINS`, and at most what keeps
    :data:`MIN_STEPS_PER_BIN` lattice steps per bin. Public (a function of the schema alone).

    Example:
        >>> feature_bins(TabularSchema([NumericColumn("x", 0.0, 1.0)]))
        62
    """
    numeric = _numeric(schema)
    cat_cells = sum(math.log(len(c.categories)) for c in schema.columns if isinstance(c, CategoricalColumn))
    wanted = math.ceil(math.exp(max(math.log(TARGET_CELLS) - cat_cells, 0.0) / len(numeric))) if numeric else 0
    return int(max(MIN_BINS, min(wanted, math.floor(1 / (strength * MIN_STEPS_PER_BIN)))))


def _numeric(schema: TabularSchema) -> list[NumericColumn]:
    return [c for c in schema.columns if isinstance(c, NumericColumn)]


def _check(df: pd.DataFrame, schema: TabularSchema, strength: float) -> tuple[list[NumericColumn], float]:
    if not isinstance(schema, TabularSchema):
        raise ConfigError(f"a table watermark needs a tabular schema, got {type(schema).__name__}")
    cont = continuous_columns(schema)
    if not cont:
        raise ConfigError("this schema has no column a table watermark can use: it marks continuous numeric "
                          "columns (NumericColumn with integer=False), and every numeric column here is integer "
                          "or there is none")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not (
            math.isfinite(strength) and 0 < strength <= MAX_STRENGTH):
        raise ConfigError(f"the table watermark strength is the lattice step as a fraction of each column's "
                          f"range and must be in (0, {MAX_STRENGTH}], got {strength!r} (default {DEFAULT_STRENGTH})")
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"a table to watermark or test must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise DataError("the table is empty (0 rows): there is nothing to watermark or test")
    names = list(df.columns)
    doubled = sorted({str(n) for n in names if names.count(n) > 1})
    if doubled:
        raise DataError(f"the table has columns {doubled} more than once: keep one of each")
    missing = [c.name for c in schema.columns if c.name not in names]
    if missing:
        raise SchemaError(f"the table lacks the schema's columns {missing}: every schema column feeds the "
                          "watermark's row feature, so restore them (by name; their order does not matter)")
    for c in schema.columns:
        if isinstance(c, CategoricalColumn) and df[c.name].isna().any():
            raise DataError(f"column {c.name!r}: {int(df[c.name].isna().sum())} missing values; fill or drop "
                            "those rows first")
    return cont, float(strength)


def _bins(v: np.ndarray, c: NumericColumn, bins: int) -> np.ndarray:
    """The coarse bin of each value, 0..bins-1 (values outside the bounds go to the end bins)."""
    return np.clip(np.floor((v - c.low) / (c.high - c.low) * bins), 0, bins - 1).astype(np.uint16)


def _feature_indices(df: pd.DataFrame, schema: TabularSchema, values: dict, bins: int) -> np.ndarray:
    """Per row, a 64-bit hash of its coarse feature: the dither index. The hash needs no key (the
    dithers drawn at that index do); names, kinds and the bin count enter it so that another schema's rows
    never share dithers with this one's."""
    ordered = sorted(schema.columns, key=lambda c: c.name)
    layout = [[c.name, "categorical" if isinstance(c, CategoricalColumn) else "numeric"] for c in ordered]
    prefix = hashlib.sha256(json.dumps([_PURPOSE, bins, layout]).encode()).digest()
    num = [c for c in ordered if isinstance(c, NumericColumn)]
    cells = np.stack([_bins(values[c.name], c, bins) for c in num], axis=1) if num else np.zeros((len(df), 0), np.uint16)
    cells = np.ascontiguousarray(cells.astype(">u2"))  # fixed byte order: the same hash on every machine
    cats = [c for c in ordered if isinstance(c, CategoricalColumn)]
    # Length-prefixed category keys: "a|b","c" and "a","b|c" must not hash alike.
    cat_parts = [[len(k).to_bytes(4, "big") + k for k in (category_key(v).encode() for v in df[c.name])] for c in cats]
    cat_bytes = [b"".join(t) for t in zip(*cat_parts)] if cats else [b""] * len(df)
    out = np.empty(len(df), dtype=np.uint64)
    for i in range(len(df)):
        digest = hashlib.sha256(prefix + cells[i].tobytes() + cat_bytes[i]).digest()
        out[i] = int.from_bytes(digest[:8], "big")
    return out


def _to_lattice(x: np.ndarray, u: np.ndarray, c: NumericColumn, strength: float, bins: int) -> np.ndarray:
    """The nearest point of ``low + (u + k) * delta`` inside the value's own bin and the bounds.

    Three candidates (the nearest lattice point and its two neighbours) always include one inside
    the bin: a bin is at least MIN_STEPS_PER_BIN steps wide, so ``[x - delta, x]`` or ``[x, x + delta]`` lies in
    it, and each holds a lattice point."""
    delta = strength * (c.high - c.low)
    k0 = np.round((x - c.low) / delta - u)
    cand = c.low + (u[:, None] + k0[:, None] + np.array([-1.0, 0.0, 1.0])) * delta
    ok = (cand >= c.low) & (cand <= c.high) & (_bins(cand.ravel(), c, bins).reshape(cand.shape) == _bins(x, c, bins)[:, None])
    dist = np.where(ok, np.abs(cand - x[:, None]), np.inf)
    pick = np.argmin(dist, axis=1)
    if not np.isfinite(dist[np.arange(len(x)), pick]).all():  # cannot happen for strength <= MAX_STRENGTH
        raise AssertionError(f"column {c.name!r}: no lattice point inside a bin")
    return cand[np.arange(len(x)), pick]
