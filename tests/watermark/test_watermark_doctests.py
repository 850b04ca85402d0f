"""The usage examples in the watermark modules' docstrings run and give the stated results."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["trustgen.watermark.keys", "trustgen.watermark.stats", "trustgen.watermark.dither",
                                  "trustgen.watermark.table", "trustgen.watermark.attacks_image",
                                  "trustgen.watermark.attacks_table"])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0
