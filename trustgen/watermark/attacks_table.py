"""Edits a watermarked table may undergo, as pure functions with a stated strength and a seed.

They simulate what a user of released synthetic rows does (keeps some rows, adds others,
shuffles, reorders columns, perturbs or rounds numbers), so that detection can be measured
under each (``benchmarks/watermark_table.py``, docs/watermark-table.md). They are public
simulations, not keyed: a numpy generator seeded by ``seed`` is the right randomness here.
Every function returns a new DataFrame with a fresh 0..n-1 index (a released file has no
index) and leaves its input untouched.

:data:`TABLE_ATTACKS` names each with its default strength; :func:`table_attack` looks one up.

Example:
    >>> df = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4, 0.5], "y": ["a", "b", "a", "b", "a"]})
    >>> len(delete_rows(df, 0.4, seed=0)), sorted(reorder_columns(df, seed=1).columns)
    (3, ['x', 'y'])
    >>> TABLE_ATTACKS["delete_rows"].default
    0.2
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from trustgen.data.encoders import numeric_values
from trustgen.data.schema import NumericColumn, TabularSchema
from trustgen.errors import ConfigError, SchemaError


def delete_rows(df: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Drop ``round(fraction * len(df))`` rows chosen at random; the rest keep their order.

    Example:
        >>> len(delete_rows(pd.DataFrame({"x": range(10)}), 0.2, seed=0))
        8
    """
    fraction = _fraction(fraction, "delete_rows", upper=1.0)
    rng = np.random.default_rng(seed)
    drop = rng.choice(len(df), size=round(fraction * len(df)), replace=False)
    keep = np.setdiff1d(np.arange(len(df)), drop)
    return df.iloc[keep].reset_index(drop=True)


def insert_rows(df: pd.DataFrame, other_df: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Insert ``round(fraction * len(df))`` rows of ``other_df`` (drawn at random, without
    replacement while it has enough) at random positions; ``df``'s rows keep their order.

    Example:
        >>> a, b = pd.DataFrame({"x": [0.0] * 4}), pd.DataFrame({"x": [1.0] * 4})
        >>> float(insert_rows(a, b, 0.5, seed=0)["x"].sum())
        2.0
    """
    fraction = _fraction(fraction, "insert_rows", upper=math.inf)
    missing = [c for c in df.columns if c not in other_df.columns]
    if missing:
        raise SchemaError(f"insert_rows: the rows to insert lack the table's columns {missing}")
    k = round(fraction * len(df))
    if k and len(other_df) == 0:
        raise ConfigError("insert_rows: there are no rows to insert (other_df is empty)")
    rng = np.random.default_rng(seed)
    picked = other_df[list(df.columns)].iloc[rng.choice(len(other_df), size=k, replace=k > len(other_df))]
    slots = np.zeros(len(df) + k, dtype=bool)
    slots[rng.choice(len(df) + k, size=k, replace=False)] = True
    order = np.empty(len(df) + k, dtype=np.int64)
    order[~slots] = np.arange(len(df))
    order[slots] = len(df) + np.arange(k)
    return pd.concat([df, picked], ignore_index=True).iloc[order].reset_index(drop=True)


def shuffle_rows(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The rows in a random order.

    Example:
        >>> shuffle_rows(pd.DataFrame({"x": range(5)}), seed=0)["x"].tolist() != [0, 1, 2, 3, 4]
        True
    """
    return df.iloc[np.random.default_rng(seed).permutation(len(df))].reset_index(drop=True)


def reorder_columns(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The columns in a random order.

    Example:
        >>> sorted(reorder_columns(pd.DataFrame({"a": [1], "b": [2], "c": [3]}), seed=0).columns)
        ['a', 'b', 'c']
    """
    cols = list(df.columns)
    return df[[cols[i] for i in np.random.default_rng(seed).permutation(len(cols))]].reset_index(drop=True)


def add_noise(df: pd.DataFrame, schema: TabularSchema, sigma_fraction_of_range: float, seed: int) -> pd.DataFrame:
    """Gaussian noise on every numeric column, with standard deviation ``sigma_fraction_of_range
    * (high - low)``, clipped into the bounds; integer columns are rounded back to whole numbers
    (so the table still fits its schema). Categoricals are untouched.

    Example:
        >>> s = TabularSchema([NumericColumn("x", 0.0, 10.0)])
        >>> bool((add_noise(pd.DataFrame({"x": [5.0] * 100}), s, 0.01, seed=0)["x"] - 5.0).abs().max() < 0.6)
        True
    """
    sigma = _fraction(sigma_fraction_of_range, "add_noise", upper=math.inf)
    rng = np.random.default_rng(seed)
    out = df.reset_index(drop=True)
    for c in _numeric_present(df, schema):
        v = numeric_values(df[c.name], c.name) + rng.normal(0.0, sigma * (c.high - c.low), len(df))
        v = np.clip(np.round(v) if c.integer else v, c.low, c.high)
        out[c.name] = v.astype(np.int64) if c.integer and np.issubdtype(df[c.name].dtype, np.integer) else v
    return out


def round_values(df: pd.DataFrame, schema: TabularSchema, decimals: int) -> pd.DataFrame:
    """Every non-integer numeric column rounded to ``decimals`` decimals (clipped into the bounds:
    rounding can step past a bound that is not on the grid).

    Example:
        >>> s = TabularSchema([NumericColumn("x", 0.0, 1.0)])
        >>> round_values(pd.DataFrame({"x": [0.123456]}), s, 2)["x"].tolist()
        [0.12]
    """
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise ConfigError(f"round_values: decimals must be a whole number, got {decimals!r}")
    out = df.reset_index(drop=True)
    for c in _numeric_present(df, schema):
        if not c.integer:
            out[c.name] = np.clip(np.round(numeric_values(df[c.name], c.name), int(decimals)), c.low, c.high)
    return out


@dataclass(frozen=True)
class TableAttack:
    """One table edit with its default strength.

    Attributes:
        name: the registry name.
        function: the edit itself (one of this module's functions).
        default: the strength the benchmark and docs report it at (None: the edit has none).
        describes: what the strength means, in words.
    """

    name: str
    function: Callable
    default: float | int | None
    describes: str
    _apply: Callable = field(repr=False, compare=False)  # one calling convention for every edit

    def __call__(self, df: pd.DataFrame, schema: TabularSchema, *, seed: int, strength=None,
                 other: pd.DataFrame | None = None) -> pd.DataFrame:
        """Apply the edit at ``strength`` (default: :attr:`default`); ``other`` holds the rows
        ``insert_rows`` inserts (required there, ignored elsewhere)."""
        if self.name == "insert_rows" and other is None:
            raise ConfigError("insert_rows needs the rows to insert: pass other=a DataFrame")
        return self._apply(df, schema, self.default if strength is None else strength, seed, other)


TABLE_ATTACKS: dict[str, TableAttack] = {a.name: a for a in (
    TableAttack("delete_rows", delete_rows, 0.2, "fraction of the rows deleted",
                lambda df, schema, s, seed, other: delete_rows(df, s, seed)),
    TableAttack("insert_rows", insert_rows, 0.5, "rows inserted from another table, as a fraction of the table",
                lambda df, schema, s, seed, other: insert_rows(df, other, s, seed)),
    TableAttack("shuffle_rows", shuffle_rows, None, "rows permuted",
                lambda df, schema, s, seed, other: shuffle_rows(df, seed)),
    TableAttack("reorder_columns", reorder_columns, None, "columns permuted",
                lambda df, schema, s, seed, other: reorder_columns(df, seed)),
    TableAttack("add_noise", add_noise, 1e-4,
                "Gaussian noise sd as a fraction of each column's range (1e-4: a tenth of the default lattice step)",
                lambda df, schema, s, seed, other: add_noise(df, schema, s, seed)),
    TableAttack("round_values", round_values, 3, "decimals kept in every continuous column",
                lambda df, schema, s, seed, other: round_values(df, schema, s)),
)}


def table_attack(name: str) -> TableAttack:
    """The attack called ``name``; a KeyError listing the known ones otherwise."""
    try:
        return TABLE_ATTACKS[name]
    except KeyError:
        raise KeyError(f"unknown table attack {name!r}; known: {', '.join(TABLE_ATTACKS)}") from None


def _fraction(v: float, what: str, upper: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 <= v <= upper):
        bound = "0 or more" if upper == math.inf else f"in [0, {upper:g}]"
        raise ConfigError(f"{what}: the strength must be a finite number {bound}, got {v!r}")
    return float(v)


def _numeric_present(df: pd.DataFrame, schema: TabularSchema) -> list[NumericColumn]:
    missing = [c.name for c in schema.columns if isinstance(c, NumericColumn) and c.name not in df.columns]
    if missing:
        raise SchemaError(f"the table lacks the schema's numeric columns {missing}")
    return [c for c in schema.columns if isinstance(c, NumericColumn)]
