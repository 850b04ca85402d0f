"""The usage examples in the privacy modules' docstrings run and give the stated results."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "trustgen.privacy",
        "trustgen.privacy.accounting",
        "trustgen.privacy.accountant",
        "trustgen.privacy.config",
        "trustgen.privacy.dp_sgd",
        "trustgen.privacy.engine",
        "trustgen.privacy.plan",
        "trustgen.privacy.report",
        "trustgen.privacy.audit_bounds",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
