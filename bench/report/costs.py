"""Inference cost in the report, all here: the ratio columns of the task tables, the cost page,
the cost claims, the comparison at matched cost and the points of the quality-cost frontiers.

Every ratio comes from a side-by-side cost file (``python -m uqbench cost``, ``bench/timing.py``):
the entries of one (suite, task) built from their architecture and timed in one process,
interleaved, each time ratio the median over rounds with its 95 % interval. Each job's own timing
stays in its result as provenance only. The micro-benchmark of ``make cost-benchmark``
(``results/cost/*.json``, side by side within one run) is shown beside them. A post-processed
variant (``+TS``) costs what its entry costs: a division of the logits is free.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import calibration, claims
from ..results import ResultError
from ..timing import median_interval
from .tables import Cell, Column, Heading, Links, Page, Para, Ref, Row, Table, number, slug, text

CLAIMED_RATIO = 1.07  # Hydra's time relative to one model in bfloat16, as the paper states
TOLERANCE = 0.10  # relative slack before a measured ratio counts against the claim
TABLES = ("cpu", "float32")  # the cost files the task tables read
AXES = {"params": "Params ×", "flops": "FLOPs ×", "small": "Time × small batch", "large": "Time × large batch"}
COLUMNS = [Column(k, t) for k, t in AXES.items()]  # ratios to the reference entry, side by side
HEADLINE = ("params", "small", "large")  # the ratios the headline shows
BENCH = {"file": "File", "device": "Device, dtype", "scale": "Backbone", "batch": "Batch", "network": "Network",
         "median": "Median ms", "time": "Time × single", "flops": "FLOPs × single"}


class Timing(NamedTuple):
    """One network's median in a micro-benchmark file."""

    file: str
    device: str
    dtype: str
    scale: str
    batch: int
    method: str
    median_s: float
    flops: float


def load_timings(root: Path) -> list[Timing]:
    """Every timing in ``root/cost/*.json``; a malformed file raises ``ResultError`` naming it."""
    out = []
    for path in sorted((root / "cost").glob("*.json")):
        name = str(path.relative_to(root))
        try:
            for b in json.loads(path.read_text())["benchmarks"]:
                p, info = b["params"], b["extra_info"]
                out.append(Timing(name, str(info["device"]), str(info["dtype"]), str(p["scale"]), int(p["batch"]),
                                  str(p["name"]), float(b["stats"]["median"]), float(info.get("flops", math.nan))))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ResultError(f"{name}: not a cost-benchmark file ({type(e).__name__}: {e})") from e
    return out


def _runs(timings: list[Timing]) -> dict[tuple[str, str, int], dict[str, Timing]]:
    out: dict[tuple[str, str, int], dict[str, Timing]] = {}
    for t in timings:
        out.setdefault((t.file, t.scale, t.batch), {})[t.method] = t
    return out


# -- the side-by-side files -------------------------------------------------------------------
def find(files: list[dict], suite: str, task: str, where: tuple[str, str] = TABLES) -> dict | None:
    return next((f for f in files if (f["suite"], f["task"], f["device"], f["dtype"]) == (suite, task, *where)), None)


def costed_as(js: list[dict]) -> str:
    """The entry whose networks a result runs (a post-processed variant runs its entry's)."""
    return js[0]["method"].removesuffix(calibration.SUFFIX) if js[0].get("post_hoc") else js[0]["method"]


def ratios(f: dict, name: str) -> dict[str, tuple[float, float, float]] | None:
    """Each axis of ``AXES`` as (ratio, lo, hi) to the file's reference; params and FLOPs are exact."""
    rows = {r["name"]: r for r in f["entries"]}
    if name not in rows:
        return None
    me, ref = rows[name], rows[f["reference"]]

    def exact(key: str, fallback: str) -> float:
        return me.get(key, me[fallback]) / ref.get(key, ref[fallback])

    p, fl = exact("analytic_params", "params_count"), exact("analytic_flops", "flops")
    return {"params": (p, p, p), "flops": (fl, fl, fl), **{b: (me[b]["ratio"], me[b]["lo"], me[b]["hi"])
                                                             for b in ("small", "large")}}


def between(f: dict, a: str, b: str, batch: str) -> tuple[float, float, float]:
    """Entry ``a``'s time over entry ``b``'s at ``batch``, round by round: median and 95 % interval."""
    rows = {r["name"]: r for r in f["entries"]}
    return median_interval([x / y for x, y in zip(rows[a][batch]["rounds_s"], rows[b][batch]["rounds_s"])])


def _cell(r: tuple[float, float, float]) -> Cell:
    v, lo, hi = r
    return Cell(f"{v:.2f}" if lo == hi else f"{v:.2f} [{lo:.2f}, {hi:.2f}]", v, lo=lo, hi=hi)


def ratio_cells(files: list[dict], js: list[dict]) -> dict[str, Cell]:
    """Each cost column of one entry's row, from its (suite, task)'s CPU cost file."""
    f = find(files, js[0]["suite"], js[0]["task"])
    r = ratios(f, costed_as(js)) if f else None
    return {k: _cell(r[k]) if r else Cell("–") for k in AXES}


def sentence(files: list[dict], entry: str, js: list[dict]) -> str | None:
    """How costly ``entry`` is next to the reference, for the headline's answer."""
    f = find(files, js[0]["suite"], js[0]["task"])
    if not f or not (r := ratios(f, costed_as(js))):
        return None
    b = f["batch_sizes"]
    return (f"`{entry}` holds {r['params'][0]:.2f}× the parameters of `{f['reference']}` and computes "
            f"{r['flops'][0]:.2f}× its FLOPs; measured side by side ({f['device']}, {f['dtype']}, {f['threads']} "
            f"threads) it takes {_cell(r['small']).text}× its time at batch {b[0]} and {_cell(r['large']).text}× "
            f"at batch {b[1]} (95 % intervals over rounds).")


# -- the cost page ----------------------------------------------------------------------------
FILE = {"entry": "Method", "members": "M", "params": "Params (M)", "params_x": "Params ×", "mflops": "MFLOPs / sample",
        "flops_x": "FLOPs ×", "small": "ms, small batch", "small_x": "Time ×, small", "large": "ms / sample, large",
        "large_x": "Time ×, large", "efficiency": "Efficiency", "peak": "Peak MB"}


def _file_rows(f: dict, path: str) -> list[Row]:
    rows = []
    for e in (e for e in f["entries"] if e["kind"] != "candidate"):
        r = ratios(f, e["name"])
        cells = [text(e["name"], True), text(e["members"]), number(e["params_count"] / 1e6, ".3g"),
                 _cell(r["params"]), number(e.get("analytic_flops", e["flops"]) / 1e6, ".4g"), _cell(r["flops"]),
                 number(1000 * e["small"]["median_s"]), _cell(r["small"]),
                 number(1000 * e["large"]["per_sample_s"], ".3f"), _cell(r["large"]),
                 number(r["flops"][0] / r["large"][0]), number(e["peak_mem_mb"], ".0f")]
        rows.append(Row(dict(zip(FILE, cells)), f["suite"], f["task"], e["name"], e["method"], (path,)))
    return rows


def page(files: list[dict], timings: list[Timing]) -> Page:
    """The cost page: one table per side-by-side file, then the micro-benchmark."""
    out = Page("cost", "Inference cost", [Heading(1, "Inference cost"), Links("Back", [("leaderboard", Ref(""))]), Para(
        "`python -m uqbench cost`: every entry of a (suite, task) built from its architecture with random weights and "
        "timed in one process, interleaved round by round, on the same inputs and threads. Time × is the median of "
        "the per-round ratios to the reference model with its 95 % interval; `control` is a second copy of the "
        "reference (it must read 1.00, else the measurement is refused). Efficiency: the FLOP ratio over the time "
        "ratio at the large batch (1: as fast as the arithmetic allows).")])
    for f in files:
        path = f"cost/{f['suite']}/{f['task']}/{f['device']}-{f['dtype']}.json"
        load = f["cpu_load"]
        out.blocks += [Heading(2, f"`{f['task']}` ({f['suite']}), {f['device']} {f['dtype']}",
                               slug("cost", f["suite"], f["task"], f["device"], f["dtype"])), Para(
            f"{f['device_name']}, {f['threads'] or '–'} threads, batches {f['batch_sizes'][0]} and "
            f"{f['batch_sizes'][1]}, {f['rounds'][0]} and {f['rounds'][1]} rounds; CPU load per core "
            f"{load['start']:.2f} at the start and {load['end']:.2f} at the end; "
            f"{sum(e['kind'] == 'candidate' for e in f['entries'])} tuning candidates timed beside the entries "
            f"(on the frontiers); commit {f['provenance'].get('git_commit', '?')[:10]}."),
            Table([Column(*kv) for kv in FILE.items()], _file_rows(f, path), slug("cost-table", f["suite"], f["task"],
                                                                               f["device"], f["dtype"]))]
    if timings:
        rows = []
        for (file, scale, batch), nets in sorted(_runs(timings).items()):
            one = nets.get(claims.COST_BENCH_REFERENCE)
            for m, t in sorted(nets.items(), key=lambda kv: (kv[0] != claims.COST_BENCH_REFERENCE, kv[0])):
                cells = [text(file, True), text(f"{t.device}, {t.dtype}"), text(scale), text(batch), text(m, True),
                         number(1000 * t.median_s), number(t.median_s / one.median_s if one else math.nan),
                         number(t.flops / one.flops if one else math.nan)]
                rows.append(Row(dict(zip(BENCH, cells)), entry=m, files=(file,)))
        out.blocks += [Heading(2, "Micro-benchmark", "micro-benchmark"), Para(
            "`make cost-benchmark` (pytest-benchmark): the single model, a deep ensemble run member after member and "
            "fused Hydra on random weights, timed one after the other in one run."),
            Table([Column(*kv) for kv in BENCH.items()], rows, "cost-bench")]
    return out


# -- claims -----------------------------------------------------------------------------------
def _verdict(lo: float, hi: float, limit: float) -> str:
    return "holds" if hi <= limit else "does not hold" if lo > limit else "inconclusive"


def claim_rows(files: list[dict], timings: list[Timing]) -> list[list[Cell]]:
    """The cost claims (claim, task, measured, verdict): per side-by-side file, each Hydra entry's
    time against the reference's (the paper's 1.07x, for bfloat16 on a GPU) and against Deep
    Ensembles' (cheaper on every device), at both batch sizes with intervals over rounds; then the
    micro-benchmark's bfloat16 runs."""
    rows, limit, gpu = [], CLAIMED_RATIO * (1 + TOLERANCE), False
    for f in files:
        roles = {}
        for e in (e for e in f["entries"] if e["kind"] == "entry"):
            roles.setdefault(claims.role_of({"method": e["method"], **e["params"]}), []).append(e["name"])
        bf16 = f["device"] == "cuda" and f["dtype"] == "bfloat16"
        gpu |= bf16
        where = text(f"{f['task']} ({f['suite']}), {f['device']} {f['dtype']}")
        for h in roles.get(claims.SUBJECT, []):
            for ref, claim, bound in ((f["reference"], claims.COST_CLAIM, limit),
                                      *((d, claims.COST_VS_ENSEMBLE, 1.0) for d in roles.get(claims.ENSEMBLE, []))):
                cuts = {b: between(f, h, ref, b) for b in ("small", "large")}
                measured = "; ".join(f"batch {f['batch_sizes'][i]}: {_cell(c).text}×" for i, c in enumerate(cuts.values()))
                found = [_verdict(lo, hi, bound) for _, lo, hi in cuts.values()]
                v = next((x for x in ("does not hold", "inconclusive") if x in found), "holds")
                if bound == limit and not bf16:
                    v = f"not applicable ({v} at 1.07x with 10 % slack): the claim is for bfloat16 on a GPU"
                rows.append([text(claim), where, text(f"`{h}` over `{ref}`: {measured}"), text("", verdict=v)])
    for (file, scale, batch), nets in sorted(_runs(timings).items()):
        h, one = nets.get(claims.COST_BENCH_SUBJECT), nets.get(claims.COST_BENCH_REFERENCE)
        if h and one and h.dtype == "bfloat16":
            gpu, r = True, h.median_s / one.median_s
            rows.append([text(claims.COST_CLAIM), text(f"{scale}, batch {batch} (micro-benchmark)"),
                         text(f"Hydra {r:.2f}x single ({h.device}, {file}; no interval)"),
                         text("", verdict="holds" if r <= limit else "does not hold")])
    if not gpu:
        rows.append([text(claims.COST_CLAIM), text("all"), text("no bfloat16 GPU cost files"),
                     text("", verdict="not measurable here: no GPU was available to this benchmark's runs")])
    return rows


def cost_of(files: list[dict], js: list[dict]) -> dict[str, float] | None:
    """The point ratio on each axis of one entry's results (None where its task has no cost file)."""
    f = find(files, js[0]["suite"], js[0]["task"])
    r = ratios(f, costed_as(js)) if f else None
    return {k: v[0] for k, v in r.items()} if r else None


def matched(files: list[dict], by_entry: dict[str, list[dict]], hydra: str, axis: str, key: str,
            higher: bool) -> str | None:
    """The entry with the best mean ``key`` among those that cost no more than ``hydra`` on
    ``axis`` (Hydra entries and their variants left out), or None."""
    mine = cost_of(files, by_entry[hydra])
    if mine is None:
        return None
    best, score = None, -math.inf
    for e, js in sorted(by_entry.items()):
        c = cost_of(files, js)
        vals = [j["metrics"][key] for j in js if key in j["metrics"]]
        if (c is None or not vals or c[axis] > mine[axis]
                or claims.role_of(js[0]["params"]) == claims.SUBJECT):
            continue
        s = float(np.mean(vals)) * (1 if higher else -1)
        if s > score:
            best, score = e, s
    return best
