"""Suite files: tasks x methods x seeds, with budgets as deltas over code defaults.

A suite is a TOML file (``bench/suites/<name>.toml`` or any path)::

    [suite]
    description = "..."
    seeds = [0, 1, 2]
    device = "cpu"            # "cpu", "cuda" or "auto"
    threads = 2               # CPU threads for training, evaluation and cost
    dtype = "float32"         # cost measurement precision ("bfloat16" on a GPU)
    ray_cpus = 2              # optional, --launcher ray: CPUs per job (default: threads)
    ray_gpus = 1              # optional, --launcher ray: GPUs per job, may be fractional
                              # (default: 1 when the device is cuda, or auto on a GPU cluster)

    [[tasks]]
    name = "cifar10-vit"      # results folder name
    kind = "cifar10-vit"      # registered task (defaults to name)
    params = { epochs = 4 }   # keyword deltas over the task's defaults
    seeds = [0, 1, 2, 3, 4]   # optional: this task's seeds instead of the suite's

    [methods.single]          # results folder name -> hyper-parameter deltas
    [methods.hydra-mlp]
    method = "hydra"          # registered method (defaults to the table's name)
    merge_mlp = false

    [tuning]                  # optional: entries whose configuration is chosen on validation
                              # data by ``python -m uqbench tune`` (see ``bench/tuning.py``)

Unknown keys, names and parameters, values of the wrong type or out of range, repeated task
names and custom-data paths that do not exist are rejected before anything runs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import methods
from .data.root import data_root
from .tasks import create_task, task_config
from ..methods.base import unknown_name

SUITES_DIR = Path(__file__).parent / "suites"
_SUITE_KEYS = {"description", "seeds", "device", "threads", "dtype", "batch_sizes", "cost_repeats",
               "ray_cpus", "ray_gpus"}


@dataclass(frozen=True)
class TaskEntry:
    name: str
    kind: str
    params: dict[str, Any]
    seeds: list[int] | None = None  # this task's seeds, where they differ from the suite's


@dataclass(frozen=True)
class MethodEntry:
    name: str
    method: str
    params: dict[str, Any]

    def resolved(self) -> dict[str, Any]:
        """The hyper-parameters a job of this entry runs with: its declared ones over the method's
        present defaults, as its result records them."""
        return {"method": self.method, **methods.create(self.method, **self.params).get_params()}


@dataclass
class Suite:
    name: str
    tasks: list[TaskEntry]
    methods: list[MethodEntry]
    seeds: list[int] = field(default_factory=lambda: [0])
    description: str = ""
    device: str = "cpu"
    threads: int = 2  # CPU threads; cost is always measured with these
    work_threads: int | None = None  # CPU threads to train and evaluate with (None: ``threads``); set by --threads
    dtype: str = "float32"
    batch_sizes: tuple[int, int] = (1, 256)
    cost_repeats: int = 10
    ray_cpus: float | None = None  # Ray resources per job (--launcher ray); None: from threads / device
    ray_gpus: float | None = None
    tuning: Any = None  # a ``tuning.Protocol`` when the file has a [tuning] section
    plan: dict[str, Any] = field(default_factory=dict)  # as declared; recorded with the results

    def seeds_for(self, task: str) -> list[int]:
        """The seeds every entry runs on ``task``: the task's own, else the suite's."""
        own = next((t.seeds for t in self.tasks if t.name == task), None)
        return own if own is not None else self.seeds

    def set_seeds(self, seeds: list[int]) -> None:
        """Run every task on ``seeds`` (``--seeds``), the tasks' own seeds included."""
        self.seeds = seeds
        self.tasks = [replace(t, seeds=None) for t in self.tasks]


def available() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def _seed_list(v: Any) -> bool:
    return (isinstance(v, list) and bool(v) and len(set(v)) == len(v)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v))


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{where}: {msg}")


def load(name_or_path: str) -> Suite:
    """Load and validate a suite by registered name or by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and not path.is_file():
        raise ValueError(f"suite file not found: {path}")
    if path.suffix != ".toml":
        if name_or_path not in available():
            raise unknown_name("suite", name_or_path, available())
        path = SUITES_DIR / f"{name_or_path}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: malformed TOML ({e})") from None
    where = str(path)
    _check(isinstance(raw.get("suite", {}), dict) and isinstance(raw.get("methods", {}), dict), where,
           "[suite] and [methods.*] must be tables")
    _check(isinstance(raw.get("tasks", []), list), where, "tasks must be [[tasks]] entries")
    sections = {"suite", "tasks", "methods", "tuning"}
    _check(set(raw) <= sections, where, f"unknown sections {sorted(set(raw) - sections)}")
    head = raw.get("suite", {})
    _check(set(head) <= _SUITE_KEYS, where, f"unknown [suite] keys {sorted(set(head) - _SUITE_KEYS)}")
    seeds = head.get("seeds", [0])
    _check(_seed_list(seeds), where, "seeds must be a non-empty list of distinct non-negative integers")
    _check(head.get("device", "cpu") in ("cpu", "cuda", "auto"), where, "device must be cpu, cuda or auto")
    positive = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1  # noqa: E731
    _check(positive(head.get("threads", 2)), where, "threads must be an integer >= 1")
    _check(head.get("dtype", "float32") in ("float32", "float16", "bfloat16"), where,
           "dtype must be float32, float16 or bfloat16")
    sizes = head.get("batch_sizes", [1, 256])
    _check(isinstance(sizes, list) and len(sizes) == 2 and all(positive(b) for b in sizes), where,
           "batch_sizes must be two integers >= 1 (small, large)")
    _check(positive(head.get("cost_repeats", 10)), where, "cost_repeats must be an integer >= 1")
    for key in ("ray_cpus", "ray_gpus"):
        v = head.get(key, 0)
        _check(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, where,
               f"{key} must be a number >= 0")

    tasks = []
    for t in raw.get("tasks", []):
        _check(isinstance(t, dict) and "name" in t and set(t) <= {"name", "kind", "params", "seeds"}, where,
               f"a [[tasks]] entry needs 'name' and only 'kind', 'params', 'seeds' besides: {t}")
        _check("seeds" not in t or _seed_list(t["seeds"]), where,
               f"task {t.get('name')!r}: seeds must be a non-empty list of distinct non-negative integers")
        _check(isinstance(t["name"], str) and bool(t["name"]), where, f"task name must be a non-empty string: {t}")
        _check(t["name"] not in {e.name for e in tasks}, where, f"task name {t['name']!r} appears twice")
        kind = t.get("kind", t["name"])
        params = t.get("params", {})
        _check(isinstance(params, dict), where, f"task {t['name']!r}: params must be a table")
        try:  # types, ranges and consistency: checked now, not hours later
            cfg = task_config(kind, params, label=t["name"])
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        try:  # a user's path with a typo is an error (absent official data is a skip)
            cfg.check_paths(data_root())
        except ValueError as e:
            raise ValueError(f"{where}: task {t['name']!r}: {e}") from None
        tasks.append(TaskEntry(t["name"], kind, params, t.get("seeds")))
    _check(bool(tasks), where, "no [[tasks]]")

    entries = []
    for name, params in raw.get("methods", {}).items():
        _check(isinstance(params, dict), where, f"[methods.{name}] must be a table")
        params = dict(params)
        method = params.pop("method", name)
        try:
            methods.create(method, **params)  # validates names and values now, not hours later
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: [methods.{name}]: {e}") from None
        entries.append(MethodEntry(name, method, params))
    _check(bool(entries) or "tuning" in raw, where, "no [methods.*] tables")
    protocol = None
    if "tuning" in raw:
        from . import tuning  # imports the runner, which imports this module

        protocol = tuning.parse(raw["tuning"], where, [e.name for e in entries], [t.name for t in tasks])
    plan = {"suite": path.stem, "entries": [e.name for e in entries],
            "params": {e.name: e.resolved() for e in entries},
            "tasks": [{"name": t.name, "seeds": t.seeds or seeds} for t in tasks]}
    if protocol is not None:
        plan["tuning"] = protocol.plan([t.name for t in tasks])
    return Suite(
        name=path.stem, tasks=tasks, methods=entries, seeds=seeds, description=head.get("description", ""),
        device=head.get("device", "cpu"), threads=head.get("threads", 2), dtype=head.get("dtype", "float32"),
        batch_sizes=tuple(head.get("batch_sizes", (1, 256))), cost_repeats=head.get("cost_repeats", 10),
        ray_cpus=head.get("ray_cpus"), ray_gpus=head.get("ray_gpus"), tuning=protocol, plan=plan,
    )


def build_task(entry: TaskEntry, root: Path):
    """Instantiate a suite's task (may raise ``MissingData``)."""
    task = create_task(entry.kind, root, **entry.params)
    task.name = entry.name
    return task
