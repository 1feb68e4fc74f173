"""The analytic cost model (``methods.flops``) against ``torch.utils.flop_counter`` on the CPU,
for single models, every fused layout the methods build, and text and zero-shot models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from uqbench.bench import cost
from uqbench.methods import flops
from uqbench.methods.adapters import from_hf_bert
from uqbench.methods.convert import batch_ensemble_config, lora_ensemble_config, packed_config
from uqbench.methods.hydra.fuse import fused_config
from uqbench.methods.hydra.prune import pruned_config
from uqbench.methods.transformer import StreamTransformer, vit_config
from tests.toys import tiny_bert


def test_cpu_attention_is_counted():
    q = torch.randn(2, 3, 5, 8)
    counted = cost.flops_per_sample(lambda x: F.scaled_dot_product_attention(x, x, x), q, 1)
    assert counted == 2 * (2 * 2 * 3 * 5 * 5 * 8)  # Q K^T and P V


def _vit() -> dict:
    return vit_config(img_size=16, patch=4, dim=24, depth=3, heads=6, num_classes=5)


def _hydra(cfg: dict, kept: list[int], fork: int, merge: bool) -> dict:
    members = [pruned_config(cfg, [k] * (len(cfg["blocks"]) - fork), fork) for k in kept]
    return fused_config(members, fork, merge)


def _zeroshot(cfg: dict) -> dict:
    return {**cfg, "head": {"kind": "zeroshot", "embed_dim": 16, "num_classes": 7, "members": 1}}


CONFIGS = {
    "vit": _vit(),
    "hydra": _hydra(_vit(), [2, 2, 2], 0, True),
    "hydra-unequal-fork1-mlp": _hydra(_vit(), [3, 2, 1], 1, False),
    "batch_ensemble": batch_ensemble_config(_vit(), 3),
    "packed": packed_config(_vit(), 3, 2.0),
    "lora_ensemble": lora_ensemble_config(_vit(), 3, 4),
    "lora_ensemble-one-member": lora_ensemble_config(_vit(), 1, 2),
    "zeroshot-hydra": _hydra(_zeroshot(_vit()), [2, 2, 2], 0, True),
    "bert": from_hf_bert(tiny_bert(), 3).config,
    "bert-lora_ensemble": lora_ensemble_config(from_hf_bert(tiny_bert(), 3).config, 2, 3),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_analytic_matches_flop_counter(name):
    cfg = CONFIGS[name]
    model = StreamTransformer(cfg).eval()
    if cfg["embed"]["kind"] == "patch":
        x = torch.randn(4, 3, 16, 16)
    else:
        x = {"input_ids": torch.randint(0, 64, (4, 11)), "attention_mask": torch.ones(4, 11, dtype=torch.long)}
    with torch.no_grad():
        counted = cost.flops_per_sample(model, x, 4)
    parts = flops.forward_flops(cfg, flops.tokens(cfg, x))
    assert parts["attention"] > 0
    assert parts["total"] == counted
    assert flops.parameter_count(cfg) == sum(p.numel() for p in model.parameters())


def test_network_cost_sums_networks_and_runs():
    cfg = _vit()
    one = flops.network_cost([(cfg, 1)])
    three = flops.network_cost([(cfg, 1), (cfg, 2)], dtype=torch.bfloat16)
    assert three["flops"] == 3 * one["flops"] and three["params"] == 2 * one["params"]
    assert three["param_bytes"] == 2 * three["params"]


def test_workload_keeps_what_run_time_depends_on():
    cfg = _vit()
    on = lambda p: {**cfg, "dropout": p, "attn_dropout": p}  # noqa: E731
    assert flops.workload([(on(0.1), 10)]) == flops.workload([(on(0.02), 10)]) != flops.workload([(on(0.0), 10)])
    assert flops.workload([(on(0.1), 10)]) != flops.workload([(on(0.1), 5)])
