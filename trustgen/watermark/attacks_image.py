"""Edits a watermarked image may meet, as pure functions with a stated strength.

Every attack takes images ``x`` of shape ``[N, C, H, W]`` with values in ``[low, high]`` and
returns a new float64 array of the same shape, within the same range (an edit that overshoots
is clipped, as saving an image would). Nothing is modified in place. The only random attack,
:func:`gaussian_noise`, takes an explicit seed: an attack's randomness is public, so numpy's
generator is right here (keyed patterns never are).

No image codec is a dependency: :func:`jpeg_like` is JPEG's lossy core (8x8 block DCT,
quality-scaled quantisation tables, 8-bit output), written with scipy.

:data:`IMAGE_ATTACKS` names each attack with a default strength, for benchmarks and tests:

Example:
    >>> x = np.full((2, 1, 8, 8), 0.5)
    >>> y = IMAGE_ATTACKS["noise"](x, low=0.0, high=1.0, seed=0)
    >>> y.shape, bool(np.all((0 <= y) & (y <= 1)))
    ((2, 1, 8, 8), True)
    >>> blur(x, 1.0).tolist() == x.tolist()   # a flat image is unchanged by a blur
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trustgen.data.encoders import real_array
from trustgen.errors import ConfigError, DataError

#: JPEG's luminance quantisation table (ITU-T T.81, Annex K), used for every channel.
JPEG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=np.float64)


def gaussian_noise(x: np.ndarray, sigma_fraction: float, *, low: float, high: float, seed: int) -> np.ndarray:
    """Add N(0, sigma^2) to every value, ``sigma = sigma_fraction * (high - low)``, then clip.

    Example:
        >>> float(gaussian_noise(np.zeros((1, 1, 2, 2)), 0.0, low=0, high=1, seed=0).sum())
        0.0
    """
    x, low, high = _images(x, low, high)
    _at_least(sigma_fraction, 0.0, "sigma_fraction")
    noise = np.random.default_rng(seed).normal(0.0, sigma_fraction * (high - low), size=x.shape)
    return np.clip(x + noise, low, high)


def blur(x: np.ndarray, sigma_pixels: float) -> np.ndarray:
    """Gaussian blur over height and width (not across channels), ``sigma_pixels`` in pixels;
    edges reflect, so a flat image stays flat and the range is kept.

    Example:
        >>> blur(np.eye(3)[None, None], 0.0).tolist() == np.eye(3)[None, None].tolist()
        True
    """
    from scipy.ndimage import gaussian_filter

    x = _images(x)[0]
    _at_least(sigma_pixels, 0.0, "sigma_pixels")
    if sigma_pixels == 0:
        return x.copy()
    return gaussian_filter(x, sigma=(0, 0, sigma_pixels, sigma_pixels), mode="reflect")


def resize(x: np.ndarray, scale: float) -> np.ndarray:
    """Scale height and width by ``scale`` (bilinear, at least 1 pixel), then back to the
    original size: what a thumbnail-and-enlarge does.

    Example:
        >>> resize(np.ones((1, 1, 8, 8)), 0.5).shape
        (1, 1, 8, 8)
    """
    x = _images(x)[0]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ConfigError(f"the resize scale must be in (0, 1], got {scale!r}")
    h, w = x.shape[2:]
    small = _bilinear(x, max(1, round(h * scale)), max(1, round(w * scale)))
    return _bilinear(small, h, w)


def crop_resize(x: np.ndarray, keep: float) -> np.ndarray:
    """Keep the central ``keep`` fraction of height and width (at least 1 pixel), and stretch
    it back to the original size (bilinear): a crop as a re-framing editor does it.

    Example:
        >>> crop_resize(np.ones((1, 1, 8, 8)), 0.75).shape
        (1, 1, 8, 8)
    """
    x = _images(x)[0]
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise ConfigError(f"the crop's kept fraction must be in (0, 1], got {keep!r}")
    h, w = x.shape[2:]
    kh, kw = max(1, round(h * keep)), max(1, round(w * keep))
    top, left = (h - kh) // 2, (w - kw) // 2
    return _bilinear(x[:, :, top:top + kh, left:left + kw], h, w)


def jpeg_like(x: np.ndarray, quality: int, *, low: float, high: float) -> np.ndarray:
    """JPEG's lossy core: values to 0..255, 8x8 block DCT of each channel, the luminance table
    scaled for ``quality`` (1..100, the IJG formula) rounding each coefficient, inverse DCT,
    and 8-bit output. Images are padded to whole blocks by repeating edges (as encoders do),
    and cropped back. No chroma subsampling: every channel is treated as luminance.

    Example:
        >>> y = jpeg_like(np.full((1, 1, 8, 8), 0.5), 90, low=0, high=1)
        >>> bool(np.abs(y - 0.5).max() <= 1 / 255)
        True
    """
    from scipy.fft import dctn, idctn

    x, low, high = _images(x, low, high)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality is an integer in 1..100, got {quality!r}")
    q = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = np.clip(np.floor((JPEG_LUMA * q + 50) / 100), 1, 255)
    n, c, h, w = x.shape
    ph, pw = -h % 8, -w % 8
    v = np.pad((x - low) / (high - low) * 255.0 - 128.0, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
    blocks = v.reshape(n, c, (h + ph) // 8, 8, (w + pw) // 8, 8).transpose(0, 1, 2, 4, 3, 5)
    coef = dctn(blocks, type=2, axes=(-2, -1), norm="ortho")
    blocks = idctn(np.round(coef / table) * table, type=2, axes=(-2, -1), norm="ortho")
    v = blocks.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h + ph, w + pw)[:, :, :h, :w]
    return low + np.clip(np.round(v + 128.0), 0, 255) / 255.0 * (high - low)


def brightness_contrast(x: np.ndarray, brightness: float, contrast: float, *, low: float, high: float) -> np.ndarray:
    """``mid + contrast * (x - mid) + brightness * (high - low)``, clipped (``mid`` the range's centre):
    ``brightness`` is a shift as a fraction of the range, ``contrast`` a gain (1 = unchanged).

    Example:
        >>> brightness_contrast(np.full((1, 1, 1, 1), 0.5), 0.1, 1.0, low=0, high=1).item()
        0.6
    """
    x, low, high = _images(x, low, high)
    _at_least(contrast, 0.0, "contrast")
    if isinstance(brightness, bool) or not isinstance(brightness, (int, float)) or not math.isfinite(brightness):
        raise ConfigError(f"brightness is a finite fraction of the value range, got {brightness!r}")
    mid = (low + high) / 2
    return np.clip(mid + contrast * (x - mid) + brightness * (high - low), low, high)


def quantize(x: np.ndarray, levels: int, *, low: float, high: float) -> np.ndarray:
    """Round every value to the nearest of ``levels`` evenly spaced values from ``low`` to
    ``high`` (256: 8-bit storage; 17 on ``[0, 16]``: whole numbers, as digits are stored).

    Example:
        >>> quantize(np.array([[[[0.3, 0.8]]]]), 2, low=0, high=1).tolist()
        [[[[0.0, 1.0]]]]
    """
    x, low, high = _images(x, low, high)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ConfigError(f"quantisation needs an integer number of levels >= 2, got {levels!r}")
    k = levels - 1
    return low + np.round((x - low) / (high - low) * k) / k * (high - low)


@dataclass(frozen=True)
class ImageAttack:
    """An attack with its default strength: call it as ``attack(x, low=..., high=..., seed=...)``.

    Attributes:
        name: the registry name.
        strength: the default strength, in words (for tables).
        apply: ``(x, low, high, seed) -> attacked x``.
    """

    name: str
    strength: str
    apply: Callable[[np.ndarray, float, float, int], np.ndarray] = field(repr=False)

    def __call__(self, x: np.ndarray, *, low: float, high: float, seed: int = 0) -> np.ndarray:
        return self.apply(x, low, high, seed)


def _registry() -> dict[str, ImageAttack]:
    entries = [
        ImageAttack("noise", "Gaussian noise, sigma = 0.2% of the range (0.5 of an 8-bit level)",
                    lambda x, lo, hi, s: gaussian_noise(x, 0.002, low=lo, high=hi, seed=s)),
        ImageAttack("noise_strong", "Gaussian noise, sigma = 1% of the range (2.5 8-bit levels)",
                    lambda x, lo, hi, s: gaussian_noise(x, 0.01, low=lo, high=hi, seed=s)),
        ImageAttack("quantize_8bit", "rounded to 256 levels (8-bit storage)",
                    lambda x, lo, hi, s: quantize(x, 256, low=lo, high=hi)),
        ImageAttack("blur", "Gaussian blur, sigma = 0.5 pixel",
                    lambda x, lo, hi, s: blur(x, 0.5)),
        ImageAttack("resize", "down to 75% of the size and back (bilinear)",
                    lambda x, lo, hi, s: resize(x, 0.75)),
        ImageAttack("crop", "central 87.5% kept and stretched back (bilinear)",
                    lambda x, lo, hi, s: crop_resize(x, 0.875)),
        ImageAttack("jpeg", "JPEG-like block DCT at quality 90, 8-bit output",
                    lambda x, lo, hi, s: jpeg_like(x, 90, low=lo, high=hi)),
        ImageAttack("brightness_contrast", "brightness +2% of the range, contrast x1.05",
                    lambda x, lo, hi, s: brightness_contrast(x, 0.02, 1.05, low=lo, high=hi)),
    ]
    return {a.name: a for a in entries}


#: Attack name -> :class:`ImageAttack` with its default strength.
IMAGE_ATTACKS: dict[str, ImageAttack] = _registry()


def image_attack(name: str) -> ImageAttack:
    """The registered attack ``name``; a KeyError listing the known names otherwise."""
    try:
        return IMAGE_ATTACKS[name]
    except KeyError:
        raise KeyError(f"unknown image attack {name!r}; known: {', '.join(IMAGE_ATTACKS)}") from None


# ---------------------------------------------------------------------------------------------


def _images(x: np.ndarray, low: float | None = None, high: float | None = None):
    """``x`` as a float64 ``[N, C, H, W]`` copy (and the range as floats), or a clear error."""
    a = real_array(x, "images")
    if a.ndim != 4 or 0 in a.shape:
        raise DataError(f"image attacks take images of shape [N, C, H, W] (none empty), got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise DataError("the images contain NaN or inf values")
    if low is None:
        return a, None, None
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise ConfigError(f"{name} must be a finite number, got {v!r}")
    low, high = float(low), float(high)
    if not low < high:
        raise ConfigError(f"the value range must have low < high, got [{low}, {high}]")
    return a, low, high


def _at_least(v: float, floor: float, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < floor:
        raise ConfigError(f"{name} must be a finite number >= {floor}, got {v!r}")


def _bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resampling of the last two axes to ``out_h x out_w``, pixel centres aligned
    (``align_corners=False``), edges clamped: a convex combination, so the range is kept."""
    def weights(n_in: int, n_out: int):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, fy = weights(x.shape[2], out_h)
    x0, x1, fx = weights(x.shape[3], out_w)
    rows = x[:, :, y0, :] * (1 - fy)[:, None] + x[:, :, y1, :] * fy[:, None]
    return rows[:, :, :, x0] * (1 - fx) + rows[:, :, :, x1] * fx
