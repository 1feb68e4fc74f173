"""The layers, checked on the syntax tree: who may import whom, and who may name a method.

* ``bench/report/`` imports at module level only (no import hides a cycle inside a function);
* the runner, the tasks and the data loaders import nothing from the report layer (the report
  package and the claims it reads), and ``results.py`` no task code;
* the report reads results only: it imports neither the suite files' loader nor the tuning runner;
* no string in ``bench/`` outside ``claims.py`` names a registered method, a role, or a fact a
  method declares worth showing: the report keys on roles and declarations.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from uqbench import methods
from uqbench.bench import claims

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
REPORT_LAYER = ("uqbench.bench.report", "uqbench.bench.claims")


def package_of(path: Path) -> str:
    """The import name of the package holding ``path`` (``bench/report/x.py``: uqbench.bench.report)."""
    return ".".join(["uqbench", *path.parent.relative_to(REPO).parts])


def imports(path: Path) -> list[tuple[str, ast.AST]]:
    """(module or name imported, node) for every import in ``path``, relative ones made absolute."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package_of(path).split(".")
            base = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            out += [(module, node)] + [(f"{module}.{a.name}", node) for a in node.names]
    return out


def files(*parts: str) -> list[Path]:
    return sorted(p for part in parts
                  for p in ([BENCH / part] if part.endswith(".py") else (BENCH / part).rglob("*.py")))


@pytest.mark.parametrize("path", files("report"), ids=lambda p: p.name)
def test_the_report_imports_at_module_level(path):
    tree = ast.parse(path.read_text())
    inner = [f"line {n.lineno}" for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not inner, f"{path.name}: imports inside functions at {', '.join(inner)}"


@pytest.mark.parametrize("path", files("runner.py", "tasks", "data", "results.py", "scoring.py", "intervals.py"),
                         ids=lambda p: str(p.relative_to(BENCH)))
def test_lower_layers_import_nothing_from_the_report(path):
    found = sorted({m for m, _ in imports(path) if m.startswith(REPORT_LAYER)})
    assert not found, f"{path.name} imports {found}"


def test_results_import_no_task_code():
    assert not [m for m, _ in imports(BENCH / "results.py") if m.startswith("uqbench.bench.tasks")]


@pytest.mark.parametrize("path", files("report"), ids=lambda p: p.name)
def test_the_report_reads_no_suite_files(path):
    found = sorted({m for m, _ in imports(path) if m in ("uqbench.bench.suite", "uqbench.bench.runner")})
    assert not found, f"{path.name} imports {found}: the leaderboard reads results and the plans recorded there"


def _strings(path: Path) -> list[ast.Constant]:
    """String constants of ``path``, docstrings aside."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_bench_names_no_method_role_or_declared_fact_outside_the_claims_data():
    names = set(methods.REGISTRY) | {r.name for r in claims.ROLES}
    names |= {key for cls in methods.REGISTRY.values() for key in cls.display_notes}
    found = [f"{p.relative_to(BENCH)}:{n.lineno} {n.value!r}" for p in files(".") if p.name != "claims.py"
             for n in _strings(p) if n.value in names]
    assert not found


def test_the_report_package_stays_within_1300_lines():
    """The report renders tables built as data; its readers live with the modules owning the data."""
    lines = {p.name: len(p.read_text().splitlines()) for p in files("report")}
    assert sum(lines.values()) <= 1300, lines
