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
