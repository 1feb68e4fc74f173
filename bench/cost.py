"""Inference cost of a fitted method: parameters, FLOPs, latency, throughput, peak memory.

Latency is the median wall time of ``forward_members`` on one sample, throughput the samples
per second of the median run on a large batch; both after warm-up, with a fixed thread count
on the CPU and with CUDA synchronisation on a GPU. FLOPs are counted by
``torch.utils.flop_counter`` (matrix products and attention; a multiply-add counts as 2), with
a formula added for the CPU's fused attention kernel, which torch counts as 0; the analytic
count from the networks' configs (``methods.flops``) is recorded next to it.
Peak memory is CUDA's peak allocation on a GPU and the peak growth of the process's resident
memory during the throughput run on the CPU (sampled every millisecond). ``cpu_load`` is the
one-minute load average per core when the measurement started: above about 1, other work
competed for the cores and the timings are inflated.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ..methods import flops as analytic_flops

Forward = Callable[[Any], torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Forward, x: Any, device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn(x)``."""
    for _ in range(warmup):
        fn(x)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@contextlib.contextmanager
def peak_rss():
    """Yields a dict that holds the peak RSS growth (bytes) once the block ends."""
    out = {"peak": 0}
    base = _rss_bytes()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            out["peak"] = max(out["peak"], _rss_bytes() - base)
            time.sleep(0.001)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# torch registers attention formulas for the CUDA kernels only; the CPU kernel then counts 0
EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


def flops_per_sample(fn: Forward, x: Any, batch: int) -> float:
    """FLOPs of ``fn(x)`` per sample of the batch, counted the same way on every device."""
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS) as counter:
        fn(x)
    return counter.get_total_flops() / batch


def analytic(networks: list[tuple[dict, int]], x: Any, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """The analytic cost (``methods.flops``) of a method's ``inference_networks`` on inputs like
    ``x``; empty for networks the analytic model does not describe (not stream transformers)."""
    if not analytic_flops.describes(networks):
        return {}
    a = analytic_flops.network_cost(networks, x, dtype)
    return {"analytic_flops": a["flops"], "analytic_params": a["params"], "param_bytes": a["param_bytes"]}


def measure(
    fn: Forward,
    make_inputs: Callable[[int], Any],
    num_parameters: int,
    device: torch.device,
    batch_sizes: tuple[int, int] = (1, 256),
    repeats: int = 10,
    warmup: int = 3,
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    networks: list[tuple[dict, int]] | None = None,
) -> dict[str, float]:
    """Cost of ``fn`` (a no-grad forward returning member logits) on inputs of ``make_inputs(B)``.

    Returns ``params``, ``flops`` (per sample), ``latency_ms`` (batch ``batch_sizes[0]``),
    ``throughput`` (samples/s at ``batch_sizes[1]``), ``peak_mem_mb``, ``threads``, ``dtype``;
    with ``networks`` (``UQMethod.inference_networks``) also the analytic ``analytic_flops``,
    ``analytic_params`` and ``param_bytes``.
    """
    if threads is not None and device.type == "cpu":
        torch.set_num_threads(threads)
    small, large = batch_sizes
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    def run(x: Any) -> torch.Tensor:
        with torch.no_grad(), autocast:
            return fn(x)

    load = os.getloadavg()[0] / (os.cpu_count() or 1)  # > 1: other work competed for the cores
    x_small, x_large = make_inputs(small), make_inputs(large)
    flops = flops_per_sample(run, x_small, small)
    latency = _timed(run, x_small, device, warmup, repeats)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        seconds = _timed(run, x_large, device, 1, max(3, repeats // 2))
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        with peak_rss() as mem:
            seconds = _timed(run, x_large, device, 1, max(3, repeats // 2))
        peak = mem["peak"]
    out = analytic(networks, x_small, dtype) if networks else {}
    return out | {
        "params": float(num_parameters),
        "flops": float(flops),
        "latency_ms": 1000 * latency,
        "throughput": large / seconds,
        "peak_mem_mb": peak / 2**20,
        "batch_small": small,
        "batch_large": large,
        "threads": torch.get_num_threads(),
        "dtype": str(dtype).removeprefix("torch."),
        "cpu_load": load,
    }
