"""Structured head pruning for Hydra Ensembles (arXiv 2510.18358): a member is the single
model with, in every block from ``fork_layer`` on, only its kept heads' weights gathered
(their Q/K/V rows of the grouped ``qkv`` linear and their columns of the output projection
``proj``). Everything else -- embedding, blocks before ``fork_layer``, norms, MLPs, final norm,
head -- is copied unchanged. The result computes exactly what the single model computes with
the dropped heads' ``head_gate`` set to 0.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from ..transformer import StreamTransformer


def head_rows(heads: list[int] | Tensor, n_heads: int, head_dim: int, parts: int = 3) -> Tensor:
    """Output rows of heads ``heads`` in a layer laid out as ``parts`` groups ([q | k | v]) of
    ``n_heads * head_dim`` rows each; ``parts=1`` gives the output projection's input columns."""
    heads = torch.as_tensor(heads, dtype=torch.long)
    within = (heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
    return torch.cat([p * n_heads * head_dim + within for p in range(parts)])


def pruned_config(config: dict, kept: list[int], fork_layer: int = 0) -> dict:
    """The config of a member that keeps ``kept[i]`` heads in block ``fork_layer + i``."""
    cfg = copy.deepcopy(config)
    for layer, k in enumerate(kept, start=fork_layer):
        cfg["blocks"][layer] = {**cfg["blocks"][layer], "heads": [k]}
    return cfg


@torch.no_grad()
def prune(model: StreamTransformer, head_sets: list[list[int]], fork_layer: int = 0) -> StreamTransformer:
    """A single-member copy of ``model`` keeping ``head_sets[i]`` in block ``fork_layer + i``."""
    depth = len(model.blocks)
    if len(head_sets) != depth - fork_layer:
        raise ValueError(f"{len(head_sets)} head sets for the {depth - fork_layer} blocks from fork_layer={fork_layer}")
    state = dict(model.state_dict())
    for layer, keep in enumerate(head_sets, start=fork_layer):
        blk = model.blocks[layer]
        if blk.members != 1:
            raise ValueError(f"block {layer} has {blk.members} members; prune a single model")
        if not keep or len(set(keep)) != len(keep) or not all(0 <= h < blk.max_heads for h in keep):
            raise ValueError(f"block {layer}: invalid head set {keep} for {blk.max_heads} heads")
        rows = head_rows(keep, blk.max_heads, blk.head_dim).to(blk.qkv.weight.device)
        cols = head_rows(keep, blk.max_heads, blk.head_dim, parts=1).to(blk.proj.weight.device)
        pre = f"blocks.{layer}."
        state[pre + "qkv.weight"] = blk.qkv.weight[:, rows]
        if blk.qkv.bias is not None:
            state[pre + "qkv.bias"] = blk.qkv.bias[:, rows]
        state[pre + "proj.weight"] = blk.proj.weight[:, :, cols]
    ref = next(model.parameters())
    out = StreamTransformer(pruned_config(model.config, [len(k) for k in head_sets], fork_layer)).to(device=ref.device, dtype=ref.dtype)
    out.load_state_dict(state)
    return out.train(model.training)
