"""DP domains: a table's schema estimated with pure epsilon-DP, instead of read from its rows.

:func:`infer_dp_schema` spends a budget ``epsilon`` on the data and returns a
:class:`~trustgen.data.schema.TabularSchema` with ``source="dp"`` that records the spend; training
on it adds that epsilon to the run's ``preprocessing_epsilon`` (basic composition).

Mechanisms (each pure epsilon-DP under add/remove of one row; no delta):

* **Numeric bounds**: the exponential mechanism picks the low (1%) and the high (99%) quantile
  from a data-independent candidate grid, with utility ``-|rank(c) - q n|`` where
  ``rank(c) = #{x <= c}`` (``#{x < c}`` for the low one, so that a point mass at the minimum of a
  public range gives the minimum; candidates below all the data still tie). Adding a row changes ``rank`` by at most 1 and ``q n`` by ``q``, so the
  utility's sensitivity is at most 1 and ``P(c) ~ exp(eps * u(c) / 2)`` is eps-DP. The grid is
  :data:`DEFAULT_GRID` (0 and log-spaced magnitudes of both signs) or, for a public range
  ``[lo, hi]``, :data:`RANGE_GRID_POINTS` evenly spaced points. Integer columns round outward.
  The two picks are ordered and, if equal, widened to the next grid point (post-processing).
* **Categories**: Laplace noise of scale ``1 / eps`` on the count of each *public* candidate (one
  row changes one count by 1: L1 sensitivity 1); candidates above :func:`keep_threshold` are kept
  (the two largest noisy counts if fewer than two pass: a column needs two categories).

Accuracy: a candidate far outside the data has utility ``-q n`` (or ``-(1-q) n``), only ``0.01 n``
worse than the best, and there are many of them; the picks are reliable when
``(epsilon_column / 4) * 0.01 n`` is well above ``log(grid size)`` (7.9 for the default grid, 4.6
for a range), roughly ``epsilon_column * n >= 3,000`` on the default grid (measured: 2,000 normal
rows need epsilon 8 per column, 20,000 rows 0.5). Below that the bounds come out too wide, out to
the grid's ends; a public ``ranges`` entry keeps them inside a sensible range.

Budget split: every column gets an equal share ``epsilon / (number of columns)``; a numeric
column spends half of its share on each bound. The shares add up to ``epsilon``.

Randomness: a ChaCha20 stream under a 256-bit key from the operating system
(:class:`~trustgen.privacy.secure_random.SecureRandom`), addressed by column; ``secret_seed`` is
for tests only and the schema then says so. The implementation uses floating point (as every
Laplace or exponential mechanism in common DP libraries); only the selected candidates and the
kept categories are released, never a noisy value.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"age": range(18, 98), "smoker": ["yes", "no"] * 40})
    >>> s = infer_dp_schema(df, 8.0, categories={"smoker": ["yes", "no", "unknown"]},
    ...                     ranges={"age": (0, 120)}, integer=["age"], secret_seed=0)
    >>> s.source, s.dp.epsilon, [m["epsilon"] for m in s.dp.mechanisms]
    ('dp', 8.0, [4.0, 4.0])
    >>> s.column("smoker").categories
    ('yes', 'no')
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from trustgen.data.encoders import numeric_values
from trustgen.data.schema import (
    CategoricalColumn, DomainSpend, NumericColumn, TabularSchema, category_key,
)
from trustgen.errors import DataError, PrivacyError, SchemaError
from trustgen.privacy.secure_random import SecureRandom, key_from_seed, new_key

#: Quantiles taken as the bounds of a numeric column; rows outside are clipped to them in
#: training (:func:`trustgen.data.encoders.fit_to_domain`).
LOW_QUANTILE, HIGH_QUANTILE = 0.01, 0.99

#: Candidate magnitudes: 100 per decade (10^(k/100), three significant digits: steps of about 2.3%)
#: from 1e-4 to 1e9. A fine grid costs little (accuracy falls with log(grid size)) and puts a
#: candidate near any quantile.
MAGNITUDES: tuple[float, ...] = tuple(float(f"{10 ** (k / 100):.3g}") for k in range(-400, 901))

#: The default, data-independent grid of candidate bounds: both signs of :data:`MAGNITUDES` and 0.
DEFAULT_GRID: tuple[float, ...] = tuple([-m for m in reversed(MAGNITUDES)] + [0.0] + list(MAGNITUDES))

#: Evenly spaced candidates over a user's public range ``[lo, hi]`` (ends included: 1% steps).
RANGE_GRID_POINTS = 101

#: Probability (at most) that some candidate absent from the data is kept as a category.
FALSE_KEEP = 0.05


# ----------------------------------------------------------------------------- pure mechanisms
def quantile_probabilities(values: np.ndarray, candidates: Sequence[float], q: float, epsilon: float) -> np.ndarray:
    """Selection probabilities of the exponential-mechanism ``q``-quantile over ``candidates``.

    ``P(c) ~ exp(epsilon * u(c) / 2)`` with ``u(c) = -|#{x <= c} - q n|`` (sensitivity 1;
    ``#{x < c}`` for a low quantile, ``q < 0.5``).

    Example:
        >>> p = quantile_probabilities(np.array([1.0, 2.0]), [0.0, 1.5, 3.0], 0.5, 2.0)
        >>> [round(float(v), 4) for v in p]   # u = -1, 0, -1
        [0.2119, 0.5761, 0.2119]
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    # A low quantile counts the values below a candidate, a high one those at or below it: with
    # half the values on the minimum, #{x <= c} is n/2 for every candidate from the minimum on,
    # and the low bound came out anywhere in the range (a fuzzer's find); #{x < c} picks the
    # minimum. Either count changes by at most 1 when a row is added or removed.
    rank = np.searchsorted(x, np.asarray(candidates, dtype=np.float64), side="left" if q < 0.5 else "right")
    logits = -0.5 * epsilon * np.abs(rank - q * len(x))
    w = np.exp(logits - logits.max())  # shifted by the max: no overflow, same distribution
    return w / w.sum()


def pick(probabilities: np.ndarray, u: float) -> int:
    """The index that a uniform ``u`` in (0, 1) selects by inverting the cumulative distribution."""
    cdf = np.cumsum(probabilities)
    return min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(cdf) - 1)


def keep_threshold(n_candidates: int, epsilon: float) -> float:
    """Noisy-count threshold: a candidate absent from the data passes with probability
    ``exp(-t epsilon) / 2 = FALSE_KEEP / n_candidates``, so at most :data:`FALSE_KEEP` over all."""
    return math.log(n_candidates / (2 * FALSE_KEEP)) / epsilon


def laplace(u: np.ndarray, scale: float) -> np.ndarray:
    """Laplace(0, ``scale``) by inverting its distribution function at uniforms ``u`` in (0, 1)."""
    u = np.asarray(u, dtype=np.float64)
    return np.where(u < 0.5, scale * np.log(2 * u), -scale * np.log(2 * (1 - u)))


def thresholded_counts(keys: Sequence[str], candidates: Sequence, epsilon: float, u: np.ndarray) -> list[int]:
    """Indices (in candidate order) of the candidates kept by Laplace-noised counts.

    ``keys`` are the rows' normalised values (:func:`~trustgen.data.schema.category_key`);
    ``u`` one uniform per candidate.
    """
    index = {category_key(c): i for i, c in enumerate(candidates)}
    counts = np.zeros(len(candidates))
    for k in keys:
        if k in index:  # a value outside the public list is not counted (and dropped in training)
            counts[index[k]] += 1
    noisy = counts + laplace(u, 1.0 / epsilon)
    kept = np.flatnonzero(noisy > keep_threshold(len(candidates), epsilon))
    if len(kept) < 2:  # a column needs two categories; choosing from noisy counts is post-processing
        kept = np.sort(np.argsort(-noisy, kind="stable")[:2])
    return [int(i) for i in kept]


# ----------------------------------------------------------------------------- requests
def range_grid(low: float, high: float) -> tuple[float, ...]:
    """The candidate grid for a public range ``[low, high]``."""
    return tuple(float(v) for v in np.linspace(low, high, RANGE_GRID_POINTS))


def check_request(columns: Sequence[str], epsilon: float, *, categories: Mapping[str, Sequence] = {},
                  ranges: Mapping[str, tuple[float, float]] = {}, integer: Sequence[str] = (),
                  label: str | None = None) -> None:
    """Refuse a request that cannot be answered privately, before any row is read.

    ``columns`` are the table's column names (its header: public). Raises PrivacyError or
    SchemaError with a one-line reason.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (
            math.isfinite(epsilon) and epsilon > 0):
        raise PrivacyError(f"epsilon must be a finite number > 0, got {epsilon!r}: it is the budget the "
                           "schema estimate spends (e.g. 1)")
    names = list(columns)
    for what, given in (("categories", categories), ("range", ranges), ("integer", integer)):
        unknown = [c for c in given if c not in names]
        if unknown:
            raise SchemaError(f"--{what} names columns {unknown} that the data does not have (columns: {names})")
    if label is not None and label not in names:
        raise SchemaError(f"label column {label!r} is not among the data's columns {names}")
    if label is not None and label not in categories:
        raise PrivacyError(f"label column {label!r} has no public candidate list: its classes cannot be found "
                           f"privately; pass --categories {label}=A,B,... (or --vocabulary FILE)")
    for c, cands in categories.items():
        if c in ranges or c in integer:
            raise SchemaError(f"column {c!r} is given candidate categories and also --range/--integer: "
                              "a column is either categorical or numeric")
        keys = [category_key(v) for v in cands]
        if len(keys) < 2 or len(set(keys)) != len(keys) or any(not k for k in keys):
            raise SchemaError(f"column {c!r}: candidate categories must be at least 2 distinct non-empty "
                              f"values, got {list(cands)}")
    for c, (lo, hi) in ranges.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise SchemaError(f"--range for column {c!r} must be finite with low < high, got {lo}:{hi}")
    if len(names) - (label is not None) < 1:
        raise SchemaError("the data has no feature column besides the label")


# ----------------------------------------------------------------------------- the schema
def _numeric_column(name: str, v: np.ndarray, epsilon: float, grid: tuple[float, ...], integer: bool,
                    rng: SecureRandom, index: int) -> NumericColumn:
    picks = []
    for part, q in enumerate((LOW_QUANTILE, HIGH_QUANTILE)):
        u = float(rng.uniform(1, f"dp-domain-quantile:{index}", 0, part)[0])
        picks.append(pick(quantile_probabilities(v, grid, q, epsilon / 2), u))
    i, j = sorted(picks)
    if i == j:  # equal picks: widen by one grid step (post-processing of the released picks)
        i, j = (i, i + 1) if i + 1 < len(grid) else (i - 1, i)
    low, high = grid[i], grid[j]
    if integer:
        low, high = float(math.floor(low)), float(math.ceil(high))
    return NumericColumn(name, low, high, integer)


def infer_dp_schema(data: pd.DataFrame, epsilon: float, *, categories: Mapping[str, Sequence] = {},
                    ranges: Mapping[str, tuple[float, float]] = {}, integer: Sequence[str] = (),
                    label: str | None = None, secret_seed: int | None = None) -> TabularSchema:
    """Estimate a table's schema with pure ``epsilon``-DP (module docstring: mechanisms, split).

    Args:
        data: the private table.
        epsilon: the total budget, split equally over the columns.
        categories: for each categorical column, its public candidate values (the label included).
            Every other column is numeric.
        ranges: optional public ``(low, high)`` per numeric column: its candidates are then
            :data:`RANGE_GRID_POINTS` points over that range instead of :data:`DEFAULT_GRID`.
        integer: numeric columns that hold whole numbers (bounds rounded outward). Whether a
            column is integer is declared, not read from the rows (that would be a release).
        label: the categorical column models condition on.
        secret_seed: TESTS ONLY: derive the noise from this seed (the schema records it).

    Raises:
        PrivacyError, SchemaError, DataError: before any budget is spent.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"DP schema inference is for tables (a DataFrame or .csv), got {type(data).__name__}: "
                        "an image's shape and value range are format facts; declare them")
    check_request(list(data.columns), epsilon, categories=categories, ranges=ranges, integer=integer, label=label)
    if len(data) == 0:
        raise DataError("the data is empty (0 rows)")
    for c in data.columns:
        if c not in categories and (pd.to_numeric(data[c], errors="coerce").isna() & data[c].notna()).any():
            raise PrivacyError(f"column {c!r} holds text, so it is categorical, and its categories can be found "
                               f"privately only from a public candidate list: pass --categories {c}=A,B,... (or "
                               "--vocabulary FILE), or drop the column")
    numeric = {c: numeric_values(data[c], c, c in integer) for c in data.columns if c not in categories}
    for c in categories:
        if data[c].isna().any():
            raise DataError(f"column {c!r}: missing values; trustgen does not impute: drop or fill them first")
    # -- all checks done: from here on the budget is spent
    rng = SecureRandom(new_key() if secret_seed is None else key_from_seed(secret_seed))
    share = epsilon / len(data.columns)
    cols, mechanisms = [], []
    for index, name in enumerate(data.columns):
        if name in categories:
            cands = tuple(categories[name])
            u = rng.uniform(len(cands), f"dp-domain-counts:{index}", 0).numpy()
            kept = thresholded_counts([category_key(v) for v in data[name]], cands, share, u)
            cols.append(CategoricalColumn(name, tuple(cands[i] for i in kept)))
            mechanisms.append({"column": name, "mechanism": "laplace-thresholded-counts", "epsilon": share,
                               "candidates": len(cands), "threshold": keep_threshold(len(cands), share)})
        else:
            grid = range_grid(*ranges[name]) if name in ranges else DEFAULT_GRID
            cols.append(_numeric_column(name, numeric[name], share, grid, name in integer, rng, index))
            mechanisms.append({"column": name, "mechanism": "exponential-quantiles", "epsilon": share,
                               "quantiles": [LOW_QUANTILE, HIGH_QUANTILE],
                               "grid": list(ranges[name]) + [RANGE_GRID_POINTS] if name in ranges else "default"})
    return TabularSchema(cols, label, "dp", DomainSpend(float(epsilon), tuple(mechanisms), secret_seed is not None))


__all__ = ["DEFAULT_GRID", "FALSE_KEEP", "HIGH_QUANTILE", "LOW_QUANTILE", "RANGE_GRID_POINTS", "check_request",
           "infer_dp_schema", "keep_threshold", "laplace", "pick", "quantile_probabilities", "range_grid",
           "thresholded_counts"]
