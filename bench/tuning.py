"""One tuning protocol for every method: a declared search space, one rule on validation data.

A suite's ``[tuning]`` section names the entries whose configuration is chosen, not fixed::

    [tuning]
    objective = { "val/nll" = 1.0, "ood_val/auroc_msp" = -1.0 }   # weighted sum, minimised
    seeds = [0]                       # seeds the candidates are run and compared on
    reference = "single"              # optional: the [methods.*] entry the study section compares with
    title = "Hydra study"             # optional: the leaderboard section's title

    [tuning.hydra]                    # the chosen configuration is run as entry 'hydra'
    method = "hydra"
    search = "coordinate"             # or "grid" (every combination)
    [tuning.hydra.fixed]              # held by every candidate
    num_members = 3
    [tuning.hydra.space]              # knob -> values; the first value is the starting point
    finetune_frac = [0.5, 0.25, 1.0]
    mlp = [{ merge_mlp = true }, { merge_mlp = false }]   # a table sets several parameters
    [tuning.hydra.task_space.cifar10-vit]                 # per-task replacement of some knobs
    heads_per_member = [2, 3]
    [tuning.hydra.max_cost]           # optional: the cost that defines the entry, as ratios of the
    params = 1.03                     # reference's analytic cost (axes: params, flops)
    # optional, with max_cost: the best candidate above it is run as this entry
    unconstrained = "hydra-unconstrained"    # (a key of [tuning.hydra], above max_cost)

The rule reads only a result's ``val_metrics`` (``val/*`` on the 'val' split, ``ood_val/*`` on
'ood_val'); objective keys outside those two prefixes are rejected when the suite is loaded, so
the test split can never take part in a choice. Terms on ``ood_val/*`` are dropped on a task
without an 'ood_val' split. A candidate whose result has no ``val_metrics`` (a result file from
before validation was recorded) is not eligible; it is listed in the record as such.

``coordinate`` visits the knobs in the declared order and keeps, for each, the value with the
lowest objective given the values kept so far (1 + sum(len - 1) candidates); ``grid`` runs the
product. With ``max_cost``, every candidate's analytic cost (``methods.flops``, from the
method's ``inference_networks`` on the task's backbone; no training needed) is divided by the
reference entry's: candidates above the limit still run and are recorded with their cost, but
neither the search path nor the winner may take them; ``unconstrained`` names an entry that runs
the best candidate above the limit, so that what the extra cost buys stays visible.

``rows_only`` (``tune --rows-only``) runs only the chosen rows of complete records that hold the
same rule, seeds, space and cost limit and whose winner was trained on the task's present
training configuration (the fields that are not evaluation-only): after a change of what is only
evaluated (a new OOD set), the rows are rerun and the search, which read validation data alone,
is kept. Every candidate is an ordinary job whose result lives under
``<results>/tuning/runs/<suite>/<task>/<entry>--<hash>/``, so an interrupted tuning resumes and a
finished one reruns nothing. The record of rule, space, candidates (validation numbers only),
budget spent and winner is written to ``<results>/tuning/<suite>/<task>/<entry>.json``; the
winner then runs on the suite's seeds as an ordinary entry under ``<results>/runs/<suite>``, its
result files carrying a ``tuning`` summary that points to the record.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import methods
from . import cost, results

SEARCHES = ("coordinate", "grid")
VAL_PREFIXES = ("val/", "ood_val/")
COST_AXES = ("params", "flops")  # analytic parameters and forward FLOPs per sample
_ENTRY_KEYS = {"method", "search", "fixed", "space", "task_space", "max_cost", "unconstrained"}


@dataclass(frozen=True)
class Space:
    """The search space of one tuned entry."""

    entry: str
    method: str
    search: str
    fixed: dict[str, Any]
    knobs: dict[str, list[Any]]  # ordered as declared
    task_knobs: dict[str, dict[str, list[Any]]]
    max_cost: dict[str, float] = field(default_factory=dict)  # axis -> most x the reference's cost
    unconstrained: str | None = None  # entry that runs the best candidate above max_cost

    def knobs_for(self, task: str) -> dict[str, list[Any]]:
        return {**self.knobs, **self.task_knobs.get(task, {})}


@dataclass(frozen=True)
class Protocol:
    objective: dict[str, float]
    seeds: list[int]
    spaces: list[Space]
    reference: str | None = None
    title: str = "Tuning study"

    def plan(self, tasks: list[str]) -> dict[str, Any]:
        """The declared searches on ``tasks``, as a suite records them with its results."""
        return {"title": self.title, "objective": self.objective, "seeds": self.seeds, "reference": self.reference,
                "searches": [{"task": t, "entry": sp.entry, "method": sp.method, "search": sp.search,
                              "knobs": list(sp.knobs_for(t)), "candidates": candidate_count(sp, t)}
                             for t in tasks for sp in self.spaces]}


def resolve(space: Space, choice: dict[str, Any]) -> dict[str, Any]:
    """Method parameters of a candidate: the fixed ones, then each knob's value (a table value
    sets every parameter it holds)."""
    params = dict(space.fixed)
    for knob, value in choice.items():
        params.update(value if isinstance(value, dict) else {knob: value})
    return params


def candidate_name(entry: str, params: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{entry}--{digest}"


def parse(raw: Any, where: str, fixed_entries: list[str], tasks: list[str]) -> Protocol:
    """Validate a ``[tuning]`` section; raise ``ValueError`` naming the problem."""

    def check(cond: bool, msg: str) -> None:
        if not cond:
            raise ValueError(f"{where}: [tuning]: {msg}")

    check(isinstance(raw, dict), "must be a table")
    objective = raw.get("objective")
    check(isinstance(objective, dict) and objective, "needs objective = { \"val/<metric>\" = weight, ... }")
    for key, w in objective.items():
        check(key.startswith(VAL_PREFIXES), f"objective key {key!r} must start with val/ or ood_val/ "
              "(configurations are chosen on validation data only)")
        check(isinstance(w, (int, float)) and not isinstance(w, bool) and w != 0,
              f"objective weight of {key!r} must be a non-zero number")
    seeds = raw.get("seeds", [0])
    check(isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool)
                                                   and s >= 0 for s in seeds),
          "seeds must be a non-empty list of non-negative integers")
    reference = raw.get("reference")
    check(reference is None or reference in fixed_entries,
          f"reference {reference!r} must be one of the [methods.*] entries {fixed_entries}")
    title = raw.get("title", Protocol.title)
    check(isinstance(title, str) and title.strip(), "title must be a non-empty string")
    spaces = []
    for entry, body in raw.items():
        if entry in ("objective", "seeds", "reference", "title"):
            continue
        spaces.append(_parse_space(entry, body, check, fixed_entries, tasks))
    check(bool(spaces), "no [tuning.<entry>] tables")
    names = [n for sp in spaces for n in (sp.entry, sp.unconstrained) if n]
    check(len(set(names)) == len(names) and not set(names) & set(fixed_entries),
          f"entry names {names} must differ from each other and from the [methods.*] entries")
    check(reference is not None or not any(sp.max_cost for sp in spaces),
          "max_cost is a ratio to the reference entry: set reference = \"<entry>\"")
    return Protocol({k: float(v) for k, v in objective.items()}, seeds, spaces, reference, title)


def _parse_space(entry: str, body: Any, check, fixed_entries: list[str], tasks: list[str]) -> Space:
    check(isinstance(body, dict), f"[tuning.{entry}] must be a table")
    check("--" not in entry, f"entry name {entry!r} must not contain '--'")
    check(entry not in fixed_entries, f"{entry!r} is both a [methods.*] entry and a tuned entry")
    check(set(body) <= _ENTRY_KEYS, f"[tuning.{entry}] has unknown keys {sorted(set(body) - _ENTRY_KEYS)}")
    method = body.get("method", entry)
    check(method in methods.REGISTRY, f"[tuning.{entry}]: unknown method {method!r}")
    search = body.get("search", "coordinate")
    check(search in SEARCHES, f"[tuning.{entry}]: search must be one of {', '.join(SEARCHES)}")
    fixed = body.get("fixed", {})
    check(isinstance(fixed, dict), f"[tuning.{entry}.fixed] must be a table")

    def knobs_of(table: Any, label: str) -> dict[str, list[Any]]:
        check(isinstance(table, dict), f"{label} must be a table")
        for knob, values in table.items():
            check(isinstance(values, list) and values, f"{label}: {knob} must be a non-empty list")
        return dict(table)

    knobs = knobs_of(body.get("space", {}), f"[tuning.{entry}.space]")
    check(bool(knobs), f"[tuning.{entry}.space] declares no knob")
    task_space = body.get("task_space", {})
    check(isinstance(task_space, dict), f"[tuning.{entry}.task_space] must be a table")
    task_knobs = {}
    for task, table in task_space.items():
        check(task in tasks, f"[tuning.{entry}.task_space]: unknown task {task!r} (valid: {', '.join(tasks)})")
        task_knobs[task] = knobs_of(table, f"[tuning.{entry}.task_space.{task}]")
        extra = sorted(set(task_knobs[task]) - set(knobs))
        check(not extra, f"[tuning.{entry}.task_space.{task}]: knobs {extra} are not in the space")
    max_cost = body.get("max_cost", {})
    check(isinstance(max_cost, dict) and set(max_cost) <= set(COST_AXES),
          f"[tuning.{entry}.max_cost] must be a table of {', '.join(COST_AXES)}")
    for axis, limit in max_cost.items():
        check(isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0,
              f"[tuning.{entry}.max_cost]: {axis} must be a positive ratio to the reference's cost")
    unconstrained = body.get("unconstrained")
    check(unconstrained is None or (isinstance(unconstrained, str) and unconstrained and "--" not in unconstrained
                                    and bool(max_cost)),
          f"[tuning.{entry}]: unconstrained must be an entry name (without '--'), with a max_cost")
    space = Space(entry, method, search, fixed, knobs, task_knobs,
                  {k: float(v) for k, v in max_cost.items()}, unconstrained)
    for task in [None, *task_knobs]:  # every value must make a valid configuration
        for knob, values in space.knobs_for(task).items():
            for v in values:
                try:
                    methods.create(method, **resolve(space, {knob: v}))
                except (ValueError, TypeError) as e:
                    check(False, f"[tuning.{entry}]: {knob} = {v!r}: {e}")
    return space


def objective_value(val_metrics: dict[str, float], objective: dict[str, float]) -> float | None:
    """The rule's value (lower is better), or None when a ``val/*`` term is missing or the value
    is not finite (a diverged candidate is never chosen)."""
    total = 0.0
    for key, w in objective.items():
        if key in val_metrics:
            total += w * val_metrics[key]
        elif not key.startswith("ood_val/"):
            return None
    return total if math.isfinite(total) else None


def choices(space: Space, task: str) -> list[dict[str, Any]]:
    """Every combination of a grid search, in declared order."""
    knobs = space.knobs_for(task)
    return [dict(zip(knobs, combo)) for combo in itertools.product(*knobs.values())]


def space_size(space: Space, task: str) -> int:
    return math.prod(len(v) for v in space.knobs_for(task).values())


def candidate_count(space: Space, task: str) -> int:
    """How many candidates the search runs: the whole grid, or 1 + sum(len - 1) visiting knobs in turn."""
    knobs = space.knobs_for(task)
    return space_size(space, task) if space.search == "grid" else 1 + sum(len(v) - 1 for v in knobs.values())


# -- reading a record -----------------------------------------------------------------------
def load_records(root: Path) -> list[dict]:
    """Every tuning record under ``root``, with its ``_path`` relative to ``root`` and each
    candidate's result files (``_results``, each with its ``_path``)."""
    records = []
    for path in sorted((root / "tuning").glob("*/*/*.json")):
        rec = {**json.loads(path.read_text()), "_path": str(path.relative_to(root))}
        for c in rec["candidates"]:
            base = root / "tuning" / "runs" / rec["suite"] / rec["task"] / c["name"]
            c["_results"] = [{**results.read(p), "_path": str(p.relative_to(root))} for p in sorted(base.glob("seed*.json"))]
        records.append(rec)
    return records


def load_across(root: Path) -> list[dict]:
    """Every record of winners run across tasks (``across_tasks``) under ``root``."""
    return [json.loads(p.read_text()) for p in sorted((root / "tuning").glob("*/*.across-tasks.json"))]


def knob_slices(rec: dict) -> dict[str, list[dict]]:
    """Per knob, the candidates of a record (those with results, ``_results``) that differ only in
    that knob: the largest such group, the winner's where there is a tie, ordered as the knob's
    values are declared."""
    out = {}
    cands = [c for c in rec["candidates"] if c["_results"]]
    win = (rec.get("winner") or {}).get("name")
    for knob, values in rec["space"].items():
        groups = defaultdict(list)
        for c in cands:
            groups[json.dumps({k: v for k, v in c["knobs"].items() if k != knob}, sort_keys=True)].append(c)
        best = max(groups.values(), key=lambda g: (len({json.dumps(c["knobs"][knob]) for c in g}),
                                                   any(c["name"] == win for c in g)), default=[])
        if len(best) > 1:
            out[knob] = sorted(best, key=lambda c: values.index(c["knobs"][knob]))
    return out


def at_the_edge(rec: dict) -> list[tuple[str, float, str, list[float]]]:
    """(knob, value, "smallest" or "largest", values tried) for each of the winner's values that is
    the smallest or largest of three or more numbers a knob (or a field of a table-valued knob)
    tried: there the best value may lie outside the space."""
    win = rec.get("winner")
    if not win:
        return []
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    out = []
    for knob, values in rec["space"].items():
        chosen = win["knobs"][knob]
        for field, x in chosen.items() if isinstance(chosen, dict) else [(None, chosen)]:
            tried = {v.get(field) if isinstance(v, dict) else v for v in values}
            if len(tried) >= 3 and all(map(number, tried)) and x in (min(tried), max(tried)):
                out.append((knob if field is None else f"{knob}.{field}", x,
                            "smallest" if x == min(tried) else "largest", sorted(tried)))
    return out


def knob_text(value: Any, sep: str = ", ") -> str:
    """A knob's value as written: a table-valued knob by its fields (``a=1, b=2``)."""
    return sep.join(f"{k}={x}" for k, x in value.items()) if isinstance(value, dict) else str(value)


def label(knobs: dict, start: dict | None = None) -> str:
    """A candidate by the knobs where it differs from the search's starting point ``start``."""
    return ", ".join(knob_text(v) if isinstance(v, dict) else f"{k}={v}" for k, v in knobs.items()
                     if v != (start or {}).get(k)) or "start"


def on_rule_seeds(rec: dict, objs: list[dict]) -> list[dict]:
    """The results among ``objs`` on the seeds the record's candidates were compared on."""
    return [o for o in objs if o["seed"] in rec["rule"]["seeds"]]


def best_so_far(rec: dict) -> tuple[dict | None, int]:
    """The candidate with the lowest objective among those with results, and how many those are."""
    done = [c for c in rec["candidates"] if c["objective"] is not None and c["_results"]]
    return min(done, key=lambda c: c["objective"], default=None), len(done)


def selection_noise(rec: dict, chosen: list[dict]) -> dict[str, Any] | None:
    """A yardstick for the choice: how many candidates have an objective and how far apart those
    lie (``span``), the standard deviation of the chosen configuration's objective over its
    results ``chosen`` (``sd``, over that many ``seeds``), and how many other candidates lie within
    it of the winner (``close``). None without a winner, two candidates' objectives or two seeds."""
    per_seed = [v for o in chosen if (v := objective_value(o.get("val_metrics", {}), rec["rule"]["objective"]))
                is not None]
    objs, win = [c["objective"] for c in rec["candidates"] if c["objective"] is not None], rec.get("winner")
    if len(per_seed) < 2 or len(objs) < 2 or not win:
        return None
    sd = float(np.std(per_seed, ddof=1))
    return {"candidates": len(objs), "span": max(objs) - min(objs), "sd": sd, "seeds": len(per_seed),
            "close": sum(1 for v in objs if v - win["objective"] <= sd) - 1}


def not_started(plans: dict[str, dict], records: list[dict]) -> dict[str, list[dict]]:
    """Per suite, the searches its recorded plan declares that have no record among ``records``."""
    have = {(r["suite"], r["task"], r["entry"]) for r in records}
    return {name: todo for name, plan in sorted(plans.items()) if (todo := [
        s for s in plan.get("tuning", {}).get("searches", []) if (name, s["task"], s["entry"]) not in have])}


# -- running a tuning ---------------------------------------------------------------------
def record_path(root: Path, suite: str, task: str, entry: str) -> Path:
    return Path(root) / "tuning" / suite / task / f"{entry}.json"


def record_saver(path: Path):
    """``save(record)`` for a search: the record goes to ``path``, except that while a search whose
    complete record is there runs again (its space grown since), the unfinished one goes beside it
    (``<entry>.json.partial``), so the rows chosen by the complete record keep it."""
    partial = path.with_name(path.name + ".partial")

    def save(rec: dict) -> None:
        text = json.dumps(rec, indent=1, sort_keys=True) + "\n"
        if not rec["complete"] and path.exists() and json.loads(path.read_text()).get("complete"):
            results.write_atomic(partial, text)
            return
        results.write_atomic(path, text)
        if rec["complete"]:
            partial.unlink(missing_ok=True)

    return save


def _jobs(suite, task, entry, seeds: list[int], root: Path, report, log,
          fields: dict | None = None) -> list[dict | None]:
    """The result of ``entry`` for each seed: reused when finished, else run with ``fields`` in
    its result (None if it failed)."""
    from . import runner

    return [runner.attempt(suite, task, entry, seed, root, report, log=log, fields=fields) for seed in seeds]


def cost_ratios(task, method: str, params: dict[str, Any], reference) -> dict[str, float]:
    """Analytic cost (``COST_AXES``) of a configuration on ``task`` as multiples of the reference
    entry's; raises ``ConfigError`` for a configuration the task's model cannot take."""
    x = task.example_inputs(1)

    def analytic(name: str, p: dict[str, Any]) -> dict[str, float]:
        return cost.analytic(methods.create(name, **p).inference_networks(task.backbone_config), x)

    a, r = analytic(method, params), analytic(reference.method, reference.params)
    return {axis: a[f"analytic_{axis}"] / r[f"analytic_{axis}"] for axis in COST_AXES}


def _choosable(row: dict) -> bool:
    return row["objective"] is not None and row.get("within_max_cost", True)


def _pick(row: dict | None) -> dict | None:
    return None if row is None else {k: row[k] for k in ("name", "knobs", "params", "objective")}


def candidate(suite, task, space: Space, protocol: Protocol, choice: dict[str, Any], root: Path, report, log=print,
              reference=None) -> dict:
    """Run (or reuse) the candidate of ``choice`` on the rule's seeds; its record row: name, knobs,
    params, status, the mean validation objective and metrics, and its cost against
    ``reference`` where ``space`` has a cost limit."""
    from .suite import MethodEntry

    params = resolve(space, choice)
    name = candidate_name(space.entry, params)
    row = {"name": name, "knobs": choice, "params": params, "objective": None}
    try:
        if space.max_cost:
            row["cost"] = cost_ratios(task, space.method, params, reference)
            row["within_max_cost"] = all(row["cost"][a] <= lim for a, lim in space.max_cost.items())
        objs = _jobs(suite, task, MethodEntry(name, space.method, params), protocol.seeds, Path(root) / "tuning",
                     report, log)
    except methods.ConfigError as e:  # e.g. more heads than this task's model has
        objs, row["status"] = [], f"invalid: {e}"
        row.pop("within_max_cost", None)
    done = [o for o in objs if o]
    vals = [objective_value(o.get("val_metrics", {}), protocol.objective) for o in done]
    if "status" in row:
        pass
    elif len(done) < len(objs):
        row["status"] = "failed"
    elif any(v is None for v in vals):
        row["status"] = "no validation metrics"
    else:
        row["status"] = "ok"
        row["objective"] = sum(vals) / len(vals)
        row["val_metrics"] = {k: sum(o["val_metrics"][k] for o in done) / len(done) for k in done[0]["val_metrics"]}
    row["wall_s"] = sum(o["wall"]["fit_s"] + o["wall"]["eval_s"] for o in done)
    return row


def tune_task(suite, task, space: Space, protocol: Protocol, root: Path, report, log=print,
              save=None, reference=None) -> dict:
    """Run the search of ``space`` on ``task`` (candidates under ``root/tuning``); the record.
    ``save(record)`` is called after every candidate (``complete`` false, no winner) and at the end.
    ``reference`` (a ``MethodEntry``) is what ``max_cost`` is a ratio of."""
    seen: dict[str, dict] = {}
    knobs = space.knobs_for(task.name)

    def record(complete: bool) -> dict:
        rows = list(seen.values())
        done = [r for r in rows if r["objective"] is not None] if complete else []
        winner = min((r for r in done if _choosable(r)), key=lambda r: r["objective"], default=None)
        out = {
            "schema": results.SCHEMA_VERSION, "suite": suite.name, "task": task.name, "entry": space.entry,
            "method": space.method, "complete": complete,
            "rule": {"objective": protocol.objective, "minimise": True, "seeds": protocol.seeds,
                     "data": "validation only: val_metrics of each candidate (the 'val' split, 'ood_val' where present)"},
            "reference": protocol.reference, "title": protocol.title, "search": space.search, "fixed": space.fixed,
            "space": knobs,
            "budget": {"candidates": len(rows), "jobs": len(rows) * len(protocol.seeds),
                       "space_size": space_size(space, task.name), "wall_s": sum(r["wall_s"] for r in rows)},
            "candidates": rows,
            "winner": _pick(winner),
        }
        if space.max_cost:
            above = [r for r in done if not r["within_max_cost"]]
            out |= {"max_cost": space.max_cost, "unconstrained_entry": space.unconstrained,
                    "unconstrained": _pick(min(above, key=lambda r: r["objective"], default=None))
                    if space.unconstrained else None}
        return out

    def evaluate(choice: dict[str, Any]) -> float | None:
        name = candidate_name(space.entry, resolve(space, choice))
        if name not in seen:
            seen[name] = candidate(suite, task, space, protocol, choice, root, report, log, reference)
            if save:
                save(record(False))
        return seen[name]["objective"] if _choosable(seen[name]) else None

    if space.search == "grid":
        for choice in choices(space, task.name):
            evaluate(choice)
    else:
        current = {k: v[0] for k, v in knobs.items()}
        for knob, values in knobs.items():
            scored = [(evaluate({**current, knob: v}), i) for i, v in enumerate(values)]
            best = min(((s, i) for s, i in scored if s is not None), default=None)
            if best is not None:  # else (no value chosen) the knob keeps its value
                current[knob] = values[best[1]]
    out = record(True)
    if save:
        save(out)
    return out


def across_path(root: Path, suite: str, entry: str) -> Path:
    return Path(root) / "tuning" / suite / f"{entry}.across-tasks.json"


def across_tasks(suite, space: Space, protocol: Protocol, tasks: dict[str, Any], root: Path, report, log=print,
                 reference=None) -> dict:
    """Each task's winner of ``space`` run on every task of ``tasks`` (name -> built task), so that
    one configuration can be chosen for all (a method's code defaults): a recipe is a winner's knob
    values, carried to another task by their position in the knob's declared list (so H/M heads of
    12, the first value there, is H/M of 6 on a task whose list starts with it); each task ranks
    the recipes by the rule's objective (a recipe above the cost limit or without a value ranks
    last), and the recipe with the lowest mean rank is ``best`` (ties: the lower mean objective).
    Candidates are the searches' own, so the runs the searches made are reused. The record goes to
    ``across_path``; complete records of every task are required."""
    recs = {}
    for name in tasks:
        path = record_path(root, suite.name, name, space.entry)
        rec = json.loads(path.read_text()) if path.exists() else {}
        if not rec.get("complete") or not rec.get("winner"):
            raise ValueError(f"{space.entry}: no complete search with a winner on {name} ({path}); run tune first")
        recs[name] = rec
    recipes = []
    for source, rec in recs.items():
        own, row = space.knobs_for(source), {"from": source, "knobs": rec["winner"]["knobs"], "on": {}}
        for name, task in tasks.items():
            choice = {k: space.knobs_for(name)[k][own[k].index(v)] for k, v in rec["winner"]["knobs"].items()}
            c = candidate(suite, task, space, protocol, choice, root, report, log, reference)
            row["on"][name] = {"candidate": c["name"], "params": c["params"], "status": c["status"],
                               "objective": c["objective"] if _choosable(c) else None}
            log(f"{space.entry}: the winner on {source} gives {row['on'][name]['objective']} on {name}")
        recipes.append(row)
    for name in tasks:
        order = sorted((r["on"][name]["objective"], i) for i, r in enumerate(recipes)
                       if r["on"][name]["objective"] is not None)
        for rank, (_, i) in enumerate(order, 1):
            recipes[i]["on"][name]["rank"] = rank
    for r in recipes:
        r["mean_rank"] = sum(v.get("rank", len(recipes) + 1) for v in r["on"].values()) / len(tasks)
        done = [v["objective"] for v in r["on"].values() if v["objective"] is not None]
        r["mean_objective"] = sum(done) / len(done) if done else None
    best = min(recipes, key=lambda r: (r["mean_rank"], r["mean_objective"] if r["mean_objective"] is not None
                                       else math.inf))
    out = {"schema": results.SCHEMA_VERSION, "suite": suite.name, "entry": space.entry, "method": space.method,
           "rule": {"objective": protocol.objective, "seeds": protocol.seeds, "rank": "mean over tasks of each task's "
                    "rank of the recipes by the validation objective"}, "fixed": space.fixed,
           "tasks": list(tasks), "recipes": recipes, "best": {"from": best["from"], "knobs": best["knobs"]}}
    results.write_atomic(across_path(root, suite.name, space.entry), json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


def reusable(path: Path, suite, task, space: Space, protocol: Protocol, root: Path) -> dict | None:
    """The complete record at ``path`` when it is the search asked for (same rule, seeds, space,
    fixed parameters and cost limit) and its winner was trained on the task's present training
    configuration; else None."""
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    asked = json.loads(json.dumps({"rule": [protocol.objective, protocol.seeds], "search": space.search,
                                   "fixed": space.fixed, "space": space.knobs_for(task.name),
                                   "max_cost": space.max_cost or None, "unconstrained": space.unconstrained}))
    held = {"rule": [rec["rule"]["objective"], rec["rule"]["seeds"]], "search": rec["search"], "fixed": rec["fixed"],
            "space": rec["space"], "max_cost": rec.get("max_cost"), "unconstrained": rec.get("unconstrained_entry")}
    if not rec.get("complete") or rec.get("winner") is None or held != asked:
        return None
    won = results.JobId(suite.name, task.name, rec["winner"]["name"], protocol.seeds[0]).path(Path(root) / "tuning")
    if not won.exists():
        return None
    trained = results.read(won)["task_config"]
    return rec if all(trained.get(k) == v for k, v in task.training_config.items()) else None


def tune_suite(suite, root: Path, only_tasks: list[str] | None = None, only_entries: list[str] | None = None,
               final: bool = True, device: str | None = None, log=print, rows_only: bool = False,
               across: bool = False):
    """Tune every ``[tuning]`` entry of ``suite`` on every task with data, write the records,
    and (``final``) run each winner on the suite's seeds as its entry; with ``rows_only``, run the
    rows of reusable complete records and search nothing; with ``across``, run each task's winner
    on every task instead (``across_tasks``). Returns a ``RunReport``."""
    from . import runner
    from .data.root import MissingData
    from .suite import MethodEntry, build_task

    protocol: Protocol | None = suite.tuning
    if protocol is None:
        raise ValueError(f"suite {suite.name} has no [tuning] section")
    root = Path(root)
    dev, droot = runner.prepare(suite, root, device, log)
    runner.clean_stale_temporaries(root / "tuning")
    report = runner.RunReport()
    spaces = [s for s in protocol.spaces if not only_entries or s.entry in only_entries]
    reference = next((e for e in suite.methods if e.name == protocol.reference), None)
    tasks = {}
    for t_entry in suite.tasks:
        if only_tasks and t_entry.name not in only_tasks:
            continue
        try:
            tasks[t_entry.name] = task = build_task(t_entry, droot)
        except MissingData as e:
            log(f"skipped task {t_entry.name}: {e}")
            report.skipped.append(t_entry.name)
            continue
        task.device = dev
        for space in spaces if not across else ():
            if not task.trainable and methods.REGISTRY[space.method].needs_training:
                report.skipped.append(f"{task.name}/{space.entry}")
                continue
            path = record_path(root, suite.name, task.name, space.entry)
            if rows_only:
                record = reusable(path, suite, task, space, protocol, root)
                if record is None:
                    log(f"skipped {task.name}/{space.entry}: no complete record of this search on this training "
                        f"configuration at {path}; run tune without --rows-only")
                    report.skipped.append(f"{task.name}/{space.entry}")
                    continue
            else:
                record = tune_task(suite, task, space, protocol, root, report, log, record_saver(path), reference)
            win = record["winner"]
            log(f"{task.name}/{space.entry}: {record['budget']['candidates']} candidates, winner "
                f"{win['name'] if win else 'none'}")
            if not final:
                continue
            chosen = [(space.entry, win, "winner"), (space.unconstrained, record.get("unconstrained"), "unconstrained")]
            for name, pick, choice in chosen:
                if name and pick:
                    summary = {"record": str(path.relative_to(root)), "winner": pick["name"], "choice": choice,
                               "objective": protocol.objective, "candidates": record["budget"]["candidates"]}
                    _rows(suite, task, MethodEntry(name, space.method, pick["params"]), summary, root, report, log)
    for space in spaces if across else ():
        trained = {n: t for n, t in tasks.items() if t.trainable or not methods.REGISTRY[space.method].needs_training}
        best = across_tasks(suite, space, protocol, trained, root, report, log, reference)["best"]
        log(f"{space.entry} across {', '.join(trained)}: best mean rank for the winner on {best['from']}, {best['knobs']}")
    runner.record_plan(suite, root)
    return report


def _rows(suite, task, entry, summary: dict, root: Path, report, log) -> None:
    """Run a chosen configuration on the task's seeds as ``entry``. Each row is written with its
    link, so a search killed between seeds leaves no row without one; a reused row chosen by an
    earlier record is relinked."""
    seeds = suite.seeds_for(task.name)
    for seed, obj in zip(seeds, _jobs(suite, task, entry, seeds, root, report, log, {"tuning": summary})):
        if obj and obj.get("tuning") != summary:
            results.write(results.JobId(suite.name, task.name, entry.name, seed).path(root), {**obj, "tuning": summary})
