"""Inference cost in the report, all here so that another way of measuring replaces this module
alone: the ratio columns of the task tables, the cost page (each job's own measurement, and the
side-by-side micro-benchmark of ``make cost-benchmark`` read from ``results/cost/*.json``) and
the cost claim. Micro-benchmark ratios are taken within one file only: timings from different
runs or machines are not comparable."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

from .. import claims
from ..results import ResultError
from .tables import Cell, Column, Heading, Links, Page, Para, Ref, Row, Table, mean, number, text

CLAIMED_RATIO = 1.07  # Hydra's latency relative to one model in bfloat16, as the paper states
TOLERANCE = 0.10  # relative slack before a measured ratio counts against the claim
COLUMNS = [Column("params", "Params ×"), Column("analytic_flops", "FLOPs ×"), Column("latency_ms", "Latency ×"),
           Column("throughput", "Throughput ×")]  # ratios to the reference entry of the same task
HEADLINE = ("analytic_flops", "latency_ms")  # the ratios the headline shows
JOBS = {"suite": "Suite", "task": "Task", "entry": "Method", "device": "Device, dtype", "params": "Params (M)",
        "mflops": "MFLOPs / sample", "flops": "FLOPs × single", "latency": "Latency ms (time × single)",
        "throughput": "Throughput /s (time × single)", "efficiency": "Efficiency (latency / throughput)",
        "peak_mem": "Peak mem MB", "batch": "Batch (latency / throughput)", "cpu_load": "CPU load"}
BENCH = {"file": "File", "device": "Device, dtype", "scale": "Backbone", "batch": "Batch", "network": "Network",
         "members": "Members", "median": "Median ms", "time": "Time × single", "flops": "FLOPs × single",
         "efficiency": "Efficiency", "rate": "Samples / s"}


class Timing(NamedTuple):
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


def load_timings(root: Path) -> list[Timing]:
    """Every timing in ``root/cost/*.json``; a malformed file raises ``ResultError`` naming it."""
    out = []
    for path in sorted((root / "cost").glob("*.json")):
        name = str(path.relative_to(root))
        try:
            for b in json.loads(path.read_text())["benchmarks"]:
                p, info = b["params"], b["extra_info"]
                out.append(Timing(name, str(info["device"]), str(info["dtype"]), str(p["scale"]), int(p["batch"]),
                                  str(p["name"]), int(info["members"]), float(b["stats"]["median"]),
                                  float(info.get("flops", math.nan)), bool(info.get("compiled", False))))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ResultError(f"{name}: not a cost-benchmark file ({type(e).__name__}: {e})") from e
    return out


def _runs(timings: list[Timing]) -> dict[tuple[str, str, int], dict[str, Timing]]:
    """The timings by (file, backbone, batch), then by network."""
    out: dict[tuple[str, str, int], dict[str, Timing]] = {}
    for t in timings:
        out.setdefault((t.file, t.scale, t.batch), {})[t.method] = t
    return out


def verdict(ratio: float) -> str:
    return "holds" if ratio <= CLAIMED_RATIO * (1 + TOLERANCE) else "does not hold"


def _ratio(js: list[dict], reference: list[dict], key: str) -> float:
    ref = mean([j["cost"].get(key, math.nan) for j in reference])
    return mean([j["cost"].get(key, math.nan) for j in js]) / ref if ref else math.nan


def ratio_cells(js: list[dict], reference: list[dict]) -> dict[str, Cell]:
    """Each cost column's ratio of one entry's jobs to the reference entry's."""
    return {c.key: number(_ratio(js, reference, c.key)) for c in COLUMNS}


def sentence(entry: str, js: list[dict], reference: list[dict], where: str) -> str:
    """How costly ``entry`` is next to the reference, for the headline's answer."""
    r = ratio_cells(js, reference)
    return (f"`{entry}` computes {r['analytic_flops'].text}× the single model's FLOPs and takes "
            f"{r['latency_ms'].text}× its latency ({where}; each job timed on its own, so time ratios are rough: "
            "see the cost page).")


def _job_rows(jobs: list[dict], device) -> list[Row]:
    """Per (suite, task, device, dtype) and entry: absolute cost, time ratios and efficiency."""
    groups: dict[tuple, list[dict]] = {}
    for j in (j for j in jobs if "latency_ms" in j["cost"]):  # entries scored from saved predictions have no cost
        groups.setdefault((j["suite"], j["task"], device(j), str(j["cost"].get("dtype", "?"))), []).append(j)
    rows = []
    for (suite, task, dev, dtype), js in sorted(groups.items()):
        entries, one = claims.entries_by_role(js)[1], claims.reference_entry(js)
        for e in sorted(entries, key=lambda e: (e != one, e)):
            mine, ref = entries[e], entries.get(one, [])
            c = {k: mean([j["cost"].get(k, math.nan) for j in mine])
                 for k in ("params", "analytic_flops", "latency_ms", "throughput", "peak_mem_mb", "cpu_load")}
            flops, small = _ratio(mine, ref, "analytic_flops"), _ratio(mine, ref, "latency_ms")
            large = 1 / _ratio(mine, ref, "throughput")
            cells = [text(suite, True), text(task, True), text(e, True), text(f"{dev}, {dtype}"),
                     text(f"{c['params'] / 1e6:.3g}"), number(c["analytic_flops"] / 1e6, ".4g"),
                     number(flops, ".2f", "×"),
                     Cell(f"{c['latency_ms']:.2f} ({number(small, '.2f', '×').text})", c["latency_ms"]),
                     Cell(f"{c['throughput']:.0f} ({number(large, '.2f', '×').text})", c["throughput"]),
                     text(f"{number(flops / small).text} / {number(flops / large).text}"),
                     number(c["peak_mem_mb"], ".0f"),
                     text(f"{mine[0]['cost'].get('batch_small')} / {mine[0]['cost'].get('batch_large')}"),
                     number(c["cpu_load"], ".1f")]
            rows.append(Row(dict(zip(JOBS, cells)), suite, task, e, mine[0]["params"].get("method", ""),
                            tuple(j["_path"] for j in mine)))
    return rows


def _bench_rows(timings: list[Timing]) -> list[Row]:
    """Per file, backbone, batch and network: median time, its ratio to the single network, the
    analytic FLOP ratio and their quotient (efficiency: 1 = as fast as the arithmetic allows)."""
    rows, one_name = [], claims.COST_BENCH_REFERENCE
    for (file, scale, batch), nets in sorted(_runs(timings).items()):
        one = nets.get(one_name)
        for m, t in sorted(nets.items(), key=lambda kv: (kv[0] != one_name, kv[0])):
            time, flops = (t.median_s / one.median_s, t.flops / one.flops) if one else (math.nan, math.nan)
            cells = [text(file, True), text(f"{t.device}, {t.dtype}"), text(scale), text(batch),
                     text(m + (" (compiled)" if t.compiled else ""), True), text(t.members), number(1000 * t.median_s),
                     number(time, ".2f", "×"), number(flops, ".2f", "×"), number(flops / time),
                     number(batch / t.median_s, ".0f")]
            rows.append(Row(dict(zip(BENCH, cells)), entry=m, files=(file,)))
    return rows


def page(jobs: list[dict], timings: list[Timing], device) -> Page:
    """The cost page: every job's own measurement, then the micro-benchmark."""
    out = Page("cost", "Inference cost", [Heading(1, "Inference cost"), Links("Back", [("leaderboard", Ref(""))])])
    if rows := _job_rows(jobs, device):
        out.blocks += [Para(
            "Measured in the same run as each result, median of repeats after warm-up (how: README, 'What the "
            "leaderboard reports'). Time × single is the latency ratio at the small batch and the inverse throughput "
            "ratio at the large one; efficiency is the FLOP ratio over the time ratio (1: as fast as the arithmetic "
            "allows). CPU load is the load average per core as the measurement began: well above 1, other work "
            "competed and the timings are inflated."), Table([Column(*kv) for kv in JOBS.items()], rows, "cost-jobs")]
    if timings:
        out.blocks += [Heading(2, "Side-by-side micro-benchmark", "micro-benchmark"), Para(
            "`make cost-benchmark` (`tests/test_cost_benchmark.py`, pytest-benchmark, median of rounds): the single "
            "model, a deep ensemble run member after member and fused Hydra networks on random weights, all timed in "
            "one run on one machine (the networks: README, 'Where the fused Hydra's time goes')."),
            Table([Column(*kv) for kv in BENCH.items()], _bench_rows(timings), "cost-bench")]
    return out


def claim_rows(groups: list[tuple[str, str, list[dict]]], timings: list[Timing], device) -> list[list[Cell]]:
    """The cost claim's rows (claim, task, measured, verdict): Hydra's latency ratios per (suite,
    task) of the claims and per micro-benchmark run; bfloat16 on a GPU alone is evidence."""
    rows, measured, claim = [], False, text(claims.COST_CLAIM)
    for suite, task, sub in groups:
        roles, entries = claims.entries_by_role(sub)
        ref = entries.get(claims.reference_entry(sub), [])
        if math.isnan(mean([j["cost"]["latency_ms"] for j in ref])):
            continue
        ratios = {e: _ratio(entries[e], ref, "latency_ms") for e in roles[claims.SUBJECT]}
        dtype, dev = sorted({j["cost"].get("dtype", "?") for j in sub}), sorted({device(j) for j in sub})
        if gpu := "bfloat16" in dtype:
            found = {e: verdict(r) for e, r in ratios.items()}
            v = next(iter(found.values())) if len(set(found.values())) == 1 else \
                "; ".join(f"{e}: {x}" for e, x in found.items())
        measured |= gpu
        shown = ", ".join(f"{e} {r:.2f}x" for e, r in ratios.items())
        rows.append([claim, text(f"{task} ({suite})"), text(f"Hydra latency {shown} single ({', '.join(dev)}, "
                                                             f"{', '.join(dtype)})"), text("", verdict=v if gpu else
                     "not applicable: CPU float32, shown for reference (the claim is for bfloat16 on a GPU)")])
    for (file, scale, batch), nets in sorted(_runs(timings).items()):
        h, one = nets.get(claims.COST_BENCH_SUBJECT), nets.get(claims.COST_BENCH_REFERENCE)
        if h and one and h.dtype == "bfloat16":
            measured, r = True, h.median_s / one.median_s
            rows.append([claim, text(f"{scale}, batch {batch} (micro-benchmark)"),
                         text(f"Hydra {r:.2f}x single ({h.device}, {h.dtype}, {file})"), text("", verdict=verdict(r))])
    if not measured:
        rows.append([claim, text("all"), text("no GPU result files"),
                     text("", verdict="not measurable here: no GPU was available to this benchmark's runs")])
    return rows
