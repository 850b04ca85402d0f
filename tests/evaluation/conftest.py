"""Shared fixtures for the evaluation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="module")
def _single_threaded() -> Iterator[None]:
    """Run BLAS/OpenMP and torch single-threaded for the evaluation tests.

    The test problems are tiny, so threads only add overhead; on a 2-core machine shared with
    another busy process, 2-thread BLAS/torch runs were measured 10-20x slower (spin-waiting).
    Settings are restored after each test module, so tests elsewhere are unaffected.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)
