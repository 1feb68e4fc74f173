"""Task registry: a task is a factory ``f(root, **params) -> SupervisedTask`` registered under
its name (the CLI name and the results folder name). A factory raises ``MissingData`` when
its data or weights are absent; the runner reports the task as skipped with that reason."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uqbench.methods.base import unknown_name

TASKS: dict[str, Callable[..., Any]] = {}


def register_task(name: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        if name in TASKS:
            raise ValueError(f"task {name!r} registered twice")
        TASKS[name] = fn
        return fn

    return deco


def task_params(name: str) -> list[str]:
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return [p for p in inspect.signature(TASKS[name]).parameters if p != "root"]


def create_task(name: str, root: Path | None = None, **params: Any):
    """Build a task; unknown names and parameters fail with the valid ones listed."""
    valid = task_params(name)
    bad = sorted(set(params) - set(valid))
    if bad:
        raise ValueError(f"task {name!r} has no parameter {', '.join(bad)} (valid: {', '.join(valid)})")
    return TASKS[name](root, **params)


from uqbench.bench.tasks import digits  # noqa: E402,F401  (each import registers tasks)
from uqbench.bench.tasks import clip, custom, text, vision  # noqa: E402,F401
