"""Figures from result files: reliability diagrams, risk-coverage curves, quality against cost,
and hyper-parameter dials.

One PNG of each kind per (suite, task) under ``results/figures/``. Where a suite holds three or
more entries of one registered method that differ in exactly one hyper-parameter (Hydra's
``fork_layer``, say), a dial figure plots the measured cost of each setting against its OOD
AUROC and ECE, seeds as error bars. Curves pool every seed's
logits from the results folder alone, so every machine draws the same figures; methods whose
logits are kept only in the local cache (files over the size limit) are left out and named.
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import catalogue, claims, metrics, results  # noqa: E402
from ..scoring import softmax  # noqa: E402

OOD = f"ood_mean/auroc_{catalogue.DEFAULT_SCORE}"


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


def _quality_cost(by_method: dict[str, list[dict]], reference: str | None, title: str):
    ref = np.mean([j["cost"]["latency_ms"] for j in by_method.get(reference, [])] or [math.nan])
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    for m, js in by_method.items():
        x = np.mean([j["cost"].get("latency_ms", math.nan) for j in js]) / ref
        for ax, key in zip(axes, (OOD, "test/nll")):
            vals = [j["metrics"][key] for j in js if key in j["metrics"]]
            if vals and not math.isnan(x):
                ax.errorbar(x, np.mean(vals), yerr=np.std(vals) if len(vals) > 1 else None, fmt="o", capsize=3)
                ax.annotate(m, (x, np.mean(vals)), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for ax, label in zip(axes, ("OOD AUROC (MSP, mean over sets) ↑", catalogue.arrow("test/nll"))):
        ax.set_xlabel("latency relative to single model")
        ax.set_ylabel(label)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def sweep(by_method: dict[str, list[dict]]) -> tuple[str, dict[object, list[dict]]] | None:
    """``(parameter, {value: jobs})`` when at least three entries of one registered method differ
    in exactly that hyper-parameter, else None."""
    by_registered: dict[str, list[list[dict]]] = defaultdict(list)
    for js in by_method.values():
        by_registered[js[0]["params"]["method"]].append(js)
    for _, groups in sorted(by_registered.items()):
        params = [g[0]["params"] for g in groups]
        varying = [k for k in sorted({k for p in params for k in p})
                   if len({json.dumps(p.get(k)) for p in params}) > 1]
        if len(groups) >= 3 and len(varying) == 1:
            return varying[0], dict(sorted((p[varying[0]], g) for p, g in zip(params, groups)))
    return None


def _time_ratios(js: list[dict], single: dict[int, dict]) -> list[float]:
    """Per seed: the job's time per sample at the large batch over the same seed's single model's."""
    return [single[j["seed"]]["cost"]["throughput"] / j["cost"]["throughput"] for j in js if j["seed"] in single]


def _dial(param: str, by_value: dict[object, list[dict]], single: dict[int, dict], title: str):
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    flops_ref = np.mean([j["cost"].get("analytic_flops", math.nan) for j in single.values()] or [math.nan])
    labels = ("OOD AUROC (MSP, mean over sets) ↑", catalogue.arrow("test/ece"))
    for ax, key, label in zip(axes, (OOD, "test/ece"), labels):
        xs, ys = [], []
        for value, js in by_value.items():
            t, v = _time_ratios(js, single), [j["metrics"][key] for j in js if key in j["metrics"]]
            if not t or not v:
                continue
            x, y = float(np.mean(t)), float(np.mean(v))
            ax.errorbar(x, y, xerr=np.std(t) if len(t) > 1 else None, yerr=np.std(v) if len(v) > 1 else None,
                        fmt="o", color="C0", capsize=3)
            flops = np.mean([j["cost"].get("analytic_flops", math.nan) for j in js]) / flops_ref
            if not math.isnan(flops):
                ax.plot(flops, y, "o", mfc="none", color="C1")
            ax.annotate(f"{param}={value}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            xs.append(x)
            ys.append(y)
        ax.plot(xs, ys, "-", color="C0", linewidth=0.6)
        ax.set_xlabel("time per sample at the large batch, × single model")
        ax.set_ylabel(label)
    axes[0].plot([], [], "o", color="C0", label="measured (mean ± sd over seeds)")
    axes[0].plot([], [], "o", mfc="none", color="C1", label="analytic FLOP ratio")
    axes[0].legend(fontsize=7)
    loads = [j["cost"]["cpu_load"] for js in by_value.values() for j in js if j["cost"].get("cpu_load") is not None]
    if loads:  # timings under load are inflated unevenly: say so on the figure
        title += f"\nCPU load per core while timing: {min(loads):.1f} to {max(loads):.1f} (above 1, times are inflated)"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def make_all(root: Path, jobs: list[dict]) -> dict[tuple[str, str], dict[str, str]]:
    """Draw every figure; returns {(suite, task): {title: path relative to ``root``}}."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for j in jobs:
        groups[(j["suite"], j["task"])][j["method"]].append(j)
    out: dict[tuple[str, str], dict[str, str]] = {}
    fig_dir = root / "figures"
    for (suite, task), by_method in sorted(groups.items()):
        one = claims.reference_entry([j for js in by_method.values() for j in js])
        by_method = dict(sorted(by_method.items(), key=lambda kv: (kv[0] != one, kv[0])))
        made = {}
        stem = f"{suite}__{task}"
        pooled = {m: p for m, js in by_method.items() if (p := _pooled_test_probs(root, js)) is not None}
        left_out = [m for m in by_method if m not in pooled]
        note = f"\n(not drawn, logits not in the results folder: {', '.join(left_out)})" if left_out else ""
        drawers = {"quality-vs-cost": lambda: _quality_cost(by_method, one, f"{task} ({suite}): quality against cost")}
        dial = sweep(by_method)
        if dial and one in by_method:
            single = {j["seed"]: j for j in by_method[one]}
            drawers[f"{dial[0]}-dial"] = lambda: _dial(*dial, single, f"{task} ({suite}): the {dial[0]} dial")
        if pooled:
            drawers["reliability"] = lambda: _reliability(pooled, f"{task} ({suite}): reliability{note}")
            drawers["risk-coverage"] = lambda: _risk_coverage(pooled, f"{task} ({suite}): risk-coverage{note}")
        for name, draw in drawers.items():
            path = fig_dir / f"{stem}__{name}.png"
            save(draw(), path)
            made[name] = path.relative_to(root).as_posix()
        out[(suite, task)] = made
    return out
