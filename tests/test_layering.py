"""Imports flow one way, along the stages (docs/architecture.md).

Every module of trustgen belongs to a layer; a module may import only from lower layers and
its own package (a layer's packages do not import each other), plus the few leaf modules
listed in LEAVES. This test fails on any backward import, on a module no layer claims, and
on a module importing another module's private (``_name``) helper.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "trustgen"

# Lowest first. Packages in one layer are siblings: neither imports the other.
LAYERS = [
    ("errors", "lazy", "limits"),
    ("json_fields",),  # typed reads of JSON objects: the schema, run.json
    ("io", "runtime"),
    ("plots",),
    ("data", "models"),  # models know the data only through DataSpec, never the encoders
    ("constraints",),  # the constraint language, bound to a schema: no model, no sampler
    ("privacy",),
    ("run",),  # the artefact: what training writes and every later stage reads
    ("training",),
    ("pipeline", "sampling"),
    ("evaluation", "watermark", "uncertainty"),
    ("explain",),  # counterfactuals and attributions: use the model, the sampler and the uncertainty
    ("demo",),
    ("cli",),
    ("__main__",),
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# Leaf modules any layer may import: they import nothing of trustgen but errors and limits.
LEAVES = ("trustgen.sampling.config", "trustgen.sampling.schedulers")

# Lower layers that a package still must not import.
ALSO_FORBIDDEN = {
    "evaluation": ("trustgen.training", "trustgen.pipeline"),
    "sampling": ("trustgen.training", "trustgen.pipeline"),
    "watermark": ("trustgen.training", "trustgen.pipeline"),
}


def unit(module: str) -> str:
    """The layer unit of ``trustgen.x.y`` (``x``)."""
    return module.split(".")[1]


def absolute(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module of ``from X import ...`` (relative imports resolved against ``path``)."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def trustgen_imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, imported names) for every trustgen import in ``path``, including lazy ones,
    relative ones, and ``from trustgen import x`` (read as an import of ``trustgen.x``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = absolute(node, path)
            if mod == "trustgen":
                out += [(f"trustgen.{a.name}", ()) for a in node.names if a.name != "__version__"]
            elif mod.startswith("trustgen."):
                out.append((mod, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names if a.name.startswith("trustgen.")]
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


def test_every_module_belongs_to_a_layer():
    unclaimed = sorted({unit(module_name(p)) for p in FILES} - set(RANK))
    assert not unclaimed, f"modules in no layer (add them to LAYERS): {unclaimed}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path):
    me = module_name(path)
    mine = unit(me)
    bad = []
    for mod, _ in trustgen_imports(path):
        if mod in LEAVES or unit(mod) == mine or unit(mod) not in RANK:
            continue
        if RANK[unit(mod)] >= RANK[mine] or mod.startswith(ALSO_FORBIDDEN.get(mine, ())):
            bad.append(f"{me} imports {mod}")
    assert not bad, bad


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_helper(path):
    me = module_name(path)
    bad = [f"{me} imports {name} from {mod}" for mod, names in trustgen_imports(path)
           for name in names if name.startswith("_") and mod != me]
    bad += [f"{me} imports the private module {mod}" for mod, _ in trustgen_imports(path)
            if any(part.startswith("_") for part in mod.split(".")) and unit(mod) != unit(me)]
    assert not bad, bad


def test_the_import_reader_sees_every_form():
    """A backward import must not hide behind another spelling."""
    f = ROOT / "models" / "vae.py"  # relative imports resolve against this location
    forms = {"from trustgen import pipeline": "trustgen.pipeline", "from ..sampling import sampler": "trustgen.sampling",
             "from .base import x": "trustgen.models.base", "import trustgen.run": "trustgen.run"}
    for code, want in forms.items():
        node = ast.parse(code).body[0]
        got = absolute(node, f) if isinstance(node, ast.ImportFrom) else node.names[0].name
        if got == "trustgen":
            got = f"trustgen.{node.names[0].name}"
        assert got == want, (code, got)


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaves_import_nothing_of_trustgen_but_errors_and_limits(leaf):
    path = ROOT.parent / (leaf.replace(".", "/") + ".py")
    others = [m for m, _ in trustgen_imports(path) if m not in ("trustgen.errors", "trustgen.limits", *LEAVES)]
    assert not others, f"{leaf} is imported by lower layers, so it must stay a leaf: {others}"
