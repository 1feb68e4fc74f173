"""Quality against inference cost, from result files and side-by-side cost files (``timing``):
the points of a quality-cost frontier, its Pareto front, the best entry at matched cost, and
each entry's means and cost ratios as the leaderboard's interactive plot draws them."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from . import catalogue, claims, results, timing

KEYS = ("test/nll", "test/ece", "ood_near/auroc_msp", "ood_far/auroc_msp")  # the metrics set against cost


class Point(NamedTuple):
    label: str
    kind: str  # "entry", "candidate" (a tuning candidate, seed 0) or "sweep" (an ensemble's first members)
    cost: dict[str, float]  # ratio to the reference per axis
    values: dict[str, tuple[float, float]]  # metric key -> (mean, sd over seeds)


def _stats(metrics: list[dict]) -> dict[str, tuple[float, float]]:
    """(mean, sd) over ``metrics`` of each of ``KEYS`` they hold."""
    return {k: (float(np.mean(v)), float(np.std(v)) if len(v) > 1 else 0.0)
            for k in KEYS if (v := [m[k] for m in metrics if k in m])}


def points(f: dict, jobs: list[dict], records: list[dict]) -> list[Point]:
    """Every entry of cost file ``f``'s (suite, task) (the ``+TS`` variants included), the first m
    members of each ensemble whose members run one pass each (from ``rescore``'s sweeps: cost
    scaled by m/M, parameters too where each member holds its own network) and every tuning
    candidate timed (``records``: tuning records, each candidate's results under ``_results``)."""
    out, rows, by_entry = [], {r["name"]: r for r in f["entries"]}, {}
    for j in jobs:
        if (j["suite"], j["task"]) == (f["suite"], f["task"]):
            by_entry.setdefault(j["method"], []).append(j)
    for e, js in sorted(by_entry.items()):
        if (cost := timing.cost_of([f], js)) is None:
            continue
        out.append(Point(e, "entry", cost, _stats([j["metrics"] for j in js])))
        row, k_all = rows[timing.costed_as(js)], js[0]["cost"].get("members", 1)
        if js[0].get("post_hoc") or row["passes"] != k_all:
            continue  # a fused network computes all its members at once: no cheaper part
        for m in range(1, k_all):
            scale = {a: m / k_all for a in cost} | ({} if row["networks_held"] == k_all else {"params": 1.0})
            if vals := _stats([j.get("sweep", {}).get(str(m), {}) for j in js]):
                out.append(Point(f"{e} ({m} of {k_all})", "sweep", {a: cost[a] * scale[a] for a in cost}, vals))
    done = {(r["suite"], r["task"], c["name"]): c for r in records for c in r["candidates"]}
    for c in f["candidates"]:
        found = done.get((f["suite"], f["task"], c["candidate"]), {}).get("_results", [])
        if found and (r := timing.ratios(f, c["timed_as"])):
            out.append(Point(c["candidate"], "candidate", {a: v[0] for a, v in r.items()}, _stats([found[0]["metrics"]])))
    return out


def pareto(pts: list[Point], axis: str, key: str) -> list[Point]:
    """The points no other point beats: at most its cost on ``axis`` and better on ``key``."""
    sign = 1 if catalogue.higher(key) else -1
    have = [p for p in pts if key in p.values]
    return sorted((p for p in have if not any(
        q.cost[axis] <= p.cost[axis] and sign * q.values[key][0] >= sign * p.values[key][0]
        and (q.cost[axis], q.values[key][0]) != (p.cost[axis], p.values[key][0]) for q in have)),
        key=lambda p: p.cost[axis])


def matched(files: list[dict], by_entry: dict[str, list[dict]], hydra: str, axis: str, key: str) -> str | None:
    """The entry with the best mean ``key`` among those that cost no more than ``hydra`` on
    ``axis`` (Hydra entries and their variants left out), or None."""
    if (mine := timing.cost_of(files, by_entry[hydra])) is None:
        return None
    best, score, sign = None, -math.inf, 1 if catalogue.higher(key) else -1
    for e, js in sorted(by_entry.items()):
        c, vals = timing.cost_of(files, js), [j["metrics"][key] for j in js if key in j["metrics"]]
        if c and vals and c[axis] <= mine[axis] and claims.role_of(js[0]["params"]) != claims.SUBJECT:
            if (s := sign * float(np.mean(vals))) > score:
                best, score = e, s
    return best


def plot_points(jobs: list[dict], files: list[dict], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """One point per (suite, task, entry): the means and standard deviations over seeds of
    ``keys``, and the point ratios of the side-by-side cost ``files``."""
    points = []
    for suite, task, entry in sorted({(j["suite"], j["task"], j["method"]) for j in jobs}):
        js = [j for j in jobs if (j["suite"], j["task"], j["method"]) == (suite, task, entry)]
        values = {k: [j["metrics"][k] for j in js if k in j["metrics"]] for k in keys}
        finite = {k: [x for x in v if isinstance(x, (int, float)) and math.isfinite(x)] for k, v in values.items()}
        points.append({
            "suite": suite, "task": task, "method": entry, "external": any("external" in j for j in js),
            "seeds": sorted(j["seed"] for j in js), "members": js[0]["cost"].get("members"),
            "device": sorted({results.device(j) for j in js}),
            "dtype": sorted({str(j["cost"].get("dtype", "–")) for j in js}),
            "metrics": {k: float(np.mean(v)) for k, v in finite.items() if v},
            "std": {k: float(np.std(v, ddof=1)) for k, v in values.items() if len(v) > 1},
            "cost": timing.cost_of(files, js) or {}})
    return points
