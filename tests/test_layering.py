"""The import direction stays one-way: models know nothing of privacy, training or sampling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "trustgen"
FORBIDDEN = {
    "models": ("trustgen.privacy", "trustgen.training", "trustgen.sampling", "trustgen.run", "trustgen.evaluation", "trustgen.cli"),
    "data": ("trustgen.models", "trustgen.privacy", "trustgen.training", "trustgen.sampling", "trustgen.run"),
    "evaluation": ("trustgen.training", "trustgen.cli"),
}


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("package", FORBIDDEN)
def test_package_does_not_import_later_stages(package):
    bad = []
    for f in (ROOT / package).rglob("*.py"):
        for mod in imports(f):
            if mod.startswith(FORBIDDEN[package]):
                bad.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert not bad, bad
