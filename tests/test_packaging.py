"""Every module imports on this Python, and every third-party module it imports is declared.

A module that only arrives as a dependency's dependency works until that dependency changes:
mitmproxy 11 brought ``zstandard`` and mitmproxy 12.3 does not, so ``pip install`` on Python
3.12 gave a program that could not start. The check compares what the source imports with
the requirements of the installed distribution (markers evaluated for this Python).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as metadata
import importlib.util
import pkgutil
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import inspector

ROOT = Path(__file__).resolve().parent.parent
DIST = "xero-inspector"
# Modules that belong to an extra may import what that extra brings.
EXTRA_MODULES = {"inspector/store/datasette.py": "datasette"}
LOCAL = {"inspector", "samples", "tests", "addons"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extra: str = "") -> set[str]:
    """Distributions the installed xero-inspector requires on this Python (with ``extra``)."""
    names = set()
    for text in metadata.requires(DIST) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            names.add(normalise(req.name))
    return names


def _taken(node: ast.If) -> bool | None:
    """The value of an ``if sys.version_info ...`` test on this Python; None for any other test."""
    test = node.test
    if not (isinstance(test, ast.Compare) and ast.unparse(test.left).startswith("sys.version_info")):
        return None
    return bool(eval(compile(ast.Expression(node.test), "<test>", "eval"), {"sys": sys}))  # our own source


def _optional(node: ast.Try) -> bool:
    """``try: import x / except ImportError:``: x is optional by design (its fallback is checked)."""
    names = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
    return bool(names & {"ImportError", "ModuleNotFoundError", "(ImportError, ModuleNotFoundError)"})


def imports(tree: ast.AST) -> Iterator[str]:
    """Top-level names of absolute imports, following only the branch of a version test this
    Python takes, and skipping imports tried with a fallback."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and (taken := _taken(node)) is not None:
            for child in node.body if taken else node.orelse:
                yield from imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Try) and _optional(node):
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                yield from imports(child)
            continue
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]
        else:
            yield from imports(node)


def undeclared(folders: list[str], allowed: set[str]) -> list[str]:
    providers = metadata.packages_distributions()
    problems = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            ok = allowed | (declared(EXTRA_MODULES[rel]) if rel in EXTRA_MODULES else set())
            for top in sorted(set(imports(ast.parse(path.read_text(), rel)))):
                if top in sys.stdlib_module_names or top in LOCAL:
                    continue
                dists = {normalise(d) for d in providers.get(top, [])}
                if not dists & ok:
                    problems.append(f"{rel}: {top} (from {', '.join(sorted(dists)) or 'nothing installed'})")
    return problems


def test_the_package_declares_every_module_it_imports() -> None:
    assert undeclared(["inspector", "samples", "addons"], declared()) == []


def test_the_tests_declare_every_module_they_import() -> None:
    assert undeclared(["tests"], declared() | declared("test")) == []


def test_the_check_sees_an_undeclared_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself can fail: a module importing a dependency's dependency is named."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "import sys\nimport click\nimport pyparsing\n"
        "if sys.version_info >= (3, 99):\n    import not_on_this_python\n"
        "try:\n    import nor_this\nexcept ImportError:\n    import lxml\n"
    )
    problems = undeclared(["pkg"], declared())
    assert len(problems) == 1 and problems[0].startswith("pkg/m.py: pyparsing"), problems


def package_modules() -> list[str]:
    names = [inspector.__name__]
    names += [m.name for m in pkgutil.walk_packages(inspector.__path__, prefix="inspector.")]
    return sorted(names)


@pytest.mark.parametrize("name", package_modules())
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_the_mitmdump_script_imports() -> None:
    spec = importlib.util.spec_from_file_location("xero_inspector_script", ROOT / "addons" / "xero_inspector.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.addons
