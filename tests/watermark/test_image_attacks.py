"""Each image attack changes an image as its docstring states, keeps shape and range, and
refuses bad input with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from trustgen.errors import ConfigError, DataError
from trustgen.watermark.attacks_image import (
    IMAGE_ATTACKS, blur, brightness_contrast, crop_resize, gaussian_noise, image_attack, jpeg_like, quantize, resize,
)


@pytest.fixture
def images() -> np.ndarray:
    """Smooth random images in [0, 16] (as digits are), 3 channels, 16 x 12 (not whole JPEG blocks)."""
    from scipy.ndimage import gaussian_filter

    raw = np.random.default_rng(0).uniform(0, 16, size=(5, 3, 16, 12))
    return np.clip(gaussian_filter(raw, sigma=(0, 0, 1.5, 1.5)) * 3 - 16, 0, 16)


@pytest.mark.parametrize("name", sorted(IMAGE_ATTACKS))
def test_every_attack_keeps_shape_range_and_input(name, images):
    before = images.copy()
    attack = image_attack(name)
    out = attack(images, low=0.0, high=16.0, seed=1)
    np.testing.assert_array_equal(images, before)
    assert out.shape == images.shape and out.dtype == np.float64
    assert out.min() >= 0 and out.max() <= 16
    assert not np.array_equal(out, images)  # it does something
    assert attack.name == name and attack.strength


def test_registry_fails_loudly():
    with pytest.raises(KeyError, match="known: noise"):
        image_attack("sharpen")


def test_gaussian_noise_has_the_stated_sigma_and_seed():
    x = np.full((50, 1, 20, 20), 8.0)
    y = gaussian_noise(x, 0.01, low=0, high=16, seed=3)
    assert np.std(y - x) == pytest.approx(0.16, rel=0.03) and abs(np.mean(y - x)) < 0.005
    np.testing.assert_array_equal(y, gaussian_noise(x, 0.01, low=0, high=16, seed=3))
    assert not np.array_equal(y, gaussian_noise(x, 0.01, low=0, high=16, seed=4))
    np.testing.assert_array_equal(gaussian_noise(x, 0.0, low=0, high=16, seed=0), x)
    assert gaussian_noise(np.zeros((1, 1, 4, 4)), 0.5, low=0, high=16, seed=0).min() == 0  # clipped


def test_blur_smooths_within_channels_only():
    x = np.stack([np.zeros((8, 8)), np.full((8, 8), 16.0)])[None]
    np.testing.assert_array_equal(blur(x, 2.0), x)  # flat channels stay flat: nothing leaks across
    noise = np.random.default_rng(1).uniform(0, 16, size=(4, 1, 16, 16))
    assert blur(noise, 1.0).std() < 0.5 * noise.std()
    assert blur(noise, 1.0).mean() == pytest.approx(noise.mean(), rel=0.02)
    np.testing.assert_array_equal(blur(noise, 0.0), noise)


def test_resize_loses_detail_but_keeps_smooth_content(images):
    np.testing.assert_allclose(resize(images, 1.0), images)
    checker = (np.indices((8, 8)).sum(0) % 2 * 16.0)[None, None]
    np.testing.assert_allclose(resize(checker, 0.5), 8.0)  # the finest detail averages away
    assert np.abs(resize(images, 0.75) - images).mean() < 0.1 * images.std()


def test_crop_resize_stretches_the_centre():
    x = np.arange(64, dtype=float).reshape(1, 1, 8, 8) / 4
    np.testing.assert_allclose(crop_resize(x, 1.0), x)
    y = crop_resize(x, 0.5)  # the central 4 x 4 block (rows/cols 2..5) stretched to 8 x 8
    assert y[0, 0, 0, 0] == x[0, 0, 2, 2] and y[0, 0, -1, -1] == x[0, 0, 5, 5]


def test_jpeg_like_loses_more_at_lower_quality(images):
    errors = [np.abs(jpeg_like(images, q, low=0, high=16) - images).mean() for q in (100, 90, 50, 10)]
    assert errors == sorted(errors) and errors[0] < 16 / 255  # quality 100: about the 8-bit rounding
    y = jpeg_like(images, 75, low=0, high=16)
    np.testing.assert_allclose(y * 255 / 16, np.round(y * 255 / 16), atol=1e-9)  # 8-bit output
    flat = np.full((1, 1, 8, 8), 5.0)
    assert np.abs(jpeg_like(flat, 90, low=0, high=16) - 5.0).max() <= 16 / 255  # a flat block: only DC rounding
    assert np.ptp(jpeg_like(flat, 10, low=0, high=16)) == 0  # and stays flat at any quality


def test_brightness_and_contrast_are_the_stated_affine_map():
    x = np.random.default_rng(2).uniform(6, 10, size=(3, 1, 8, 8))
    np.testing.assert_allclose(brightness_contrast(x, 0.0, 1.0, low=0, high=16), x)
    np.testing.assert_allclose(brightness_contrast(x, 0.05, 1.0, low=0, high=16), x + 0.8)
    np.testing.assert_allclose(brightness_contrast(x, 0.0, 1.5, low=0, high=16) - 8, 1.5 * (x - 8))
    assert brightness_contrast(x, 1.0, 1.0, low=0, high=16).max() == 16  # clipped


def test_quantize_rounds_to_the_grid():
    x = np.random.default_rng(3).uniform(0, 16, size=(3, 2, 8, 8))
    whole = quantize(x, 17, low=0, high=16)
    np.testing.assert_allclose(whole, np.round(x))
    eight = quantize(x, 256, low=0, high=16)
    assert np.abs(eight - x).max() <= 16 / 255 / 2 + 1e-12
    np.testing.assert_allclose(quantize(eight, 256, low=0, high=16), eight)


@pytest.mark.parametrize("call, error, match", [
    (lambda: blur(np.zeros((8, 8)), 1.0), DataError, r"\[N, C, H, W\]"),
    (lambda: blur(np.zeros((0, 1, 8, 8)), 1.0), DataError, "none empty"),
    (lambda: blur(np.full((1, 1, 2, 2), np.nan), 1.0), DataError, "NaN"),
    (lambda: blur(np.zeros((1, 1, 2, 2)), -1.0), ConfigError, "sigma_pixels"),
    (lambda: resize(np.zeros((1, 1, 2, 2)), 1.5), ConfigError, "scale"),
    (lambda: crop_resize(np.zeros((1, 1, 2, 2)), 0.0), ConfigError, "kept fraction"),
    (lambda: jpeg_like(np.zeros((1, 1, 2, 2)), 0, low=0, high=1), ConfigError, "quality"),
    (lambda: jpeg_like(np.zeros((1, 1, 2, 2)), 50, low=1, high=0), ConfigError, "low < high"),
    (lambda: quantize(np.zeros((1, 1, 2, 2)), 1, low=0, high=1), ConfigError, "levels"),
    (lambda: gaussian_noise(np.zeros((1, 1, 2, 2)), float("nan"), low=0, high=1, seed=0), ConfigError, "sigma"),
    (lambda: brightness_contrast(np.zeros((1, 1, 2, 2)), 0.0, -1.0, low=0, high=1), ConfigError, "contrast"),
])
def test_bad_arguments_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()
