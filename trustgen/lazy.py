"""Lazy package exports: a package names what it exports, and each name is imported on first
use, so that importing the package (or ``trustgen --help``) does not import torch, Opacus or
scikit-learn. A leaf: imports nothing of trustgen.

Example (in a package ``__init__``)::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), {"Sampler": "sampler"})
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, namespace: dict, exports: dict[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: name -> submodule that defines it."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(list(namespace) + list(exports))

    return __getattr__, __dir__, sorted(exports)
