"""Inference cost of a fitted method: parameters, FLOPs, latency, throughput, peak memory.

Latency is the median wall time of ``forward_members`` on one sample, throughput the samples
per second of the median run on a large batch; both after warm-up, with a fixed thread count
on the CPU and with CUDA synchronisation on a GPU. FLOPs are counted by
``torch.utils.flop_counter`` (matrix products and attention; a multiply-add counts as 2).
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
from torch.utils.flop_counter import FlopCounterMode

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
def _peak_rss():
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


def flops_per_sample(fn: Forward, x: Any, batch: int) -> float:
    with FlopCounterMode(display=False) as counter:
        fn(x)
    return counter.get_total_flops() / batch


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
) -> dict[str, float]:
    """Cost of ``fn`` (a no-grad forward returning member logits) on inputs of ``make_inputs(B)``.

    Returns ``params``, ``flops`` (per sample), ``latency_ms`` (batch ``batch_sizes[0]``),
    ``throughput`` (samples/s at ``batch_sizes[1]``), ``peak_mem_mb``, ``threads``, ``dtype``.
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
        with _peak_rss() as mem:
            seconds = _timed(run, x_large, device, 1, max(3, repeats // 2))
        peak = mem["peak"]
    return {
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
