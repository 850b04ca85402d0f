"""Shared fixtures: ``family`` (each test runs for the VAE, the GAN and the diffusion model) and
``png_images`` (counts the images of each saved figure)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["vae", "gan", "diffusion"])
def family(request) -> str:
    return request.param


@pytest.fixture
def png_images(monkeypatch) -> dict:
    """Counts the images in each figure trustgen saves: ``png_images["n"]`` after a write."""
    import trustgen.plots as plots

    shown: dict = {}
    real_save = plots.save_figure

    def count(fig, path):
        shown["n"] = sum(bool(ax.images) for ax in fig.axes)
        real_save(fig, path)

    monkeypatch.setattr(plots, "save_figure", count)
    return shown
