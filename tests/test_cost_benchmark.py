"""Micro-benchmarks (pytest-benchmark) of inference cost: fused Hydra against the single model
and a sequential deep ensemble, M = 3, at batch 1 and 256, on a ViT 192 wide, 6 blocks, 6 heads,
patch 4 (random weights: cost does not depend on them).

Disabled by default (they then run once, as tests); ``make cost-benchmark`` times them. Compare
the medians side by side from one run: ratios to ``single`` are what matter. float32 on the CPU;
on a CUDA machine the same benchmarks run in bfloat16.
"""

from __future__ import annotations


import pytest
import torch

from methods.transformer import StreamTransformer, init_weights, vit_config

M = 3
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPE = torch.bfloat16 if DEVICE.type == "cuda" else torch.float32


def _base() -> dict:
    return vit_config(img_size=32, patch=4, dim=192, depth=6, heads=6, num_classes=10)


def _hydra(fork_layer: int = 0, merge_mlp: bool = True) -> dict:
    """The fused layout Hydra builds: 6 // M heads per member, per-member norms and heads."""
    cfg = _base()
    for i, b in enumerate(cfg["blocks"]):
        if i >= fork_layer:
            b.update(heads=[6 // M] * M, norm_members=M, mlp_members=1 if merge_mlp else M)
    cfg["final_norm"] = M
    cfg["head"]["members"] = M
    return cfg


def _model(cfg: dict) -> StreamTransformer:
    torch.manual_seed(0)
    return init_weights(StreamTransformer(cfg)).to(DEVICE, DTYPE).eval()


MODELS = {
    "single": lambda: [_model(_base())],
    "deep_ensemble": lambda: [_model(_base()) for _ in range(M)],
    "hydra": lambda: [_model(_hydra())],
    "hydra_fork3": lambda: [_model(_hydra(fork_layer=3))],
    "hydra_permember_mlp": lambda: [_model(_hydra(merge_mlp=False))],
}


@pytest.mark.parametrize("batch", [1, 256])
@pytest.mark.parametrize("name", list(MODELS))
def test_inference_cost(benchmark, name, batch):
    nets = MODELS[name]()
    x = torch.randn(batch, 3, 32, 32, device=DEVICE, dtype=DTYPE)

    @torch.no_grad()
    def forward():
        out = torch.cat([n(x) for n in nets])
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark.group = f"batch {batch} ({DEVICE.type}, {str(DTYPE).removeprefix('torch.')})"
    benchmark.extra_info["members"] = sum(n.num_members for n in nets)
    out = benchmark(forward)
    assert out.shape == (1 if name == "single" else M, batch, 10)
    assert torch.isfinite(out.float()).all()
