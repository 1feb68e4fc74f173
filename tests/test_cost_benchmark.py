"""Micro-benchmarks (pytest-benchmark) of inference cost: fused Hydra against the single model
and a sequential deep ensemble, M = 3, at batch 1 and 256, on the CIFAR ViT (192 wide, 6 blocks,
6 heads, patch 4, 32 px) and, on a GPU only, on ViT-B/16 at 224 px with 1000 classes, the
paper's vision backbone (random weights: cost does not depend on them).

Disabled by default (they then run once, as tests); ``make cost-benchmark`` times them. Compare
the medians side by side from one run: ratios to ``single`` are what matter. float32 on the CPU;
on a CUDA machine the same benchmarks run in bfloat16. ``UQBENCH_COMPILE=1`` times every network
through ``torch.compile`` instead (compilation happens in the warm-up, outside the timing).
Each benchmark records the analytic FLOPs per sample of what it runs (``methods.flops``).
"""

from __future__ import annotations


import os

import pytest
import torch

from uqbench import methods
from uqbench.methods import flops
from uqbench.methods.transformer import StreamTransformer, init_weights, vit_config

M = 3
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPE = torch.bfloat16 if DEVICE.type == "cuda" else torch.float32
COMPILE = os.environ.get("UQBENCH_COMPILE") == "1"


SCALES = {  # name -> (image side, vit_config arguments)
    "cifar-vit": (32, dict(img_size=32, patch=4, dim=192, depth=6, heads=6, num_classes=10)),
    "vit-b16": (224, dict(img_size=224, patch=16, dim=768, depth=12, heads=12, num_classes=1000)),
}


def _base(scale: str) -> dict:
    return vit_config(**SCALES[scale][1])


def _hydra(scale: str, fork_layer: int = 0, merge_mlp: bool = True) -> dict:
    """The fused layout Hydra runs (its own ``inference_networks``): heads // M heads per member,
    per-member norms (the pre-norm affines folded into Q/K/V) and heads."""
    hydra = methods.create("hydra", num_members=M, fork_layer=fork_layer, merge_mlp=merge_mlp)
    [(cfg, _)] = hydra.inference_networks(_base(scale))
    return cfg


def _model(cfg: dict) -> StreamTransformer:
    torch.manual_seed(0)
    return init_weights(StreamTransformer(cfg)).to(DEVICE, DTYPE).eval()


CONFIGS = {  # name -> configs of the networks run one after another
    "single": lambda s: [_base(s)],
    "deep_ensemble": lambda s: [_base(s) for _ in range(M)],
    "hydra": lambda s: [_hydra(s)],
    "hydra_fork3": lambda s: [_hydra(s, fork_layer=3)],
    "hydra_permember_mlp": lambda s: [_hydra(s, merge_mlp=False)],
}


def analytic_flops(scale: str, name: str) -> float:
    """Forward FLOPs per sample of benchmark ``name`` at ``scale`` (``methods.flops``)."""
    return sum(flops.forward_flops(c, flops.tokens(c))["total"] for c in CONFIGS[name](scale))


@pytest.mark.parametrize("batch", [1, 256])
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("scale", list(SCALES))
def test_inference_cost(benchmark, scale, name, batch):
    if scale == "vit-b16" and DEVICE.type != "cuda":
        pytest.skip("ViT-B/16 at 224 px is benchmarked on a GPU only (minutes per call on a CPU)")
    side, arch = SCALES[scale]
    models = [_model(c) for c in CONFIGS[name](scale)]
    nets = [torch.compile(n) for n in models] if COMPILE else models
    x = torch.randn(batch, 3, side, side, device=DEVICE, dtype=DTYPE)

    @torch.no_grad()
    def forward():
        out = torch.cat([n(x) for n in nets])
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark.group = f"{scale}, batch {batch} ({DEVICE.type}, {str(DTYPE).removeprefix('torch.')})"
    benchmark.extra_info["members"] = sum(n.num_members for n in models)
    benchmark.extra_info["flops"] = analytic_flops(scale, name)
    benchmark.extra_info["compiled"] = COMPILE
    benchmark.extra_info["device"] = torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu"
    benchmark.extra_info["dtype"] = str(DTYPE).removeprefix("torch.")
    out = benchmark(forward)
    assert out.shape == (1 if name == "single" else M, batch, arch["num_classes"])
    assert torch.isfinite(out.float()).all()
