"""Every import inside ``bench/`` and ``methods/`` resolves from the checkout by path, without
installing: an editor's go-to-definition, a type checker or an import-graph drawing, reading the
files as they lie, follows each one. The package's own modules are imported relatively (the
checkout keeps ``bench/`` and ``methods/`` side by side, as the installed ``uqbench`` does);
everything else is the standard library, an installed dependency or a declared extra."""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FILES = sorted(p for top in ("bench", "methods") for p in (REPO / top).rglob("*.py"))
# optional extras (the Ray launcher's ``ray``) may be absent here: declared is enough
EXTRAS = {re.split(r"[<>=\[ ]", d)[0] for deps in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
          ["optional-dependencies"].values() for d in deps}


def module_file(folder: Path, parts: list[str]) -> Path | None:
    """The file of module ``parts`` below ``folder`` (a module or a package), or None."""
    base = folder.joinpath(*parts)
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if parts and p.is_file()),
                folder / "__init__.py" if not parts and (folder / "__init__.py").is_file() else None)


def bound(path: Path) -> set[str]:
    """The names a module binds at its top level (definitions, assignments, imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def unresolved(path: Path) -> list[str]:
    """The imports of ``path`` that a reader of the checkout cannot follow, with the reason."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            folder = path.parent
            for _ in range(node.level - 1):
                folder = folder.parent
            parts = node.module.split(".") if node.module else []
            target = module_file(folder, parts)  # ``from .. import x`` needs only the folder
            if target is None and parts:
                out.append(f"line {node.lineno}: no module {'.' * node.level}{node.module}")
                continue
            for alias in node.names:
                if module_file(folder, [*parts, alias.name]) is None and (target is None
                                                                          or alias.name not in bound(target)):
                    out.append(f"line {node.lineno}: {'.' * node.level}{node.module or ''} has no {alias.name}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            tops = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for top in (t.split(".")[0] for t in tops):
                if top in ("uqbench", "bench", "methods"):
                    out.append(f"line {node.lineno}: {top}... is the package itself: import it relatively")
                elif top not in EXTRAS and importlib.util.find_spec(top) is None:
                    out.append(f"line {node.lineno}: {top} is neither the standard library nor installed")
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_import_resolves_by_path(path):
    assert unresolved(path) == []
