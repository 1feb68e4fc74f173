"""Side-by-side inference cost of a suite's entries, measured from their architecture.

Inference cost depends on the architecture, not on the trained weights, so every entry of a
task is built from its ``inference_networks(backbone_config)`` with random weights (no training,
no checkpoint) and all of them are timed side by side, on the same inputs and threads,
interleaved round by round: each round calls every network once in turn (the order reversed
every other round, so that a drift of the machine's speed falls on all alike), with the
reference model (the single model, ``claims.REFERENCE``) timed again between any two, and an
entry's time ratio to the reference is taken against the reference timed beside it.

What one process measures (its memory layout, the machine's state while it runs) can favour one
network over another by a few per cent, more than the rounds within it vary, so a ratio from one
process holds for that process only: the rounds are split over ``PROCESSES``
fresh processes run one after another, each entry's ratio in a process is the median of its
rounds, and the file's ratio is the median over the processes with its 95 % distribution-free
interval (order statistics of the median). The interval thus says how far another run of the
command may land. Timings from different runs of the command are never compared.

Per entry: the time of every round (with its process) and its median at the small and at the
large batch (so any two entries of a file can be compared round by round), the ratio to the
reference with its interval, peak memory, the counted parameters and FLOPs (analytic where the
networks are stream transformers). A second copy of the
reference is timed as a control, and the measurement is refused when the control, or any entry
whose networks equal the reference's, does not read 1.00 within its interval: then the machine
was too noisy to tell the entries apart. Tuned entries are read from their tuning records (the
winner and, where declared, the best candidate above the cost limit); every candidate of those
records is costed too, through the entry or candidate with the same networks.

One file per suite, task, device and dtype: ``<results>/cost/<suite>/<task>/<device>-<dtype>.json``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import json
import math
import multiprocessing
import os
import random
import signal
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.stats import binom
from torch import nn
from tqdm.auto import trange

from .. import methods
from ..methods import flops
from . import calibration, claims, cost, results, tuning
from .suite import MethodEntry, Suite

CONTROL = "control"  # the second copy of the reference
MIN_ROUNDS = 6  # fewer values give no 95 % interval of a median
MIN_CALL_S = 0.05  # each entry's share of a round lasts at least this long
# 9 processes put the interval at the second lowest and second highest of their medians, so one
# process that reads a copy of the reference 4-22 % off (half the checks with 6) does not set it
PROCESSES = 9  # fresh processes a task is timed in, one after another (at least MIN_ROUNDS)
# one round at the large batch left a process's ratio at the noise of a single call (2-7 % here),
# and identical networks up to 12 % apart at the interval's edge; the median of two halves that.
# Rounds at batch 1 cost seconds, so 6 of them (with 3, single-ft read 1.01 [0.99, 1.06])
ROUNDS = (6, 2)  # rounds per process at the small and at the large batch
ATTEMPTS = 3  # measurements of a task before its disagreement is reported


class MeasurementError(ValueError):
    """A measurement that disagrees with itself (an identical network not at 1.00)."""


@dataclass(frozen=True)
class Costed:
    """One set of networks to time: a suite entry, the control copy, or a tuning candidate."""

    name: str
    kind: str  # "entry", "control" or "candidate"
    method: str
    params: dict[str, Any]
    source: str  # "suite", or the tuning record it was chosen by
    networks: list[tuple[dict[str, Any], int]]

    @property
    def key(self) -> str:
        """What the inference cost depends on: the networks and how often each runs (``flops.workload``)."""
        blob = json.dumps(flops.workload(self.networks), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def path(root: Path, suite: str, task: str, device: str, dtype: str) -> Path:
    return Path(root) / "cost" / suite / task / f"{device}-{dtype}.json"


def load(root: Path) -> list[dict[str, Any]]:
    """Every side-by-side cost file under ``root/cost/<suite>/<task>/``."""
    return [json.loads(p.read_text()) for p in sorted((Path(root) / "cost").glob("*/*/*.json"))]


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """The median and its 95 % distribution-free interval (order statistics: the ranks k and
    n + 1 - k with P(Binomial(n, 1/2) < k) <= 2.5 %)."""
    v, n = sorted(values), len(values)
    if n < MIN_ROUNDS:
        raise ValueError(f"{n} rounds give no 95 % interval of a median; take at least {MIN_ROUNDS}")
    k = max(int(binom.ppf(0.025, n, 0.5)), 1)
    while binom.cdf(k - 1, n, 0.5) > 0.025:
        k -= 1
    return statistics.median(v), v[k - 1], v[n - k]


def grouped_median_interval(values: list[float], groups: list[int] | None) -> tuple[float, float, float]:
    """``median_interval`` of the groups' medians (the rounds of each process), or of the values
    themselves where no groups are recorded."""
    if groups is None:
        return median_interval(values)
    by: dict[int, list[float]] = {}
    for v, g in zip(values, groups):
        by.setdefault(g, []).append(v)
    return median_interval([statistics.median(v) for v in by.values()])


# -- what a task's entries are --------------------------------------------------------------
def _applies(method: str, task) -> bool:
    cls = methods.REGISTRY[method]
    return task.modality in cls.modalities and (task.trainable or not cls.needs_training)


def _costed(name: str, kind: str, method: str, params: dict, source: str, backbone: dict) -> Costed:
    networks = methods.create(method, **params).inference_networks(backbone)
    return Costed(name, kind, method, dict(params), source, [(dict(c), int(r)) for c, r in networks])


def entries_of(suite: Suite, task, root: Path) -> tuple[list[Costed], list[dict[str, Any]], list[str]]:
    """The task's entries (the reference first, the other fixed ones, those tuned from their
    records, the reference's control copy last); the candidates of the records, each naming the entry or candidate it is timed as; and
    notes on what could not be costed."""
    backbone, notes = task.backbone_config, []
    fixed = [e for e in suite.methods if _applies(e.method, task)]
    ref = next((e for e in fixed if claims.role_of({"method": e.method, **e.params}) == claims.REFERENCE), None)
    if ref is None:
        raise ValueError(f"suite {suite.name}: task {task.name} has no entry of the reference "
                         f"(`{claims.REFERENCE}` with its default hyper-parameters) to take cost ratios against")
    out = [_costed(e.name, "entry", e.method, e.params, "suite", backbone) for e in [ref, *(e for e in fixed if e is not ref)]]
    candidates = []
    for space in (suite.tuning.spaces if suite.tuning else []):
        record_file = tuning.record_path(root, suite.name, task.name, space.entry)
        if not _applies(space.method, task):
            continue
        if not record_file.exists():
            notes.append(f"{space.entry}: no tuning record at {record_file} yet")
            continue
        rec = json.loads(record_file.read_text())
        source = str(record_file.relative_to(root))
        for name, pick in ((space.entry, rec.get("winner")), (space.unconstrained, rec.get("unconstrained"))):
            if name and pick:
                out.append(_costed(name, "entry", space.method, pick["params"], source, backbone))
        for c in rec["candidates"]:
            try:
                cand = _costed(c["name"], "candidate", space.method, c["params"], source, backbone)
            except methods.ConfigError:
                continue  # a candidate the task's model cannot take; the record says so
            candidates.append({"entry": space.entry, "candidate": c["name"], "params": c["params"],
                               "record": source, "_costed": cand})
    out.append(_costed(CONTROL, CONTROL, ref.method, ref.params, "suite", backbone))
    return out, candidates, notes


# -- timing ---------------------------------------------------------------------------------
def build(c: Costed, device: torch.device, dtype: torch.dtype, seed: int = 0) -> methods.UQMethod:
    """The entry's method holding its networks with random weights, as ``load`` would rebuild
    them, in eval mode on ``device`` at ``dtype``."""
    method = methods.create(c.method, **c.params)
    torch.manual_seed(seed)
    method.models_ = nn.ModuleList(type(method).build_network(cfg) for cfg, _ in c.networks)
    method._after_load()
    method.to(device).eval()
    if dtype != torch.float32:
        method.models_.to(dtype)
    return method


def _cast(x: Any, dtype: torch.dtype) -> Any:
    if isinstance(x, dict):
        return x
    return x.to(dtype) if x.is_floating_point() else x


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[Any], Any]], x: Any, device: torch.device, rounds: int,
                min_s: float | None = None, warmup: int = 1, reference: str | None = None
                ) -> tuple[dict[str, list[float]], dict[str, int], dict[str, list[float]]]:
    """Seconds of one ``fn(x)`` per round for every fn, the calls each share of a round averages,
    and, per fn and round, the seconds of ``reference`` timed right beside it (the mean of its
    shares just before and just after; the fn's own time where there is no reference).

    Each round times every fn in turn, the order reversed every other round, and with a
    ``reference`` times it again between any two others, so that a fn's ratio to it is taken
    seconds apart and a drift of the machine's speed cancels. A share of a round is as many calls
    as take about ``min_s`` (set once, after the warm-up) untimed, which bring the caches and the
    allocator back to this network's steady state, then as many timed, so a network of
    microseconds is timed over a span the clock and the scheduler resolve as well as one of seconds."""
    names, min_s = list(fns), MIN_CALL_S if min_s is None else min_s
    others = [n for n in names if n != reference]
    calls: dict[str, int] = {}

    def share(name: str) -> float:
        for _ in range(calls[name]):  # untimed, as many as timed: back to this network's steady state
            fns[name](x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(calls[name]):
            fns[name](x)
        _sync(device)
        return (time.perf_counter() - t0) / calls[name]

    with torch.no_grad():
        for name in names:
            for _ in range(warmup):
                fns[name](x)
            took = []
            for _ in range(5):  # the fastest of five: one slow call would leave a copy with fewer calls
                _sync(device)
                t0 = time.perf_counter()
                fns[name](x)
                _sync(device)
                took.append(time.perf_counter() - t0)
                if took[-1] >= min_s:  # one call already fills a share
                    break
            calls[name] = max(1, math.ceil(min_s / max(min(took), 1e-9)))
        out: dict[str, list[float]] = {n: [] for n in names}
        beside: dict[str, list[float]] = {n: [] for n in names}
        collecting = gc.isenabled()
        gc.disable()  # a collection inside one share would be charged to that fn alone
        try:
            for r in range(rounds):
                ref_times = [share(reference)] if reference else []
                for name in (others if r % 2 == 0 else others[::-1]):
                    out[name].append(share(name))
                    if reference:
                        ref_times.append(share(reference))
                        beside[name].append((ref_times[-2] + ref_times[-1]) / 2)
                    else:
                        beside[name].append(out[name][-1])
                if reference:
                    out[reference].append(statistics.median(ref_times))
                    beside[reference].append(out[reference][-1])
        finally:
            if collecting:
                gc.enable()
    return out, calls, beside


def _to(x: Any, device: torch.device) -> Any:
    return {k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)


def session(timed: dict[str, Costed], xs: dict[int, Any], rounds: dict[int, int], reference: str,
            device: str, dtype: str, threads: int, order_seed: int = 0) -> dict[int, tuple]:
    """One process's share of a measurement: the networks built with random weights, then
    ``interleaved`` at each batch (``xs``: batch size -> inputs, ``rounds``: batch size -> rounds).
    The networks are built, and take their turns, in an order shuffled by ``order_seed``: where
    a network lies in memory and which one it follows favour it by a few per cent (copies of one
    network read up to 3 % apart in a fixed order), so each process draws them anew."""
    dev, dt = torch.device(device), getattr(torch, dtype)
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    names = list(timed)
    random.Random(order_seed).shuffle(names)
    fns = {n: build(timed[n], dev, dt).forward_members for n in names}
    return {b: interleaved(fns, _to(x, dev), dev, rounds[b], reference=reference) for b, x in xs.items()}


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG = 1, 2  # prctl(2) options (Linux)


def _end_with_parent() -> None:
    """On Linux, have the kernel end this worker when the process that spawned it ends: a
    stopped ``cost`` command must leave no worker timing on beside the next measurement."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new interpreter (spawned, not forked), with its own memory layout,
    ended with the calling process."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_end_with_parent) as pool:
        return pool.submit(fn, *args).result()


def _peak_mb(fn: Callable[[Any], Any], x: Any, device: torch.device) -> float:
    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            fn(x)
            return (torch.cuda.max_memory_allocated(device) - base) / 2**20
        with cost.peak_rss() as mem:
            fn(x)
        return mem["peak"] / 2**20


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return os.uname().machine


def measure_task(suite: Suite, task, root: Path, device: torch.device, dtype: torch.dtype,
                 rounds: tuple[int, int] = ROUNDS, processes: int = PROCESSES, log=print) -> dict[str, Any]:
    """Time every entry of ``task`` side by side in ``processes`` fresh processes (``rounds`` in
    each at the small and the large batch); the cost file's content. Raises ``MeasurementError``
    when identical networks disagree."""
    entries, candidates, notes = entries_of(suite, task, root)
    timed = {c.name: c for c in entries}
    by_key = {c.key: c.name for c in reversed(entries)}  # the first entry with these networks
    for cand in candidates:
        c = cand.pop("_costed")
        if c.key not in by_key:
            timed[c.name], by_key[c.key] = c, c.name
        cand["timed_as"] = by_key[c.key]
    if device.type == "cpu":
        torch.set_num_threads(suite.threads)
    small, large = suite.batch_sizes
    xs = {b: _cast(task.example_inputs(b), dtype) for b in (small, large)}
    dtype_name = str(dtype).removeprefix("torch.")
    load_start = os.getloadavg()[0] / (os.cpu_count() or 1)
    log(f"{task.name}: timing {len(timed)} networks side by side in {processes} fresh processes, {rounds[0]} rounds "
        f"each at batch {small} and {rounds[1]} at batch {large} ({len(candidates)} tuning candidates among them)")
    ref = entries[0].name
    per_process = []
    for p in trange(processes, desc=f"{task.name} cost", unit="process", leave=False):
        per_process.append(fresh_process(session, timed, {b: _to(x, torch.device("cpu")) for b, x in xs.items()},
                                         {small: rounds[0], large: rounds[1]}, ref, device.type, dtype_name,
                                         suite.threads, p))
    load_end = os.getloadavg()[0] / (os.cpu_count() or 1)
    built = {n: build(c, device, dtype) for n, c in timed.items()}
    fns = {n: m.forward_members for n, m in built.items()}
    rows = []
    for name, c in timed.items():
        row = {"name": name, "kind": c.kind, "method": c.method, "params": c.params, "source": c.source,
               "networks": c.key, "same_networks_as_reference": c.key == entries[0].key,
               "networks_held": len(c.networks), "passes": sum(r for _, r in c.networks),
               "members": built[name].num_members, "params_count": built[name].num_parameters()}
        counted = cost.flops_per_sample(lambda x, f=fns[name]: f(x), xs[small], small)
        row["flops"] = counted
        row |= cost.analytic(c.networks, xs[small], dtype)
        for label, b in (("small", small), ("large", large)):
            took = [t for got in per_process for t in got[b][0][name]]
            row[label] = {"batch": b, "median_s": statistics.median(took),
                          "calls_per_round": [got[b][1][name] for got in per_process], "rounds_s": took,
                          "reference_beside_s": [t for got in per_process for t in got[b][2][name]],
                          "process_of_round": [p for p, got in enumerate(per_process) for _ in got[b][0][name]]}
            row[label] |= dict(zip(("ratio", "lo", "hi"), grouped_median_interval(relative(row[label]),
                                                                                  row[label]["process_of_round"])))
        row["large"]["per_sample_s"] = row["large"]["median_s"] / large
        row["peak_mem_mb"] = _peak_mb(fns[name], xs[large], device)
        rows.append(row)
    for row in rows:
        if row["name"] != ref and row["same_networks_as_reference"]:
            for label in ("small", "large"):
                s = row[label]
                if not s["lo"] <= 1.0 <= s["hi"]:
                    raise MeasurementError(
                        f"{task.name}: `{row['name']}` runs the same networks as `{ref}` but took "
                        f"{s['ratio']:.3f} x its time at batch {s['batch']} (95 % interval [{s['lo']:.3f}, "
                        f"{s['hi']:.3f}]): the machine was too noisy; nothing written, measure again when idle")
    return {
        "schema": results.SCHEMA_VERSION, "suite": suite.name, "task": task.name, "reference": ref,
        "device": device.type, "device_name": _device_name(device), "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "batch_sizes": [small, large], "rounds": list(rounds), "processes": processes, "min_round_s": MIN_CALL_S,
        "cpu_load": {"start": load_start, "end": load_end},
        "task_config": task.config, "provenance": results.provenance(str(device)),
        "entries": rows, "candidates": candidates, "notes": notes,
    }


def run(suite: Suite, root: Path, droot: Path, device: torch.device, dtype: torch.dtype,
        only_tasks: list[str] | None = None, rounds: tuple[int, int] = ROUNDS, processes: int = PROCESSES,
        log=print) -> list[Path]:
    """Measure every task of ``suite`` with data and write its cost file; the files written.
    A measurement that disagrees with itself is taken again, up to ``ATTEMPTS`` times in all (each
    of its four checks misses its 95 % interval now and then by design); a task that still
    disagrees leaves its file untouched, the other tasks are measured, and the error is raised
    at the end."""
    from .data.root import MissingData
    from .suite import build_task

    written: list[Path] = []
    failed: list[MeasurementError] = []
    for entry in suite.tasks:
        if only_tasks and entry.name not in only_tasks:
            continue
        try:
            task = build_task(entry, droot)
        except MissingData as e:
            log(f"skipped task {entry.name}: {e}")
            continue
        task.device = device
        for attempt in range(1, ATTEMPTS + 1):
            try:
                data = measure_task(suite, task, root, device, dtype, rounds, processes, log)
                break
            except MeasurementError as e:
                log(f"attempt {attempt} of {ATTEMPTS}: {e}")
                refused = e
        else:
            failed.append(refused)
            continue
        out = path(root, suite.name, task.name, device.type, data["dtype"])
        results.write_atomic(out, json.dumps(data, indent=1, sort_keys=True) + "\n")
        log(summary(data))
        written.append(out)
    if failed:
        raise MeasurementError("; ".join(map(str, failed)) + f" ({len(written)} other files written)")
    return written


def summary(data: dict[str, Any]) -> str:
    """A plain-text table of a cost file's entries."""
    b1, b2 = data["batch_sizes"]
    lines = [f"{data['suite']} / {data['task']} on {data['device_name']} ({data['dtype']}, "
             f"{data['threads']} threads), time x `{data['reference']}` with 95 % intervals:",
             f"  {'entry':28s} {'batch ' + str(b1):>22s} {'batch ' + str(b2):>22s} {'params x':>9s}"]
    ref = next(r for r in data["entries"] if r["name"] == data["reference"])
    for r in data["entries"]:
        if r["kind"] == "candidate":
            continue
        cells = [f"{r[k]['ratio']:.2f} [{r[k]['lo']:.2f}, {r[k]['hi']:.2f}]" for k in ("small", "large")]
        lines.append(f"  {r['name']:28s} {cells[0]:>22s} {cells[1]:>22s} "
                     f"{r['params_count'] / ref['params_count']:>9.2f}")
    return "\n".join(lines)



# -- reading the cost files ---------------------------------------------------------------------
TABLE = ("cpu", "float32")  # the (device, dtype) of the file whose ratios the leaderboard's tables show
ABOUT = ("`python -m uqbench cost`: every entry of a (suite, task) built from its architecture with random weights "
         "and timed side by side, interleaved round by round with the reference model timed beside each, on the same "
         "inputs and threads, in several fresh processes one after another. Time × is the median over the processes "
         "of each one's median ratio to the reference, with its 95 % interval (how far another run may land); "
         "`control` is a second copy of the reference (it must read 1.00, else the measurement is refused).")  # what a cost file holds, for readers
ABOUT_BENCHMARK = ("`make cost-benchmark` (pytest-benchmark): the single model, a deep ensemble run member after "
                   "member and fused Hydra on random weights, timed one after the other in one run.")


def find(files: list[dict], suite: str, task: str, where: tuple[str, str] = TABLE) -> dict | None:
    """The cost file of (suite, task) measured on ``where`` (device, dtype), or None."""
    return next((f for f in files if (f["suite"], f["task"], f["device"], f["dtype"]) == (suite, task, *where)), None)


def setting(f: dict) -> str:
    """A cost file's device, dtype and (on a CPU) threads, as a reader names them."""
    n = f.get("threads")
    return f"{f['device']}, {f['dtype']}" + (f", {n} thread{'s' * (n != 1)}" if n else "")


def costed_as(js: list[dict]) -> str:
    """The entry whose networks a result runs (a post-processed variant runs its entry's)."""
    return js[0]["method"].removesuffix(calibration.SUFFIX) if js[0].get("post_hoc") else js[0]["method"]


def ratios(f: dict, name: str) -> dict[str, tuple[float, float, float]] | None:
    """(ratio, lo, hi) to the file's reference on each axis (params, flops, small, large: the time
    at either batch, with its interval over rounds; params and FLOPs are exact), or None."""
    rows = {r["name"]: r for r in f["entries"]}
    if name not in rows:
        return None
    me, ref = rows[name], rows[f["reference"]]
    p, fl = (me.get(k, me[alt]) / ref.get(k, ref[alt]) for k, alt in (("analytic_params", "params_count"),
                                                                     ("analytic_flops", "flops")))
    return {"params": (p, p, p), "flops": (fl, fl, fl), **{b: (me[b]["ratio"], me[b]["lo"], me[b]["hi"])
                                                             for b in ("small", "large")}}


def between(f: dict, a: str, b: str, batch: str) -> tuple[float, float, float]:
    """Entry ``a``'s time over entry ``b``'s at ``batch``, round by round (each first taken over the
    reference timed beside it, where the file records that): median and 95 % interval."""
    rows = {r["name"]: r[batch] for r in f["entries"]}
    return grouped_median_interval([x / y for x, y in zip(relative(rows[a]), relative(rows[b]))],
                                   rows[a].get("process_of_round"))


def relative(s: dict) -> list[float]:
    """One batch's round times of an entry over the reference's timed beside it (where recorded)."""
    return [t / r for t, r in zip(s["rounds_s"], s.get("reference_beside_s", [1.0] * len(s["rounds_s"])))]


def entry_cost(files: list[dict], js: list[dict]) -> tuple[dict | None, dict | None]:
    """The cost file of one entry's results (``js``: its jobs of one suite and task) and the
    entry's ``ratios`` in it (None where the task has no cost file, or the file no such entry)."""
    f = find(files, js[0]["suite"], js[0]["task"])
    return f, ratios(f, costed_as(js)) if f else None


def cost_of(files: list[dict], js: list[dict]) -> dict[str, float] | None:
    """The point ratio on each axis of one entry's results (None where its task has no cost file)."""
    r = entry_cost(files, js)[1]
    return {k: v[0] for k, v in r.items()} if r else None


class Timing(NamedTuple):
    """One network's median in a micro-benchmark file (``make cost-benchmark``: ``<root>/cost/*.json``)."""

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
    for p in sorted((root / "cost").glob("*.json")):
        name = str(p.relative_to(root))
        try:
            for b in json.loads(p.read_text())["benchmarks"]:
                par, info = b["params"], b["extra_info"]
                out.append(Timing(name, str(info["device"]), str(info["dtype"]), str(par["scale"]), int(par["batch"]),
                                  str(par["name"]), float(b["stats"]["median"]), float(info.get("flops", np.nan))))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise results.ResultError(f"{name}: not a cost-benchmark file ({type(e).__name__}: {e})") from e
    return out


def benchmark_runs(timings: list[Timing]) -> dict[tuple[str, str, int], dict[str, Timing]]:
    """The timings by (file, backbone scale, batch) in that order, then by network: those timed side by side."""
    out: dict[tuple[str, str, int], dict[str, Timing]] = {}
    for t in timings:
        out.setdefault((t.file, t.scale, t.batch), {})[t.method] = t
    return dict(sorted(out.items()))
