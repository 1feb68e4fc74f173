"""Inference cost in the report: the ratio columns of the task tables, the cost page and the cost
claims, every ratio from a side-by-side cost file (``bench/timing.py``; a job's own timing is
provenance only), with the micro-benchmark of ``make cost-benchmark`` beside them."""

from __future__ import annotations

import math

from .. import claims, timing
from .tables import Cell, Heading, Page, Para, Row, Table, detail, number, slug, text

AXES = {"params": "Params ×", "flops": "FLOPs ×", "small": "Time × small batch", "large": "Time × large batch"}
HEADLINE = ("params", "small", "large")  # the ratios the headline shows
FILE = {"entry": "Method", "members": "M", "params": "Params (M)", "params_x": "Params ×", "mflops": "MFLOPs / sample",
        "flops_x": "FLOPs ×", "small": "ms, small batch", "small_x": "Time ×, small", "large": "ms / sample, large",
        "large_x": "Time ×, large", "efficiency": "Efficiency", "peak": "Peak MB"}
BENCH = {"file": "File", "device": "Device, dtype", "scale": "Backbone", "batch": "Batch", "network": "Network",
         "median": "Median ms", "time": "Time × single", "flops": "FLOPs × single"}


def ratio(r: tuple[float, float, float]) -> Cell:
    """A ratio with its interval (none where it is exact)."""
    v, lo, hi = r
    return Cell(f"{v:.2f}" if lo == hi else f"{v:.2f} [{lo:.2f}, {hi:.2f}]", v, lo=lo, hi=hi)


def ratio_cells(files: list[dict], js: list[dict]) -> dict[str, Cell]:
    """Each cost column of one entry's row."""
    r = timing.entry_cost(files, js)[1]
    return {k: ratio(r[k]) if r else Cell("–") for k in AXES}


def sentence(files: list[dict], entry: str, js: list[dict]) -> str | None:
    """How costly ``entry`` is next to the reference, for the headline's answer."""
    f, r = timing.entry_cost(files, js)
    return (f"`{entry}` holds {r['params'][0]:.2f}× the parameters of `{f['reference']}` and computes "
            f"{r['flops'][0]:.2f}× its FLOPs; measured side by side ({timing.setting(f)}) "
            f"it takes {ratio(r['small']).text}× its time at batch {f['batch_sizes'][0]} and "
            f"{ratio(r['large']).text}× at batch {f['batch_sizes'][1]} (95 % intervals over rounds).") if r else None


def page(files: list[dict], timings: list[timing.Timing]) -> Page:
    """The cost page: one table per side-by-side file, then the micro-benchmark."""
    out = detail("cost", "Inference cost", Para(timing.ABOUT + " Efficiency: the FLOP ratio over the time ratio at the "
                                                "large batch (1: as fast as the arithmetic allows)."))
    for f in files:
        where = (f["suite"], f["task"], f["device"], f["dtype"])
        path, load, bs, rows = timing.path("", *where).as_posix(), f["cpu_load"], f["batch_sizes"], []
        for e in (e for e in f["entries"] if e["kind"] != "candidate"):
            r = timing.ratios(f, e["name"])
            cells = [text(e["name"], True), text(e["members"]), number(e["params_count"] / 1e6, ".3g"),
                     ratio(r["params"]), number(e.get("analytic_flops", e["flops"]) / 1e6, ".4g"), ratio(r["flops"]),
                     number(1000 * e["small"]["median_s"]), ratio(r["small"]),
                     number(1000 * e["large"]["per_sample_s"], ".3f"), ratio(r["large"]),
                     number(r["flops"][0] / r["large"][0]), number(e["peak_mem_mb"], ".0f")]
            rows.append(Row(dict(zip(FILE, cells)), f["suite"], f["task"], e["name"], e["method"], (path,)))
        out.blocks += [Heading(2, f"`{f['task']}` ({f['suite']}), {f['device']} {f['dtype']}", slug("cost", *where)),
                       Para(f"{f['device_name']} ({timing.setting(f)}), batches {bs[0]} and {bs[1]}, "
                            f"{f['rounds'][0]} and {f['rounds'][1]} rounds; CPU load per core {load['start']:.2f} at "
                            f"the start and {load['end']:.2f} at the end; "
                            f"{sum(e['kind'] == 'candidate' for e in f['entries'])} tuning candidates timed beside "
                            f"the entries (on the frontiers); commit {f['provenance'].get('git_commit', '?')[:10]}."),
                       Table.of(FILE, rows, slug("cost-table", *where))]
    rows, one_name = [], claims.COST_BENCH_REFERENCE
    for (file, scale, batch), nets in timing.benchmark_runs(timings).items():
        one = nets.get(one_name)
        for m, t in sorted(nets.items(), key=lambda kv: (kv[0] != one_name, kv[0])):
            cells = [text(file, True), text(f"{t.device}, {t.dtype}"), text(scale), text(batch), text(m, True),
                     number(1000 * t.median_s), number(t.median_s / one.median_s if one else math.nan),
                     number(t.flops / one.flops if one else math.nan)]
            rows.append(Row(dict(zip(BENCH, cells)), entry=m, files=(file,)))
    if rows:
        out.blocks += [Heading(2, "Micro-benchmark", "micro-benchmark"), Para(timing.ABOUT_BENCHMARK),
                       Table.of(BENCH, rows, "cost-bench")]
    return out


def claim_rows(files: list[dict], timings: list[timing.Timing]) -> list[tuple[str, str, str, str]]:
    """The cost claims (claim, where, measured, verdict): per side-by-side file, each Hydra entry's
    time against the reference's (the paper's 1.07x, for bfloat16 on a GPU) and against Deep
    Ensembles' (cheaper on every device), at both batch sizes; then the micro-benchmark's bfloat16 runs."""
    rows, limit, gpu = [], claims.COST_RATIO * (1 + claims.COST_SLACK), False
    for f in files:
        named = [(claims.role_of({"method": e["method"], **e["params"]}), e["name"])
                 for e in f["entries"] if e["kind"] == "entry"]
        bf16 = f["device"] == "cuda" and f["dtype"] == "bfloat16"
        gpu |= bf16
        ensembles = [(n, claims.COST_VS_ENSEMBLE, 1.0) for role, n in named if role == claims.ENSEMBLE]
        for h in (n for role, n in named if role == claims.SUBJECT):
            for ref, claim, bound in ((f["reference"], claims.COST_CLAIM, limit), *ensembles):
                cuts = [timing.between(f, h, ref, b) for b in ("small", "large")]
                v = ("does not hold" if any(lo > bound for _, lo, _ in cuts) else
                     "inconclusive" if not all(hi <= bound for *_, hi in cuts) else "holds")
                if bound == limit and not bf16:
                    v = f"not applicable ({v} at 1.07x with 10 % slack): the claim is for bfloat16 on a GPU"
                measured = "; ".join(f"batch {n}: {ratio(c).text}×" for n, c in zip(f["batch_sizes"], cuts))
                rows.append((claim, f"{f['task']} ({f['suite']}), {f['device']} {f['dtype']}",
                             f"`{h}` over `{ref}`: {measured}", v))
    for (file, scale, batch), nets in timing.benchmark_runs(timings).items():
        h, one = nets.get(claims.COST_BENCH_SUBJECT), nets.get(claims.COST_BENCH_REFERENCE)
        if h and one and h.dtype == "bfloat16":
            gpu, r = True, h.median_s / one.median_s
            rows.append((claims.COST_CLAIM, f"{scale}, batch {batch} (micro-benchmark)",
                         f"Hydra {r:.2f}x single ({h.device}, {file}; no interval)",
                         "holds" if r <= limit else "does not hold"))
    if not gpu:
        rows.append((claims.COST_CLAIM, "all", "no bfloat16 GPU cost files",
                     "not measurable here: no GPU was available to this benchmark's runs"))
    return rows
