"""One import package: ``uqbench`` is the only top-level name, and each module has one name."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["bench", "methods", "bench.tasks", "methods.hydra"])
def test_layout_folders_are_not_import_names(name):
    """From the repository root ``bench`` is on the path; importing it must fail, not build a
    second copy of the registries beside ``uqbench.bench``."""
    r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0
    assert "each module has one import name" in r.stderr


def test_registries_exist_once():
    import uqbench.bench.tasks as tasks
    import uqbench.methods as methods

    loaded = [m for m in sys.modules if m.split(".")[0] in ("bench", "methods")]
    assert loaded == []
    assert "hydra" in methods.REGISTRY and "digits" in tasks.TASKS


def test_every_package_is_declared():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"uqbench"} | {
        "uqbench." + ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("bench", "methods") for p in (ROOT / top).rglob("__init__.py")
    }
    assert found == declared


@pytest.mark.slow
def test_wheel_has_one_top_level_package(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("uqbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"uqbench"}
    assert "uqbench/bench/suites/quick.toml" in names
    assert "uqbench/bench/templates/leaderboard.html" in names  # the HTML leaderboard's page template
    assert "uqbench/methods/hydra/fuse.py" in names
