"""Where the fused Hydra forward spends its time, against the single model: torch.profiler
self time per kind of operator, summed over ``ROUNDS`` forwards of the benchmark networks of
``tests/test_cost_benchmark.py`` (random weights), with the analytic FLOP ratio for reference.

    python scripts/profile_hydra.py [--scale cifar-vit] [--batch 256] [--networks single,hydra]

Matrix products should scale with the FLOP ratio; element-wise work (norms, GELU, residual
additions, bias copies) scales with the number of streams, which is what keeps a fused layout
above its FLOP ratio.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_cost_benchmark import CONFIGS, DEVICE, DTYPE, SCALES, _model, analytic_flops  # noqa: E402

KINDS = [  # (kind, substrings of aten operator names), first match wins
    ("attention", ("attention",)),
    ("matmul", ("addmm", "baddbmm", "bmm", "aten::mm", "matmul", "convolution", "gemm")),
    ("norm", ("layer_norm",)),
    ("activation", ("gelu",)),
    ("copy", ("copy_", "clone", "contiguous", "cat")),
    ("add/mul", ("aten::add", "aten::mul", "addcmul")),
]
ROUNDS = 3


def kind(name: str) -> str:
    return next((k for k, subs in KINDS if any(s in name for s in subs)), "other")


def profile_network(name: str, scale: str, batch: int) -> dict[str, float]:
    """Seconds of self time per operator kind over ``ROUNDS`` forwards."""
    nets = [_model(c) for c in CONFIGS[name](scale)]
    side = SCALES[scale][0]
    x = torch.randn(batch, 3, side, side, device=DEVICE, dtype=DTYPE)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE.type == "cuda" else [])
    with torch.no_grad():
        for n in nets:
            n(x)
        with profile(activities=acts) as prof:
            for _ in range(ROUNDS):
                for n in nets:
                    n(x)
            if DEVICE.type == "cuda":
                torch.cuda.synchronize()
    out: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        if not e.key.startswith("aten::") or e.key in ("aten::linear", "aten::scaled_dot_product_attention"):
            continue  # wrappers: their time is in the kernels they call
        t = e.self_device_time_total if DEVICE.type == "cuda" else e.self_cpu_time_total
        out[kind(e.key)] += t / 1e6
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cifar-vit", choices=list(SCALES))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--networks", default="single,hydra")
    a = ap.parse_args()
    names = a.networks.split(",")
    prof = {n: profile_network(n, a.scale, a.batch) for n in names}
    kinds = [k for k, _ in KINDS] + ["other"]
    ref = names[0]
    print(f"{a.scale}, batch {a.batch}, {DEVICE.type} {str(DTYPE).removeprefix('torch.')}, "
          f"{torch.get_num_threads()} threads, self time over {ROUNDS} forwards (s), ratio to {ref}")
    print("kind".ljust(12) + "".join(n.rjust(26) for n in names))
    for k in kinds + ["total"]:
        row = k.ljust(12)
        for n in names:
            t = sum(prof[n].values()) if k == "total" else prof[n].get(k, 0.0)
            r = t / (sum(prof[ref].values()) if k == "total" else prof[ref].get(k, 0.0) or float("nan"))
            row += f"{t:14.3f} (×{r:5.2f})".rjust(26)
        print(row)
    print("FLOPs".ljust(12) + "".join(f"(×{analytic_flops(a.scale, n) / analytic_flops(a.scale, ref):5.2f})".rjust(26)
                                       for n in names))


if __name__ == "__main__":
    main()
