"""Shared test settings. ``TRUSTGEN_TEST_DEVICE=cuda`` moves model tests to the GPU."""

from __future__ import annotations

import os

import pytest
import torch

DEVICE = os.environ.get("TRUSTGEN_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    raise RuntimeError("TRUSTGEN_TEST_DEVICE=cuda but no CUDA GPU is available")


@pytest.fixture
def device() -> str:
    return DEVICE


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run with TRUSTGEN_TEST_DEVICE=cuda on one)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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
