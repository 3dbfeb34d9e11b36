"""The house rule: each package imports only from the layers below it, and no module imports
itself round a cycle. Read from the source with ast, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first. A module may import from its own package and from any layer before it.
LAYERS = ["utils", "ingest", "store", "samples", "proxy", "commands", "agent", "tui", "(top)"]


def _layer(module: str) -> str:
    if module == "inspector":  # the package itself holds only __version__: anyone may read it
        return LAYERS[0]
    parts = module.split(".")
    return parts[1] if parts[1] in LAYERS else "(top)"


def _modules() -> dict[str, Path]:
    found = {}
    for base, prefix in ((ROOT / "inspector", "inspector"), (ROOT / "samples", "inspector.samples")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("").parts
            name = ".".join((prefix, *rel))
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


UNRESOLVED: list[str] = []


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (``from a import b`` counts b when b is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("inspector")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("inspector"):
                continue
            if base not in MODULES:
                UNRESOLVED.append(f"{name}: from {base}")
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_project_import_names_a_module() -> None:
    assert UNRESOLVED == []


def test_the_packages_are_the_layers() -> None:
    assert {_layer(m) for m in MODULES} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_below(module: str) -> None:
    rank = LAYERS.index(_layer(module))
    upward = sorted(m for m in GRAPH[module] if LAYERS.index(_layer(m)) > rank)
    assert upward == [], f"{module} ({_layer(module)}) imports from a higher layer: {upward}"


def test_no_module_imports_itself_round_a_cycle() -> None:
    """Tarjan's strongly connected components over the import graph: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                cycles.append(sorted([v, *component]))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []
