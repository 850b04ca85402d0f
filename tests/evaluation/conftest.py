"""Shared fixtures for the evaluation tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits

from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.evaluation.report_inputs import EvaluationInputs

# A small mixed table: two related numbers, a two-group categorical "g", and a label set by x.
SMALL_SCHEMA = TabularSchema([NumericColumn("x", 0, 10), NumericColumn("z", -5, 25),
                              CategoricalColumn("g", ("u", "v")), CategoricalColumn("label", ("a", "b"))],
                             label="label")


def small_table(n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of :data:`SMALL_SCHEMA`, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    return pd.DataFrame({"x": x, "z": x + rng.normal(0, 1, n) + 5, "g": rng.choice(["u", "v"], n),
                         "label": np.where(x > 5, "b", "a")})


@pytest.fixture(scope="module")
def tables() -> EvaluationInputs:
    """Report inputs on :func:`small_table`: 120 samples, 100 training rows, a 60-row holdout."""
    return EvaluationInputs.from_data(SMALL_SCHEMA, small_table(120, 2), small_table(100, 0), small_table(60, 1),
                                      seed=0)


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
