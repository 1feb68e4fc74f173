"""Task registry: a task kind is a typed config (``bench.tasks.config.TaskConfig``) and a
builder ``build(cfg, root) -> SupervisedTask``, registered under the kind's name (the CLI name
and, by default, the results folder name). A builder raises ``MissingData`` when official data
or weights are absent; the runner reports the task as skipped with that reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TaskConfig, field_names, make_config
from ...methods.base import unknown_name


@dataclass(frozen=True)
class TaskKind:
    name: str
    config: type[TaskConfig]
    build: Callable[[Any, Path], Any]


TASKS: dict[str, TaskKind] = {}


def register_task(name: str, config: type[TaskConfig]) -> Callable:
    """Decorator: register ``build(cfg, root)`` as task kind ``name`` with config class ``config``."""

    def deco(build: Callable) -> Callable:
        if name in TASKS:
            raise ValueError(f"task {name!r} registered twice")
        TASKS[name] = TaskKind(name, config, build)
        return build

    return deco


def _kind(name: str) -> TaskKind:
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


def task_params(name: str) -> list[str]:
    return field_names(_kind(name).config)


def task_config(name: str, params: dict[str, Any], label: str | None = None) -> TaskConfig:
    """The checked config of kind ``name``; ``ValueError`` names the bad parameter (and the
    task by ``label``, its suite entry name, when given)."""
    return make_config(_kind(name).config, label or name, params)


def create_task(name: str, root: Path | None = None, **params: Any):
    """Build a task; unknown names and bad parameters fail with a one-line ``ValueError``."""
    from .common import resolve_root

    cfg = task_config(name, params)
    root = resolve_root(root)
    try:
        cfg.check_paths(root)
    except ValueError as e:
        raise ValueError(f"task {name!r}: {e}") from None
    return _kind(name).build(cfg, root)


from . import digits  # noqa: E402,F401  (each import registers tasks)
from . import clip, custom, text, vision  # noqa: E402,F401
