"""Figures from result files: reliability diagrams, risk-coverage curves and quality-cost
frontiers, under ``results/figures/``.

Per (suite, task): a reliability diagram and risk-coverage curves, pooling every seed's logits
from the results folder alone (entries whose logits stay in a local cache are left out and
named), so every machine draws the same figures. Per side-by-side cost file and cost axis: NLL,
ECE and near- and far-OOD AUROC against the cost ratio of every entry (seeds as error bars), of
each ensemble's first members and of every tuning candidate, the Pareto front marked.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import catalogue, claims, metrics, results  # noqa: E402
from . import costs  # noqa: E402
from .inputs import by_entry  # noqa: E402
from ..scoring import softmax  # noqa: E402

def save(fig, path: Path) -> None:
    """Write ``fig`` as a PNG without a timestamp or version (the same inputs give the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    results.write_atomic(path, buf.getvalue())


def _pooled_test_probs(root: Path, jobs: list[dict]) -> tuple[np.ndarray, np.ndarray] | None:
    probs, labels = [], []
    for j in sorted(jobs, key=lambda j: j["seed"]):
        if j["logits"].startswith("cache:"):
            return None
        path = results.logits_location(root, j["logits"])
        if not path.exists():
            return None
        lg, lb = results.load_logits(path)
        probs.append(softmax(lg["test"]).mean(0))
        labels.append(lb["test"])
    return np.concatenate(probs), np.concatenate(labels)


def _reliability(pooled: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    n = len(pooled)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax, (m, (p, y)) in zip(axes.flat, pooled.items()):
        c = metrics.reliability_curve(p, y)
        centers = (c["lower"] + c["upper"]) / 2
        width = c["upper"] - c["lower"]
        acc = np.nan_to_num(c["accuracy"])
        ax.bar(centers, acc, width=width, edgecolor="k", linewidth=0.4, label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", linewidth=0.8)
        ece = metrics.compute(p, y)["ece"]
        ax.set_title(f"{m} (ECE {ece:.3f})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _risk_coverage(pooled: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, (p, y) in pooled.items():
        cov, risk = metrics.risk_coverage_curve(p, y)
        ax.plot(cov, risk, label=f"{m} (AURC {metrics.compute(p, y)['aurc']:.3f})", linewidth=1)
    ax.set_xlabel("coverage")
    ax.set_ylabel("risk (error rate)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


FRONTIER = ("test/nll", "test/ece", "ood_near/auroc_msp", "ood_far/auroc_msp")


class Point(NamedTuple):
    label: str
    kind: str  # "entry", "candidate" (a tuning candidate, seed 0) or "sweep" (an ensemble's first members)
    cost: dict[str, float]  # ratio to the reference per axis
    values: dict[str, tuple[float, float]]  # metric key -> (mean, sd over seeds)


def _stat(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else 0.0


def points(files: list[dict], jobs: list[dict], records: list[dict], f: dict) -> list[Point]:
    """Every entry of ``f``'s (suite, task) (the ``+TS`` variants included), the first m members of
    each ensemble whose members run one pass each (from ``rescore``'s sweeps: cost scaled by m/M,
    parameters too where each member holds its own network) and every tuning candidate timed."""
    out = []
    rows = {r["name"]: r for r in f["entries"]}
    for e, js in sorted(by_entry(j for j in jobs if (j["suite"], j["task"]) == (f["suite"], f["task"])).items()):
        if (cost := costs.cost_of([f], js)) is None:
            continue
        out.append(Point(e, "entry", cost, {k: _stat(v) for k in FRONTIER if (v := [j["metrics"][k] for j in js
                                                                                    if k in j["metrics"]])}))
        row, k_all = rows[costs.costed_as(js)], js[0]["cost"].get("members", 1)
        if js[0].get("post_hoc") or row["passes"] != k_all:
            continue  # a fused network computes all its members at once: no cheaper part
        for m in range(1, k_all):
            scale = {a: m / k_all for a in cost} | ({} if row["networks_held"] == k_all else {"params": 1.0})
            vals = {k: _stat(v) for k in FRONTIER if (v := [j["sweep"][str(m)][k] for j in js
                                                            if k in j.get("sweep", {}).get(str(m), {})])}
            if vals:
                out.append(Point(f"{e} ({m} of {k_all})", "sweep", {a: cost[a] * scale[a] for a in cost}, vals))
    done = {(r["suite"], r["task"], c["name"]): c for r in records for c in r["candidates"]}
    for c in f["candidates"]:
        found = done.get((f["suite"], f["task"], c["candidate"]), {}).get("_results", [])
        if found and (r := costs.ratios(f, c["timed_as"])):
            out.append(Point(c["candidate"], "candidate", {a: v[0] for a, v in r.items()},
                             {k: (found[0]["metrics"][k], 0.0) for k in FRONTIER if k in found[0]["metrics"]}))
    return out


def pareto(pts: list[Point], axis: str, key: str) -> list[Point]:
    """The points no other point beats: at most its cost on ``axis`` and better on ``key``."""
    sign = 1 if catalogue.higher(key) else -1
    have = [p for p in pts if key in p.values]
    return sorted((p for p in have if not any(
        q.cost[axis] <= p.cost[axis] and sign * q.values[key][0] >= sign * p.values[key][0]
        and (q.cost[axis], q.values[key][0]) != (p.cost[axis], p.values[key][0]) for q in have)),
        key=lambda p: p.cost[axis])


def _frontier(pts: list[Point], axis: str, title: str):
    keys = [k for k in FRONTIER if any(k in p.values for p in pts)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.8), squeeze=False)
    axes = axes[0]
    style = {"entry": dict(fmt="o", ms=5), "sweep": dict(fmt="^", ms=4, color="0.45"),
             "candidate": dict(fmt="s", ms=4, mfc="none", color="0.6")}
    for ax, key in zip(axes, keys):
        for p in (p for p in pts if key in p.values):
            y, sd = p.values[key]
            ax.errorbar(p.cost[axis], y, yerr=sd or None, capsize=2, **style[p.kind])
            if p.kind != "candidate":
                ax.annotate(p.label, (p.cost[axis], y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = pareto(pts, axis, key)
        ax.step([p.cost[axis] for p in front], [p.values[key][0] for p in front], "r-", where="post", lw=0.8)
        ax.plot([p.cost[axis] for p in front], [p.values[key][0] for p in front], "o", ms=9, mfc="none", color="r")
        ax.set_xscale("log")
        ax.set_xlabel(f"{costs.AXES[axis]} (log scale)", fontsize=8)
        ax.set_ylabel(catalogue.arrow(key), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].plot([], [], "o", label="entry (mean ± sd over seeds)")
    axes[0].plot([], [], "^", color="0.45", label="first m members (rescore sweep)")
    axes[0].plot([], [], "s", mfc="none", color="0.6", label="tuning candidate (seed 0)")
    axes[0].plot([], [], "r-o", mfc="none", label="Pareto front")
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def make_all(root: Path, jobs: list[dict], files: list[dict], records: list[dict]) -> dict[tuple[str, str], dict[str, str]]:
    """Draw every figure; returns {(suite, task): {title: path relative to ``root``}}."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for j in jobs:
        groups[(j["suite"], j["task"])][j["method"]].append(j)
    out: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for (suite, task), by_method in sorted(groups.items()):
        one = claims.reference_entry([j for js in by_method.values() for j in js])
        by_method = {m: js for m, js in sorted(by_method.items(), key=lambda kv: (kv[0] != one, kv[0]))
                     if not js[0].get("post_hoc")}
        pooled = {m: p for m, js in by_method.items() if (p := _pooled_test_probs(root, js)) is not None}
        left_out = [m for m in by_method if m not in pooled]
        note = f"\n(not drawn, logits not in the results folder: {', '.join(left_out)})" if left_out else ""
        if pooled:
            out[(suite, task)]["reliability"] = _draw(root, f"{suite}__{task}__reliability", lambda: _reliability(
                pooled, f"{task} ({suite}): reliability{note}"))
            out[(suite, task)]["risk-coverage"] = _draw(root, f"{suite}__{task}__risk-coverage", lambda: _risk_coverage(
                pooled, f"{task} ({suite}): risk-coverage{note}"))
    for f in files:
        pts, where = points(files, jobs, records, f), f"{f['device']}-{f['dtype']}"
        axes = list(costs.AXES) if (f["device"], f["dtype"]) == costs.TABLES else ["small", "large"]
        for axis in axes if pts else ():
            name = f"frontier-{axis}" + ("" if where == "-".join(costs.TABLES) else f"-{where}")
            title = (f"{f['task']} ({f['suite']}): quality against {costs.AXES[axis].lower()} ({where}, side by side; "
                     f"batches {f['batch_sizes'][0]} and {f['batch_sizes'][1]})")
            out[(f["suite"], f["task"])][name] = _draw(root, f"{f['suite']}__{f['task']}__{name}",
                                                       lambda: _frontier(pts, axis, title))
    return dict(out)


def _draw(root: Path, stem: str, draw) -> str:
    path = root / "figures" / f"{stem}.png"
    save(draw(), path)
    return path.relative_to(root).as_posix()
