"""Figures from result files, under ``results/figures/``: per (suite, task) a reliability diagram
and risk-coverage curves, pooling every seed's logits from the results folder alone (entries whose
logits stay in a local cache are left out and named); per side-by-side cost file and cost axis,
the quality-cost frontier of ``bench/frontier.py``, its Pareto front marked."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import catalogue, frontier, metrics, results, timing  # noqa: E402
from ..scoring import softmax  # noqa: E402
from .costs import AXES  # noqa: E402
from .inputs import ordered  # noqa: E402


def save(fig, path: Path) -> None:
    """Lay ``fig`` out and write it as a PNG without a timestamp or version: same inputs, same bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    results.write_atomic(path, buf.getvalue())


def _pooled_test_probs(root: Path, jobs: list[dict]) -> tuple[np.ndarray, np.ndarray] | None:
    probs, labels = [], []
    for j in sorted(jobs, key=lambda j: j["seed"]):
        path = None if j["logits"].startswith("cache:") else results.logits_location(root, j["logits"])
        if path is None or not path.exists():
            return None
        lg, lb = results.load_logits(path)
        probs.append(softmax(lg["test"]).mean(0))
        labels.append(lb["test"])
    return np.concatenate(probs), np.concatenate(labels)


def _reliability(pooled: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    n, cols = len(pooled), min(len(pooled), 4)
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(3 * cols, 3 * math.ceil(n / cols)), squeeze=False)
    for ax, (m, (p, y)) in zip(axes.flat, pooled.items()):
        c = metrics.reliability_curve(p, y)
        ax.bar((c["lower"] + c["upper"]) / 2, np.nan_to_num(c["accuracy"]), width=c["upper"] - c["lower"],
               edgecolor="k", linewidth=0.4, label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", linewidth=0.8)
        ax.set_title(f"{m} (ECE {metrics.compute(p, y)['ece']:.3f})", fontsize=8)
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.set_xlabel("confidence", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return fig


def _risk_coverage(pooled: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, (p, y) in pooled.items():
        ax.plot(*metrics.risk_coverage_curve(p, y), label=f"{m} (AURC {metrics.compute(p, y)['aurc']:.3f})",
                linewidth=1)
    ax.set(xlabel="coverage", ylabel="risk (error rate)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


STYLE = {"entry": dict(fmt="o", ms=5), "sweep": dict(fmt="^", ms=4, color="0.45"),
         "candidate": dict(fmt="s", ms=4, mfc="none", color="0.6")}


def _frontier(pts: list[frontier.Point], axis: str, title: str):
    keys = [k for k in frontier.KEYS if any(k in p.values for p in pts)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for p in (p for p in pts if key in p.values):
            y, sd = p.values[key]
            ax.errorbar(p.cost[axis], y, yerr=sd or None, capsize=2, **STYLE[p.kind])
            if p.kind != "candidate":
                ax.annotate(p.label, (p.cost[axis], y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        x, y = zip(*((p.cost[axis], p.values[key][0]) for p in frontier.pareto(pts, axis, key)))
        ax.step(x, y, "r-", where="post", lw=0.8)
        ax.plot(x, y, "o", ms=9, mfc="none", color="r")
        ax.set_xscale("log")
        ax.set_xlabel(f"{AXES[axis]} (log scale)", fontsize=8)
        ax.set_ylabel(catalogue.arrow(key), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].plot([], [], "o", label="entry (mean ± sd over seeds)")
    axes[0][0].plot([], [], "^", color="0.45", label="first m members (rescore sweep)")
    axes[0][0].plot([], [], "s", mfc="none", color="0.6", label="tuning candidate (seed 0)")
    axes[0][0].plot([], [], "r-o", mfc="none", label="Pareto front")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return fig


def make_all(root: Path, jobs: list[dict], files: list[dict], records: list[dict]) -> dict[tuple, dict[str, str]]:
    """Draw every figure; returns {(suite, task): {title: path relative to ``root``}}."""
    out: dict[tuple[str, str], dict[str, str]] = {}

    def draw(suite: str, task: str, name: str, fig) -> None:
        save(fig, root / "figures" / f"{suite}__{task}__{name}.png")
        out.setdefault((suite, task), {})[name] = f"figures/{suite}__{task}__{name}.png"

    for suite, task in sorted({(j["suite"], j["task"]) for j in jobs}):
        tj = [j for j in jobs if (j["suite"], j["task"]) == (suite, task)]
        by_method = {m: js for m, js in ordered(tj) if not js[0].get("post_hoc")}
        pooled = {m: p for m, js in by_method.items() if (p := _pooled_test_probs(root, js)) is not None}
        left_out = [m for m in by_method if m not in pooled]
        note = f"\n(not drawn, logits not in the results folder: {', '.join(left_out)})" if left_out else ""
        for name, plot in (("reliability", _reliability), ("risk-coverage", _risk_coverage)) if pooled else ():
            draw(suite, task, name, plot(pooled, f"{task} ({suite}): {name}{note}"))
    for f in files:
        where, main = f"{f['device']}-{f['dtype']}", (f["device"], f["dtype"]) == timing.TABLE
        for axis in (AXES if main else ("small", "large")) if (pts := frontier.points(f, jobs, records)) else ():
            draw(f["suite"], f["task"], f"frontier-{axis}" + ("" if main else f"-{where}"),
                 _frontier(pts, axis, f"{f['task']} ({f['suite']}): quality against {AXES[axis].lower()} ({where}, "
                           f"side by side; batches {f['batch_sizes'][0]} and {f['batch_sizes'][1]})"))
    return out
