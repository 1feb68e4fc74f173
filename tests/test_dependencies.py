"""Every declared dependency earns its place: imported by the package, or needed at import
time by a dependency that does not declare it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCES = ("bench", "methods", "uqbench")
# Declared because another dependency imports them when it is imported, without declaring them
# (torch-uncertainty requires them only through extras that bring much more: see the last test).
INDIRECT = {"lightning": "torch_uncertainty", "torchmetrics": "torch_uncertainty", "rich": "torch_uncertainty"}


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def _import_names() -> dict[str, set[str]]:
    """Distribution name -> the top-level modules it installs."""
    out: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    return out


def _imported(folders: tuple[str, ...]) -> set[str]:
    """Top-level modules imported anywhere (function bodies included) under ``folders``."""
    found = set()
    for folder in folders:
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def test_every_runtime_dependency_is_imported():
    names, imported = _import_names(), _imported(SOURCES)
    declared = [_name(r) for r in PYPROJECT["project"]["dependencies"]]
    unused = [d for d in declared if d not in INDIRECT and not names.get(d, set()) & imported]
    assert not unused, f"declared but never imported under {SOURCES}: {unused}"
    for dist, importer in INDIRECT.items():
        assert dist in declared and importer in imported, (dist, importer)


def test_indirect_dependencies_are_really_imported_by_their_importer():
    """If a new release stops importing one of them, this fails: then drop the declaration."""
    names = _import_names()
    code = f"import sys, {', '.join(sorted(set(INDIRECT.values())))}; print(' '.join(sys.modules))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    for dist in INDIRECT:
        assert names[dist] & loaded, f"{dist} is no longer imported by {INDIRECT[dist]}"


def test_extras():
    extras = {k: [_name(r) for r in v] for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
    assert "ray" not in extras["test"], "ray stays out of the default test install (CI adds the ray extra)"
    assert extras["ray"] == ["ray"] and "ray" in _imported(SOURCES)
    assert "EXTRAS=test,ray" in (ROOT / ".ci" / "run").read_text()


def test_torch_uncertainty_extras_would_bring_more_than_it_imports():
    """Why the three are declared one by one rather than as ``torch-uncertainty[cpu]``: every extra of
    torch-uncertainty that requires lightning requires ``lightning[pytorch-extra]``, which adds
    bitsandbytes (and hydra-core, jsonargparse, omegaconf, tensorboardX), none of them used here;
    once bitsandbytes is installed, ``import peft`` imports it, and it reaches for the Hugging Face
    Hub for kernels and warns on every run. ``pip install 'torch-uncertainty[cpu]'`` itself installs
    cleanly here (12 s). If a release gets an extra with plain lightning, declare that instead."""
    from packaging.requirements import Requirement

    tu = [Requirement(r) for r in importlib.metadata.requires("torch-uncertainty") or []]
    lightning = [r for r in tu if _name(r.name) == "lightning" and r.marker is not None]
    assert lightning, "torch-uncertainty no longer offers lightning through an extra: revisit INDIRECT"
    assert all("pytorch-extra" in r.extras for r in lightning), [str(r) for r in lightning]
    extra = [Requirement(r) for r in importlib.metadata.requires("lightning") or []]
    assert any(_name(r.name) == "bitsandbytes" and r.marker.evaluate({"extra": "pytorch-extra"}) for r in extra
               if r.marker is not None)
