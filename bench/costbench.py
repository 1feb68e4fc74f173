"""Side-by-side inference-cost micro-benchmarks for the leaderboard.

``make cost-benchmark`` (``tests/test_cost_benchmark.py``, pytest-benchmark) times the single
model, a deep ensemble and fused Hydra variants on random weights in one run; its JSON output,
saved under ``results/cost/``, is read here. Ratios are only ever taken within one file, since
timings from different runs or machines are not comparable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from uqbench.bench.claims import COST_BENCH_REFERENCE, COST_BENCH_SUBJECT
from uqbench.bench.results import ResultError

CLAIMED_RATIO = 1.07  # Hydra's latency relative to one model in bfloat16, as the paper states
TOLERANCE = 0.10  # relative slack before a measured ratio counts against the claim


@dataclass(frozen=True)
class Timing:
    file: str
    device: str
    dtype: str
    scale: str
    batch: int
    method: str
    members: int
    median_s: float
    flops: float  # analytic forward FLOPs per sample (NaN in files written before they were recorded)
    compiled: bool


def load(root: Path) -> list[Timing]:
    """Every timing in ``root/cost/*.json``; a malformed file raises ``ResultError`` naming it."""
    out = []
    for path in sorted((root / "cost").glob("*.json")):
        name = str(path.relative_to(root))
        try:
            data = json.loads(path.read_text())
            for b in data["benchmarks"]:
                p, info = b["params"], b["extra_info"]
                out.append(Timing(name, str(info["device"]), str(info["dtype"]), str(p["scale"]),
                                  int(p["batch"]), str(p["name"]), int(info["members"]), float(b["stats"]["median"]),
                                  float(info.get("flops", math.nan)), bool(info.get("compiled", False))))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ResultError(f"{name}: not a cost-benchmark file ({type(e).__name__}: {e})") from e
    return out


def _groups(timings: list[Timing]) -> dict[tuple[str, str, int], dict[str, Timing]]:
    groups: dict[tuple[str, str, int], dict[str, Timing]] = {}
    for t in timings:
        groups.setdefault((t.file, t.scale, t.batch), {})[t.method] = t
    return groups


def ratios(timings: list[Timing]) -> list[tuple[Timing, float]]:
    """``(timing of Hydra, its median / the single model's)`` for every file, scale and batch."""
    hydra, one = COST_BENCH_SUBJECT, COST_BENCH_REFERENCE
    out = []
    for by_method in _groups(timings).values():
        if hydra in by_method and one in by_method:
            out.append((by_method[hydra], by_method[hydra].median_s / by_method[one].median_s))
    return out


def verdict(ratio: float) -> str:
    return "holds" if ratio <= CLAIMED_RATIO * (1 + TOLERANCE) else "does not hold"


HEADER = ["File", "Device, dtype", "Backbone", "Batch", "Network", "Members", "Median ms", "Time × single",
          "FLOPs × single", "Efficiency", "Samples / s"]


def _ratio(v: float, prefix: str = "") -> str:
    return "–" if math.isnan(v) else f"{prefix}{v:.2f}"


def table_rows(timings: list[Timing]) -> list[list[str]]:
    """One row per file, backbone, batch and network: median time, its ratio to ``single``, the
    analytic FLOP ratio and their quotient (efficiency: 1 = as fast as the arithmetic allows)."""
    rows = []
    for (file, scale, batch), by_method in sorted(_groups(timings).items()):
        one = by_method.get(COST_BENCH_REFERENCE)
        for m in sorted(by_method, key=lambda m: (m != COST_BENCH_REFERENCE, m)):
            t = by_method[m]
            time = t.median_s / one.median_s if one else math.nan
            flops = t.flops / one.flops if one else math.nan
            net = f"`{m}`" + (" (compiled)" if t.compiled else "")
            rows.append([f"`{file}`", f"{t.device}, {t.dtype}", scale, str(batch), net, str(t.members),
                         f"{1000 * t.median_s:.2f}", _ratio(time, "×"), _ratio(flops, "×"), _ratio(flops / time),
                         f"{batch / t.median_s:.0f}"])
    return rows
