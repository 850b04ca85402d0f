"""Every lazily exported name of ``trustgen.privacy`` resolves to the object of its module."""

from __future__ import annotations

import importlib

import pytest

import trustgen.privacy as privacy


@pytest.mark.parametrize("name", sorted(privacy._EXPORTS))
def test_lazy_export_resolves(name):
    module = importlib.import_module(f"trustgen.privacy.{privacy._EXPORTS[name]}")
    assert getattr(privacy, name) is getattr(module, name)
    assert name in getattr(module, "__all__", [name]), f"{name} is missing from its module's __all__"
