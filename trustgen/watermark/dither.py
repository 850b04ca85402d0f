"""Post-hoc watermark for arrays and images: keyed dither modulation (QIM) on every element.

Each element of a sample is moved to the nearest point of a keyed lattice ``{d + k*Delta}``
inside ``[low, high]``, where ``Delta = step * (high - low)`` and the dither ``d`` in
``[0, Delta)`` comes from the key (:meth:`~trustgen.watermark.keys.WatermarkKey.uniform`).
The detector computes each element's lattice residual ``((x - d) / Delta) mod 1``; an element
*agrees* when that residual is within 1/4 of 0. A marked element always agrees (and still does
after noise smaller than ``Delta / 4``); for content made without the key, ``d`` is uniform and
independent of the content, so each element agrees with probability exactly 1/2, independently
over the key's randomness. The count of agreements is Binomial(n, 1/2): the p-value
(:mod:`trustgen.watermark.stats`) is exact for *any* content, with no calibration.

Why the dither also depends on the sample. If the dither depended on the element's position
only, the null would hold over keys but fail for one fixed key over many samples: every
sample with the same value at a position (the black background of every digit; any content on
a grid, e.g. integer pixels) gets the same residual there, so one key gives all such samples
nearly the same count, and a "bad" key would flag many files at once. So the dither of element
``i`` is keyed by ``(summary, i)``, where the *summary* is recomputable from the sample: its
elements (flattened, C-order) are cut into :data:`CHUNKS` contiguous chunks, and each chunk's
mean is placed in one of ``LEVELS + 1`` cells whose edges sit at a keyed offset (so no content
grid lines up with them). Distinct samples almost always get distinct summaries (1,794 to
1,797 of the 1,797 digits, by key), hence independent dithers, so one key's p-values over
many samples are independent and uniform too. The summary has to survive the embedding and small noise:

* the embedder rounds the elements of a chunk whose mean lies near a cell edge *away* from
  that edge (the lattice point on the far side, a change below ``Delta`` instead of
  ``Delta / 2``), and restores any chunk whose cell would still change: the embedded sample's
  summary equals the original's, always (checked);
* the detector also tries the summaries with up to :data:`MAX_FLIPS` of the chunks nearest an
  edge (closer than ``Delta``) moved to the neighbouring cell, and combines the ``K`` tries
  exactly: the tries use distinct summaries, so their counts are independent under the null
  and ``1 - (1 - p_min)^K`` (Sidak) is a valid p-value.

A file's p-value pools the counts of the untouched summaries of samples whose summaries are
distinct (the first sample of each), so a file of copies of one image counts that image once.

What it survives (docs/watermark-image.md has the numbers): additive noise of up to about
``Delta / 8`` and rounding to a grid finer than ``Delta / 2`` (8-bit storage needs
:data:`STEP_8BIT`); it does not survive blur, resizing, cropping, JPEG, brightness or contrast
changes, which move values by more than ``Delta / 4``: those need a transform-domain watermark.

Example:
    >>> from trustgen.watermark.keys import WatermarkKey
    >>> key = WatermarkKey.from_seed(0)
    >>> x = np.random.default_rng(0).uniform(0, 16, size=(4, 1, 8, 8))
    >>> marked = embed_dither(x, key, low=0, high=16)
    >>> bool(np.abs(marked - x).max() < STEP * 16)
    True
    >>> d = detect_dither(marked, key, low=0, high=16)
    >>> d.detected.tolist(), bool(detect_dither(x, key, low=0, high=16).detected.any())
    ([True, True, True, True], False)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from trustgen.data.encoders import ImageData, real_array
from trustgen.data.schema import ImageSchema
from trustgen.errors import ConfigError, DataError
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.stats import Detection, binomial_p_value, check_fpr

#: Default lattice step as a fraction of the value range. A marked value moves by at most
#: Delta/2 = 0.1% of the range (below Delta near the range's ends), PSNR about 60 dB, and a
#: classifier cannot tell marked from unmarked smooth content (random-forest ROC AUC 0.516,
#: benchmarks/watermark_image.py). It survives Gaussian noise up to about Delta/8 and float
#: storage (.npz), but not 8-bit storage (its rounding error, 1/510 of the range, is Delta).
STEP = 2e-3
#: A step that survives 8-bit storage: 4 levels of an 8-bit image, so 8-bit rounding moves a
#: value by at most Delta/8. PSNR about 42-47 dB (invisible), but the mark is then larger than
#: the spread of smooth content in places, and a classifier can tell (AUC 0.597): a choice.
STEP_8BIT = 4 / 255
#: Chunks of a sample whose mean cells form its summary.
CHUNKS = 16
#: Cell edges per chunk mean (LEVELS + 1 cells over the range).
LEVELS = 8
#: Chunks near a cell edge that the detector also tries in their neighbouring cell (2^3 = 8 tries at most).
MAX_FLIPS = 3
#: Chunks whose mean is within this many Delta of a cell edge are tried in both cells when
#: detecting (and are rounded away from the edge when embedding). A quarter of Delta is four
#: standard deviations of a 4-element chunk mean under the largest noise the dither survives.
DETECT_MARGIN = 0.25
WARP = 4.0  # the lattice step in logit coordinates, in units of ``step`` (the logit's slope is 4 mid-range)
#: An element agrees with the key when its lattice residual is within this of 0 (P = 1/2 under the null).
AGREE = 0.25
METHOD = "dither"
_PURPOSE = "dither"
_PURPOSE_EDGES = "dither-cell-edges"


@dataclass(frozen=True)
class DitherScores:
    """Per-sample evidence behind a :class:`~trustgen.watermark.stats.Detection`.

    Attributes:
        summaries: each sample's summary (the index of its dither stream), as computed.
        primary_counts: agreements under that summary (Binomial(trials, 1/2) under the null).
        best_counts: agreements under the best of the summaries tried.
        tries: summaries tried per sample (``2^f``, ``f <= MAX_FLIPS`` chunks near an edge).
        trials: elements counted per sample (those not exactly at the range's ends).
        p_values: per sample, ``1 - (1 - P(Binomial >= best_count))^tries``.
        p_value: the file's p-value: the primary counts of the first sample of each distinct
            summary, pooled.
    """

    summaries: np.ndarray
    primary_counts: np.ndarray
    best_counts: np.ndarray
    tries: np.ndarray
    trials: np.ndarray
    p_values: np.ndarray
    p_value: float


def embed_dither(x: np.ndarray, key: WatermarkKey, *, low: float, high: float, step: float = STEP) -> np.ndarray:
    """Watermark every sample of ``x`` (shape ``[N, ...]``, values in ``[low, high]``) with ``key``.

    Args:
        x: the samples; any real dtype. Not modified.
        key: the watermark key.
        low, high: the value range the samples live in (an image schema's ``low``/``high``).
        step: the lattice step as a fraction of ``high - low`` (default :data:`STEP`).

    Returns:
        The watermarked samples, same shape, float64 (float32 if ``x`` is float32), within
        ``[low, high]``. Each value moves by at most ``step * (high - low) / 2``, or by less
        than ``step * (high - low)`` near the range's ends and in chunks near a summary edge.

    Example:
        >>> key = WatermarkKey.from_seed(1)
        >>> embed_dither(np.full((1, 3), 0.5), key, low=0, high=1).shape
        (1, 3)
    """
    u, dtype = _normalised(x, low, high, step, "embed")
    delta = float(step)
    edges = _edges(key)
    cells, _, away, _ = _cells(_chunk_means(u), edges)
    bounds = _chunk_bounds(u.shape[1])
    dw = WARP * delta
    dither = _dither_matrix(key, _summary_index(cells), u.shape[1]) * dw
    t = (_logit(u) - dither) / dw
    nearest = _expit(dither + np.round(t) * dw)
    # A chunk whose mean would cross a cell edge, or end near one, is rounded away from that
    # edge instead (every element to its lattice point on the far side: a change below Delta),
    # so the summary survives the embedding and, with a margin, small noise.
    near_cells, near_dist, _, _ = _cells(_chunk_means(nearest), edges)
    redo = (near_cells != cells) | (near_dist < DETECT_MARGIN * delta)
    # (1e-9: an element already on the lattice stays there despite rounding error: idempotent)
    directed = _expit(dither + np.where(_per_element(away, bounds) > 0, np.ceil(t - 1e-9), np.floor(t + 1e-9)) * dw)
    v = np.where(_per_element(redo, bounds), directed, nearest)
    original = np.asarray(x).reshape(len(u), -1).astype(dtype)
    out = _to_dtype(float(low) + v * (float(high) - float(low)), dtype, low, high)
    # Values exactly at the range's ends stay (and are not counted): a clipping model makes many,
    # and moving them off the end is what a classifier would see (AUC 1.0 on such samples).
    out = np.where(_at_ends(u), original, out)
    # A chunk whose cell still moved (values clipped at the range's ends can pull against the
    # rounding) keeps its original values: that chunk is unmarked, the summary is not lost.
    moved = _cells(_chunk_means(_normalised(out, low, high, step, "embed")[0]), edges)[0] != cells
    out = np.where(_per_element(moved, bounds), original, out)
    after = _cells(_chunk_means(_normalised(out, low, high, step, "embed")[0]), edges)[0]
    if not np.array_equal(after, cells):  # cannot happen: restored chunks hold their original values
        raise AssertionError("embed_dither changed a sample's summary")
    return out.reshape(np.shape(x))


def dither_scores(x: np.ndarray, key: WatermarkKey, *, low: float, high: float, step: float = STEP) -> DitherScores:
    """The per-sample counts and p-values of the dither test (what :func:`detect_dither` decides on)."""
    u, _ = _normalised(x, low, high, step, "detect")
    delta = float(step)
    n_samples, n = u.shape
    cells, dist, _, neighbour = _cells(_chunk_means(u), _edges(key))
    interior = ~_at_ends(u)
    trials = interior.sum(1)
    summaries = _summary_index(cells)
    stream: dict[int, np.ndarray] = {}
    primary = np.empty(n_samples, dtype=np.int64)
    best = np.empty(n_samples, dtype=np.int64)
    tries = np.empty(n_samples, dtype=np.int64)
    for s in range(n_samples):
        counts = [_agreements(u[s], _stream(key, stream, int(summaries[s]), n), delta, interior[s])]
        order = np.argsort(dist[s], kind="stable")[:MAX_FLIPS]
        fragile = [int(g) for g in order if dist[s, g] < DETECT_MARGIN * delta]
        for flips in itertools.chain.from_iterable(itertools.combinations(fragile, r)
                                                   for r in range(1, len(fragile) + 1)):
            alt = cells[s].copy()
            alt[list(flips)] = neighbour[s, list(flips)]
            counts.append(_agreements(u[s], _stream(key, stream, int(_summary_index(alt[None])[0]), n), delta,
                                      interior[s]))
        primary[s], best[s], tries[s] = counts[0], max(counts), len(counts)
    p_best = binomial_p_value(best, trials, 0.5)
    # Sidak: the tries are independent under the null (distinct summaries, distinct dither
    # streams), so P(min p <= t) = 1 - (1 - t)^K exactly where t is attainable.
    p_values = np.where(tries == 1, p_best, -np.expm1(tries * np.log1p(-np.minimum(p_best, 1.0 - 1e-16))))
    p_values = np.clip(p_values, 0.0, 1.0)
    _, first = np.unique(summaries, return_index=True)
    pooled = float(binomial_p_value(primary[first].sum(), trials[first].sum(), 0.5)) if n_samples else 1.0
    return DitherScores(summaries, primary, best, tries, trials, p_values, pooled)


def detect_dither(x: np.ndarray, key: WatermarkKey, *, low: float, high: float, step: float = STEP,
                  fpr: float = 1e-6) -> Detection:
    """Test every sample of ``x`` for the dither watermark of ``key``.

    Args:
        x: the samples, shape ``[N, ...]``, values in ``[low, high]`` (as embedded).
        key: the key to test for.
        low, high, step: as given to :func:`embed_dither`.
        fpr: the false-positive rate the decisions are taken at.

    Returns:
        A Detection (method ``"dither"``): per sample, the agreements of the best summary tried
        (``counts``, of ``trials`` elements) and its p-value under "not watermarked with this
        key" (exact over the key's randomness; see the module docstring for the correction
        when several summaries are tried), and the pooled p-value of the file.

    Example:
        >>> key = WatermarkKey.from_seed(2)
        >>> d = detect_dither(np.full((2, 64), 0.5), key, low=0, high=1)
        >>> d.method, d.trials.tolist(), d.p0
        ('dither', [64, 64], 0.5)
    """
    fpr = check_fpr(fpr)
    sc = dither_scores(x, key, low=low, high=high, step=step)
    return Detection(METHOD, key.key_id, sc.best_counts, sc.trials, 0.5, sc.p_values, sc.p_value, fpr)


def embed_images(images: ImageData, schema: ImageSchema, key: WatermarkKey, *, step: float = STEP) -> ImageData:
    """:func:`embed_dither` on images of ``schema`` (its value range); labels are kept.

    Example:
        >>> s = ImageSchema(1, 8, 8, low=0, high=16)
        >>> embed_images(ImageData(np.zeros((2, 1, 8, 8))), s, WatermarkKey.from_seed(3)).x.shape
        (2, 1, 8, 8)
    """
    x = _image_array(images, schema)
    return ImageData(embed_dither(x, key, low=schema.low, high=schema.high, step=step), images.y)


def detect_images(images: ImageData, schema: ImageSchema, key: WatermarkKey, *, step: float = STEP,
                  fpr: float = 1e-6) -> Detection:
    """:func:`detect_dither` on images of ``schema`` (its value range).

    Example:
        >>> s = ImageSchema(1, 8, 8, low=0, high=16)
        >>> key = WatermarkKey.from_seed(4)
        >>> marked = embed_images(ImageData(np.full((3, 1, 8, 8), 5.0)), s, key)
        >>> bool(detect_images(marked, s, key).detected.all())
        True
    """
    return detect_dither(_image_array(images, schema), key, low=schema.low, high=schema.high, step=step, fpr=fpr)


# ---------------------------------------------------------------------------------------------
# The pieces: validation, summaries, dither streams.


def _image_array(images: ImageData, schema: ImageSchema) -> np.ndarray:
    if not isinstance(images, ImageData):
        raise DataError(f"images must be ImageData(x, y), got {type(images).__name__}")
    x = real_array(images.x, "images")
    if x.ndim != 4 or x.shape[1:] != schema.shape:
        raise DataError(f"images have shape {x.shape[1:]} but the schema declares (C, H, W) = {schema.shape}")
    return x


def _normalised(x: np.ndarray, low: float, high: float, step: float, verb: str) -> tuple[np.ndarray, np.dtype]:
    """``x`` as ``[N, n]`` float64 in ``[0, 1]``, and the dtype the result is given in; every
    input problem as a DataError / ConfigError before any work."""
    for name, v in (("low", low), ("high", high), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise ConfigError(f"{name} must be a finite number, got {v!r}")
    low, high = float(low), float(high)
    if not low < high or not math.isfinite(high - low):
        raise ConfigError(f"the value range must have low < high, got [{low}, {high}]")
    if not 0 < step <= 0.25:
        raise ConfigError(f"the dither step is a fraction of the value range in (0, 0.25], got {step!r} "
                          f"(the default {STEP} is invisible; {STEP_8BIT:.4f} survives 8-bit storage)")
    a = real_array(x, "samples")
    if a.ndim < 2 or a.shape[0] == 0 or a[0].size == 0:
        raise DataError(f"samples must be an array of shape [N, ...] with N >= 1 and at least one value each, "
                        f"got shape {a.shape}{' (add the sample axis: x[None])' if a.ndim == 1 else ''}")
    flat = a.reshape(len(a), -1).astype(np.float64)
    if not np.all(np.isfinite(flat)):
        raise DataError(f"cannot {verb} a watermark: the samples contain NaN or inf values")
    tol = 1e-6 * (high - low)  # float32 rounding of the range's ends
    if flat.min() < low - tol or flat.max() > high + tol:
        raise DataError(f"sample values lie in [{flat.min()}, {flat.max()}], outside [{low}, {high}]: give the "
                        "range the samples were made in (the schema's low/high), or clip them with np.clip")
    u = np.clip((flat - low) / (high - low), 0.0, 1.0)
    dtype = np.dtype(np.float32) if a.dtype == np.float32 else np.dtype(np.float64)
    return u, dtype


def _to_dtype(v: np.ndarray, dtype: np.dtype, low: float, high: float) -> np.ndarray:
    """``v`` in ``dtype``, clipped to the range in that dtype (a float32 ``high`` may round up)."""
    out = np.clip(v, low, high).astype(dtype)
    hi, lo = dtype.type(high), dtype.type(low)
    if float(hi) > high:
        hi = np.nextafter(hi, lo)
    if float(lo) < low:
        lo = np.nextafter(lo, hi)
    return np.clip(out, lo, hi)


def _chunk_bounds(n: int) -> np.ndarray:
    """Start of each of ``min(CHUNKS, n)`` contiguous chunks of ``n`` elements (np.array_split's)."""
    g = min(CHUNKS, n)
    sizes = np.full(g, n // g)
    sizes[: n % g] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _chunk_means(u: np.ndarray) -> np.ndarray:
    b = _chunk_bounds(u.shape[1])
    return np.add.reduceat(u, b[:-1], axis=1) / np.diff(b)


def _per_element(per_chunk: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.repeat(per_chunk, np.diff(bounds), axis=1)


def _edges(key: WatermarkKey) -> np.ndarray:
    """The LEVELS cell edges, ``(k + v) / LEVELS`` with a keyed ``v`` in [0.3, 0.7]: keyed, so
    that no grid the content lives on (integers, 8-bit levels) lines up with the edges for every
    key, and away from the range's ends, where flat background chunks (all 0, all 1) sit."""
    v = 0.3 + 0.4 * float(key.uniform(1, _PURPOSE_EDGES, 0)[0])
    return (np.arange(LEVELS) + v) / LEVELS


def _cells(means: np.ndarray, edges: np.ndarray):
    """Per chunk mean: its cell (the edges at or below it, 0..LEVELS), its distance to the
    nearest edge, the direction away from that edge (+1 up, -1 down), and the cell across it."""
    cells = np.searchsorted(edges, means, side="right")
    nearest = np.clip(np.round(means * LEVELS - (edges[0] * LEVELS)), 0, LEVELS - 1).astype(np.int64)
    edge = edges[nearest]
    dist = np.abs(means - edge)
    above = means >= edge
    away = np.where(above, 1, -1)
    neighbour = np.where(above, cells - 1, cells + 1)
    return cells, dist, away, neighbour


def _logit(u: np.ndarray) -> np.ndarray:
    """The lattice lives in logit coordinates: near the range's ends, where a sigmoid or tanh
    output piles up, a step there is a tiny relative change (a uniform step would lift every
    near-black pixel off its spike, which a classifier sees at once); mid-range it is
    ``WARP / 4 = 1`` step of the range. The ends themselves map to -inf / +inf: never marked."""
    with np.errstate(divide="ignore"):
        return np.log(u) - np.log1p(-u)


def _expit(w: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(w)


def _summary_index(cells: np.ndarray) -> np.ndarray:
    """One integer per sample naming its cells (base LEVELS + 1; 9^16 < 2^63)."""
    weights = (LEVELS + 1) ** np.arange(cells.shape[1], dtype=np.int64)
    return cells.astype(np.int64) @ weights


def _stream(key: WatermarkKey, cache: dict, summary: int, n: int) -> np.ndarray:
    if summary not in cache:
        cache[summary] = key.uniform(n, _PURPOSE, summary)
    return cache[summary]


def _dither_matrix(key: WatermarkKey, summaries: np.ndarray, n: int) -> np.ndarray:
    """Each sample's dither, in units of Delta, from the stream its summary names."""
    cache: dict[int, np.ndarray] = {}
    return np.stack([_stream(key, cache, int(s), n) for s in summaries])


def _agreements(u: np.ndarray, dither: np.ndarray, delta: float, counted: np.ndarray) -> int:
    with np.errstate(invalid="ignore"):  # the ends (+-inf) are not counted
        r = np.mod(_logit(u) / (WARP * delta) - dither, 1.0)
    return int(np.count_nonzero(((r < AGREE) | (r >= 1.0 - AGREE)) & counted))


def _at_ends(u: np.ndarray) -> np.ndarray:
    """Elements exactly at the range's ends (0 or 1 once normalised): never marked, never counted."""
    return (u <= 0.0) | (u >= 1.0)
