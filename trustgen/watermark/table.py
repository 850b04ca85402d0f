"""Tabular watermark: a keyed dither lattice on the continuous columns, detected from a set of rows.

Post-hoc quantisation-index modulation with a keyed dither: every value of a continuous column
(a :class:`~trustgen.data.schema.NumericColumn` with ``integer=False``) moves to the nearest
point of a lattice ``low + (u + k) * delta`` (``k`` whole, ``delta = strength * (high - low)``),
where the dither ``u`` in (0, 1) comes from the key and from a coarse description of the row.

Detection needs the key and the rows only. The residual ``r = ((x - low) / delta - u) mod 1``
is 0 for a watermarked value and stays near 0 under small noise; a trial *agrees* when ``r``
lies within 1/4 of 0 on the circle. For any table made without the key, ``u`` is uniform and
independent of ``x`` over the draw of the key, so each trial agrees with probability exactly
1/2, independently across trials with distinct dithers: the count of agreeing trials is
binomial and the p-value of :class:`~trustgen.watermark.stats.Detection` is exact for any
table, with no calibration and no assumption about its content.

Where the dither comes from (all of it recomputable from the rows and the key):

* **A fine bin of the value itself.** Each column's range is cut into ``n_fine`` bins (8
  lattice steps wide at least; 125 bins at the default strength) with a keyed offset. The
  dither of a value depends on its bin, and embedding moves a value to the nearest lattice
  point *of the bin it lands in* (the union, over bins, of each bin's lattice inside it), so
  the bin of a watermarked value gives back its dither.
* **A coarse row feature R**, so that dithers differ between rows and tables: every
  categorical value (the label included), an 8-bin index of every integer column, and for each
  continuous column its *group*: runs of consecutive fine bins, cut at keyed places that
  embedding never crosses. A row's dithers are ``key.uniform(...)`` at an index hashed from R;
  columns are taken by *name*, so row order, deletions, insertions and column order do not
  matter. Groups are as coarse as the schema allows (:func:`coarse_groups`): for 30 columns,
  two or three per column (a value changes group only when an edit moves it across one or two
  keyed edges, so even rounding a small-range column costs few rows their other trials); for
  a schema with few columns, finer, so that R still takes some 2^24 values.
* **Not one dither per column.** Values rounded to a grid (2 decimals, say) fall on a few
  residues of the lattice; with one dither per column all rows would agree or disagree
  together, and for a given key most tables from one source would get a too-small or too-large
  p-value (right only on average over keys). Even a dither per (R, bin) repeats across tables
  when R takes few values: two tables holding the same grid value in the same cell agree or
  disagree together, so for one key the false-positive rate over many tables drifts from the
  nominal one unless R has many more values than a table has rows. Hence the 2^24 target.
* **One trial per dither.** Values that share a dither (same R, same column, same fine bin) are
  dependent: 200 copies of a row would agree or disagree together. Only the first such value
  (in the table's order) is counted. Edits that move a value to another fine bin, or a row to
  another R, give it unrelated dithers: those trials count as null trials (less power, never a
  wrong p-value).

Values move by at most ``delta`` (by at most ``delta / 2`` for 97 in 100, and up to ``2 *
delta`` within two steps of a bound). Over keys (offsets and dithers uniform) the lattice is a
stationary random point set (away from the bounds), so the displacement's distribution does not
depend on the value: marginals are smoothed by a kernel of width ``delta`` (mean displacement
0.26 delta) and no value range is favoured.

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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trustgen.data.encoders import numeric_values
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema, category_key
from trustgen.errors import ConfigError, DataError, SchemaError
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.stats import Detection

#: Default lattice step as a fraction of each column's range. 1e-3 moves values by at most 0.1%
#: of the range (typically 0.05%: invisible in marginals, far below a model's sampling error),
#: and survives Gaussian noise of ``delta / 10`` (a trial still agrees with probability 0.99)
#: and rounding to a grid finer than ``delta / 2``.
DEFAULT_STRENGTH = 1e-3
MIN_STRENGTH, MAX_STRENGTH = 1e-8, 1e-2

#: A fine bin is at least this many lattice steps wide: noise of a tenth of a step then moves
#: about 1% of values to another bin (each such value loses its own trial only).
MIN_STEPS_PER_BIN = 8

#: At most this many fine bins per column: a row draws its dithers for every bin at once.
MAX_FINE_BINS = 256

#: Integer columns enter the row feature as this many equal bins over their bounds (embedding
#: never changes them, and small noise rounded back to whole numbers rarely crosses an edge).
INTEGER_BINS = 8

#: The number of values the row feature R should take (categoricals x integer bins x groups of
#: the continuous columns): far more than a table has rows, so that tables from one source
#: rarely share a dither (the per-key null, above).
TARGET_CELLS = 2 ** 24

METHOD = "table"
P0 = 0.5  # a trial agrees when the residual is within 1/4 of 0 on the unit circle: half of it
_PURPOSE = "table-v1"  # versioned: another feature definition must never reuse these dithers


def embed_table(df: pd.DataFrame, schema: TabularSchema, key: WatermarkKey, *,
                strength: float = DEFAULT_STRENGTH) -> pd.DataFrame:
    """Watermark a table's continuous columns with ``key``; a new DataFrame (``df`` is untouched).

    Args:
        df: rows with (at least) the schema's columns, by name; other columns pass through.
        schema: the table's schema; its continuous numeric columns carry the watermark, and every
            column feeds the row feature the dithers are drawn for.
        key: the secret key (the same one detects).
        strength: lattice step as a fraction of each column's range, in ``[1e-8, 0.01]``;
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
    grid, values = _prepare(df, schema, key, strength)
    for c in grid.columns:
        out = (values[c.name] < c.low) | (values[c.name] > c.high)
        if out.any():
            raise DataError(f"column {c.name!r}: {int(out.sum())} values outside the declared domain [{c.low}, "
                            f"{c.high}] (the first at row {int(np.flatnonzero(out)[0]) + 1}); the watermark keeps "
                            "values inside the bounds, so clip the table into them first")
    _, _, u3 = _row_dithers(df, schema, key, grid, values)
    out = df.copy()
    for j, c in enumerate(grid.columns):
        x = values[c.name]
        # Values exactly at a bound stay (and are not counted): a clipping model makes many, and
        # moving them inside is what a classifier would see.
        out[c.name] = np.where(_at_bounds(x, c), x, _to_lattice(x, u3[:, j, :], grid, j))
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
        fpr: the false-positive rate of the decision.
        strength: the strength the table was embedded with.

    Returns:
        A :class:`~trustgen.watermark.stats.Detection` (method ``"table"``) with one sample, the
        table: ``counts[0]`` agreeing trials of ``trials`` counted ones (one per distinct
        dither), ``p0 = 1/2``; ``p_value`` is the table's p-value.

    Raises:
        ConfigError, SchemaError, DataError: as :func:`embed_table` (out-of-bound values excepted).

    Example:
        >>> s = TabularSchema([NumericColumn("x", 0.0, 1.0), NumericColumn("z", 0.0, 1.0)])
        >>> rows = pd.DataFrame({"x": np.linspace(0.01, 0.99, 50), "z": np.linspace(0.01, 0.99, 50) ** 2})
        >>> d = detect_table(embed_table(rows, s, WatermarkKey.from_seed(1)), s, WatermarkKey.from_seed(1))
        >>> bool(d.counts[0] == d.trials), bool(d.file_detected)  # every counted trial agrees
        (True, True)
    """
    grid, values = _prepare(df, schema, key, strength)
    rows, bins, u3 = _row_dithers(df, schema, key, grid, values)
    agree = trials = 0
    for j, c in enumerate(grid.columns):
        x = values[c.name]
        inside = np.flatnonzero(~_at_bounds(x, c))  # values at a bound are never marked
        # Values sharing a dither (same row feature, same bin) are dependent: count the first only.
        _, first = np.unique(np.stack([rows[inside], bins[inside, j].astype(np.uint64)], axis=1), axis=0,
                             return_index=True)
        first = inside[first]
        r = np.mod((x[first] - c.low) / grid.delta[j] - u3[first, j, 1], 1.0)
        agree += int((np.minimum(r, 1.0 - r) < 0.25).sum())
        trials += len(first)
    return Detection.from_counts(METHOD, key.key_id, np.array([agree]), trials, P0, fpr=fpr)


def _at_bounds(x: np.ndarray, c: NumericColumn) -> np.ndarray:
    return (x <= c.low) | (x >= c.high)


def continuous_columns(schema: TabularSchema) -> list[NumericColumn]:
    """The columns a table watermark marks (numeric, not integer), in name order."""
    return sorted((c for c in schema.columns if isinstance(c, NumericColumn) and not c.integer),
                  key=lambda c: c.name)


def coarse_groups(schema: TabularSchema, strength: float = DEFAULT_STRENGTH) -> int:
    """Fine bins per group of a continuous column in the row feature: as many as leave R about
    :data:`TARGET_CELLS` values (at least 2 groups per column, at most one bin per group).

    Example:
        >>> from trustgen.data.loaders import load_data
        >>> coarse_groups(load_data("breast_cancer")[1]), coarse_groups(TabularSchema([NumericColumn("x", 0.0, 1.0)]))
        (62, 1)
    """
    cont = continuous_columns(schema)
    log_cells = sum(math.log(len(c.categories)) for c in schema.columns if isinstance(c, CategoricalColumn))
    log_cells += sum(math.log(min(INTEGER_BINS, c.high - c.low + 1)) for c in schema.columns
                     if isinstance(c, NumericColumn) and c.integer)
    n = fine_bins(strength)
    per_column = math.exp(max(math.log(TARGET_CELLS) - log_cells, 0.0) / len(cont))
    groups = min(max(per_column, 2.0), n - 1)
    return max(1, math.ceil((n - 1) / groups))


def fine_bins(strength: float = DEFAULT_STRENGTH) -> int:
    """Fine bins per continuous column: as many as keep :data:`MIN_STEPS_PER_BIN` lattice steps
    per bin, at most :data:`MAX_FINE_BINS`.

    Example:
        >>> fine_bins(1e-3), fine_bins(1e-6)
        (125, 256)
    """
    return int(min(math.floor(1 / (strength * MIN_STEPS_PER_BIN) + 1e-9), MAX_FINE_BINS))


@dataclass(frozen=True)
class _Grid:
    """A schema's keyed bins: per continuous column (in name order) the step, the fine bins
    (``n`` of them, shifted by a keyed ``offset``; indices 0..n, the end bins may be slivers)
    and their groups in the row feature (``group`` bins each, cut at a keyed ``shift``)."""

    columns: list
    delta: np.ndarray
    n: int
    offset: np.ndarray
    group: int
    shift: np.ndarray
    layout: bytes

    def bin(self, x: np.ndarray, j: int) -> np.ndarray:
        c = self.columns[j]
        b = np.floor((x - c.low) / (c.high - c.low) * self.n + self.offset[j])
        return np.clip(b, 0, self.n).astype(np.int64)

    def coarse(self, b: np.ndarray, j: int) -> np.ndarray:
        """The group of bin ``b``. The end slivers join their neighbour's group: every group
        then holds a full bin, so every value has a lattice point in its own group."""
        return (np.clip(b, 1, self.n - 1) + self.shift[j]) // self.group


def _prepare(df: pd.DataFrame, schema: TabularSchema, key: WatermarkKey, strength: float) -> tuple[_Grid, dict]:
    if not isinstance(schema, TabularSchema):
        raise ConfigError(f"a table watermark needs a tabular schema, got {type(schema).__name__}")
    cont = continuous_columns(schema)
    if not cont:
        raise ConfigError("this schema has no column a table watermark can use: it marks continuous numeric "
                          "columns (NumericColumn with integer=False), and every numeric column here is integer "
                          "or there is none")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not (
            math.isfinite(strength) and MIN_STRENGTH <= strength <= MAX_STRENGTH):
        raise ConfigError(f"the table watermark strength is the lattice step as a fraction of each column's "
                          f"range and must be in [{MIN_STRENGTH:g}, {MAX_STRENGTH:g}], got {strength!r} "
                          f"(default {DEFAULT_STRENGTH:g})")
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
    values = {c.name: numeric_values(df[c.name], c.name, c.integer)
              for c in schema.columns if isinstance(c, NumericColumn)}
    n, group = fine_bins(strength), coarse_groups(schema, strength)
    ordered = sorted(schema.columns, key=lambda c: c.name)
    layout = json.dumps([_PURPOSE, n, group, [[c.name, type(c).__name__] for c in ordered]]).encode()
    # Offsets and shifts are keyed (and differ between schemas): over keys every value range is
    # treated alike, and nobody without the key knows where the bins end.
    g = key.uniform(2 * len(cont), f"{_PURPOSE}|grid", _index(layout))
    shift = np.floor(g[len(cont):] * group).astype(np.int64)
    delta = np.array([strength * (c.high - c.low) for c in cont])
    return _Grid(cont, delta, n, g[:len(cont)], group, shift, layout), values


def _index(data: bytes) -> int:
    """A 64-bit index for :meth:`WatermarkKey.uniform` (a plain hash: the key is in the draw)."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _row_dithers(df: pd.DataFrame, schema: TabularSchema, key: WatermarkKey, grid: _Grid,
                 values: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the index of its coarse feature R, each continuous value's bin ``[rows, columns]``,
    and the dithers of that bin and its two neighbours ``[rows, columns, 3]``.

    R: in column-name order, each categorical's value (length-prefixed: "a|b","c" and "a","b|c"
    differ), each integer column's bin, each continuous column's group. A row
    draws the dithers of every bin of every column at once (one keyed call per distinct R) and
    keeps the three it needs per column, so memory stays at a few numbers per value."""
    bins = np.stack([grid.bin(values[c.name], j) for j, c in enumerate(grid.columns)], axis=1)
    parts = []
    for c in sorted(schema.columns, key=lambda c: c.name):
        if isinstance(c, CategoricalColumn):
            keys = [category_key(v).encode() for v in df[c.name]]
            parts.append([len(k).to_bytes(4, "big") + k for k in keys])
        elif c.integer:
            b = np.clip(np.floor((values[c.name] - c.low) / (c.high - c.low) * INTEGER_BINS), 0, INTEGER_BINS - 1)
            parts.append([bytes([int(v)]) for v in b])
        else:
            j = grid.columns.index(c)
            parts.append([int(v).to_bytes(2, "big") for v in grid.coarse(bins[:, j], j)])
    prefix = hashlib.sha256(grid.layout).digest()
    rows = np.array([_index(prefix + b"".join(p)) for p in zip(*parts)], dtype=np.uint64)
    k, n = len(grid.columns), grid.n + 1
    need = np.clip(bins[:, :, None] + np.array([-1, 0, 1]), 0, grid.n)
    uniq, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.empty(need.shape)
    cols = np.arange(k)[:, None]
    for g, index in enumerate(uniq):
        drawn = key.uniform(k * n, f"{_PURPOSE}|dither", int(index)).reshape(k, n)
        members = order[starts[g]:starts[g] + counts[g]]
        out[members] = drawn[cols, need[members]]
    return rows, bins, out


def _to_lattice(x: np.ndarray, u3: np.ndarray, grid: _Grid, j: int) -> np.ndarray:
    """The nearest point to each ``x`` of the union over bins ``b`` of ``{low + (u_b + k) delta}
    inside bin b``, in the value's own group and inside the bounds.

    The nearest such point lies in the value's bin or a neighbour, within two steps: bins are
    8 steps wide except the end slivers, and every group holds a full bin. ``u3``
    holds the dithers of bins ``b - 1, b, b + 1`` (clipped to the column's bins)."""
    c, delta = grid.columns[j], grid.delta[j]
    b = grid.bin(x, j)
    best, best_dist = np.full(len(x), np.nan), np.full(len(x), np.inf)
    for i, db in enumerate((-1, 0, 1)):
        bb = np.clip(b + db, 0, grid.n)
        ub = u3[:, i]
        k0 = np.round((x - c.low) / delta - ub)
        for dk in (-2, -1, 0, 1, 2):
            y = c.low + (ub + k0 + dk) * delta
            ok = (y >= c.low) & (y <= c.high) & (grid.bin(y, j) == bb) & (grid.coarse(bb, j) == grid.coarse(b, j))
            dist = np.where(ok, np.abs(y - x), np.inf)
            better = dist < best_dist
            best[better], best_dist[better] = y[better], dist[better]
    if not np.isfinite(best_dist).all():  # cannot happen: every group holds a full bin
        raise AssertionError(f"column {c.name!r}: no lattice point found")
    return best
