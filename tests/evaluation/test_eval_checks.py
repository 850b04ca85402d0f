"""Tests of the shared input validation and encoding (evaluation/checks.py) used by every metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trustgen.errors import DataError
from trustgen.evaluation.checks import as_matrix, encode


def test_encode_uses_union_of_categories_and_scales() -> None:
    a = pd.DataFrame({"x": [1.0, 3.0], "c": ["p", "q"]})
    b = pd.DataFrame({"c": ["r", "p"], "x": [5.0, 1.0]})  # reordered columns, unseen category
    ea, eb = encode({"a": a, "b": b})
    assert ea.shape == eb.shape == (2, 4)  # x + one-hot over {p, q, r}
    np.testing.assert_array_equal(ea, [[1, 1, 0, 0], [3, 0, 1, 0]])
    np.testing.assert_array_equal(eb, [[5, 0, 0, 1], [1, 1, 0, 0]])
    sa, sb = encode({"a": a, "b": b}, scale_by="a")
    np.testing.assert_allclose(sa.mean(axis=0), 0.0, atol=1e-12)
    assert sb[0, 0] == pytest.approx(3.0)  # (5 - mean 2) / std 1


def test_inputs_accept_torch_and_object_arrays() -> None:
    t = torch.ones(2, 3, requires_grad=True)
    np.testing.assert_array_equal(as_matrix(t, "t"), np.ones((2, 3)))
    ea, eb = encode({"a": np.array([[1, "u"], [2, "v"]], dtype=object),
                     "b": np.array([[1.5, "v"]], dtype=object)})
    assert ea.shape == (2, 3) and eb.tolist() == [[1.5, 0.0, 1.0]]


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 3)), "at least 1 row"),
    (np.zeros(3), "2-D"),
    (np.array([[1.0, np.inf]]), "NaN/inf"),
    (np.array([["a", "b"]]), "numeric"),
])
def test_as_matrix_rejects_bad_input(bad: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        as_matrix(bad, "x")
