"""Shared fixture: ``family`` (each test runs for the VAE, the GAN and the diffusion model)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["vae", "gan", "diffusion"])
def family(request) -> str:
    return request.param
