"""Helpers that turn a single-model ``StreamTransformer`` into an ensemble-shaped one.

Used by BatchEnsemble (``methods.batch_ensemble``), Packed-Ensembles (``methods.packed``) and
LoRA-Ensemble (``methods.lora_ensemble``):

* ``batch_ensemble_config`` / ``packed_config`` / ``lora_ensemble_config`` derive an ensemble
  config from a backbone's config (the backbone must be a single model: one member per block and head);
* ``copy_broadcast`` copies a single model's weights into a model whose layers have M members
  (shared slow weights of ``BatchLinear`` and per-member copies of biases/norms/heads);
* ``init_fast_weights`` initialises BatchEnsemble's rank-1 fast weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .layers import BatchLinear

FAST_INITS = ("random_sign", "gaussian", "ones")


def _single_heads(cfg: dict[str, Any]) -> list[int]:
    """Heads of each block of a single-model config; raises if the config is already an ensemble."""
    heads = []
    for i, b in enumerate(cfg["blocks"]):
        if len(b["heads"]) != 1:
            raise ValueError(f"block {i} has {len(b['heads'])} members; expected a single-model backbone")
        heads.append(int(b["heads"][0]))
    if cfg["head"].get("members", 1) != 1 or cfg.get("embed_streams", 1) != 1:
        raise ValueError("expected a single-model backbone (one head member, one embedding stream)")
    return heads


def batch_ensemble_config(cfg: dict[str, Any], members: int) -> dict[str, Any]:
    """BatchEnsemble version of a single-model config.

    Every block keeps its heads for each of the ``members`` streams, its linear layers become
    ``BatchLinear`` (shared slow weight, rank-1 fast weights, per-member bias), its LayerNorms
    stay shared; the head becomes a batch linear head (or a per-member zero-shot projection).
    The embedding (and a final norm) stay shared: the streams fork at the first block.

    Args:
        cfg: config of a single-model ``StreamTransformer``.
        members: ensemble size M.

    Returns:
        A new config (the input is not modified).
    """
    heads = _single_heads(cfg)
    out = copy.deepcopy(cfg)
    out["blocks"] = [
        {"heads": [h] * members, "linear": "batch", "mlp_members": 1, "norm_members": 1} for h in heads
    ]
    out["head"] = {**out["head"], "members": members, "linear": "batch"}
    return out


def lora_ensemble_config(cfg: dict[str, Any], members: int, rank: int) -> dict[str, Any]:
    """LoRA-Ensemble version of a single-model config: every block keeps its heads for each of the
    ``members`` streams, with Q/K/V and output projections shared plus a rank-``rank`` adapter per
    member (``lora_rank``); MLP, norms and embedding stay shared; one head per member."""
    heads = _single_heads(cfg)
    out = copy.deepcopy(cfg)
    out["blocks"] = [{"heads": [h] * members, "lora_rank": rank, "mlp_members": 1, "norm_members": 1} for h in heads]
    out["head"] = {**out["head"], "members": members, "linear": "grouped"}
    return out


def packed_width(cfg: dict[str, Any], members: int, alpha: float) -> tuple[list[int], int, int]:
    """Per-member heads of each block, stream width and MLP hidden width of Packed-Ensembles.

    A member's width is ``alpha * D / M`` rounded to a whole number of heads of the backbone's
    head dimension (at least one head), its MLP hidden width ``alpha * mlp_hidden / M``.
    """
    heads = _single_heads(cfg)
    dh = cfg["head_dim"]
    base = max(heads)
    member_heads = max(1, round(alpha * base / members))
    per_block = [max(1, round(member_heads * h / base)) for h in heads]
    hidden = max(1, round(alpha * cfg["mlp_hidden"] / members))
    return per_block, member_heads * dh, hidden


def packed_config(cfg: dict[str, Any], members: int, alpha: float) -> dict[str, Any]:
    """Packed-Ensembles version of a single-model config (Laurent et al., ICLR 2023).

    M independent streams of width ``alpha * D / M``: per-member (grouped) Q/K/V/O and MLP,
    per-member norms, a grouped head, and an embedding whose ``M * width`` channels are split
    into the M streams (``embed_streams = M``). Members share no parameter.

    Args:
        cfg: config of a single-model ``StreamTransformer``.
        members: ensemble size M.
        alpha: width factor of the whole ensemble (the paper's alpha).

    Returns:
        A new config (the input is not modified).
    """
    heads, width, hidden = packed_width(cfg, members, alpha)
    out = copy.deepcopy(cfg)
    out["dim"] = width
    out["mlp_hidden"] = hidden
    out["embed"] = {**out["embed"], "dim": members * width}
    out["embed_streams"] = members
    out["blocks"] = [
        {"heads": [h] * members, "linear": "grouped", "mlp_members": members, "norm_members": members}
        for h in heads
    ]
    if out.get("final_norm"):
        out["final_norm"] = members
    out["head"] = {**out["head"], "members": members, "linear": "grouped"}
    return out


@torch.no_grad()
def copy_broadcast(dst: nn.Module, src: nn.Module, skip: tuple[str, ...] = ("r", "s")) -> None:
    """Copy ``src``'s state into ``dst``, broadcasting single-member tensors to M members.

    For each entry of ``dst`` (parameters and buffers) the ``src`` entry of the same name is
    copied as is when the shapes match, its member 0 when ``dst`` holds one shared tensor
    (a ``BatchLinear`` slow weight ``(out, in)`` from a ``(1, out, in)`` weight), or repeated
    over the leading member axis (per-member biases, norms, head weights).

    Args:
        dst: the ensemble-shaped model.
        src: the single model.
        skip: leaf names left untouched (BatchEnsemble fast weights, which ``src`` lacks).
    """
    source = src.state_dict()
    for name, d in dst.state_dict().items():
        if name.rsplit(".", 1)[-1] in skip and name not in source:
            continue
        if name not in source:
            raise KeyError(f"{name} has no counterpart in the source model")
        s = source[name]
        if s.shape == d.shape:
            d.copy_(s)
        elif s.shape[0] == 1 and s.shape[1:] == d.shape:
            d.copy_(s[0])
        elif s.shape[0] == 1 and s.shape[1:] == d.shape[1:]:
            d.copy_(s.expand_as(d))
        else:
            raise ValueError(f"cannot copy {name}: source {tuple(s.shape)} into {tuple(d.shape)}")


@torch.no_grad()
def init_fast_weights(
    model: nn.Module, kind: str, std: float = 0.5, generator: torch.Generator | None = None
) -> None:
    """Initialise every ``BatchLinear``'s fast weights ``r`` (M, in) and ``s`` (M, out).

    Args:
        model: a model holding ``BatchLinear`` layers.
        kind: ``"random_sign"`` (entries +1 or -1 with equal probability, Wen et al. 2020),
            ``"gaussian"`` (N(1, std^2), the uncertainty-baselines/torch-uncertainty variant)
            or ``"ones"`` (every member starts as the slow-weight model).
        std: standard deviation of ``"gaussian"``.
        generator: random generator (CPU) for reproducibility.
    """
    if kind not in FAST_INITS:
        raise ValueError(f"unknown fast-weight init {kind!r} (valid: {', '.join(FAST_INITS)})")
    for mod in model.modules():
        if not isinstance(mod, BatchLinear):
            continue
        for p in (mod.r, mod.s):
            if kind == "ones":
                v = torch.ones(p.shape)
            elif kind == "gaussian":
                v = 1 + std * torch.randn(p.shape, generator=generator)
            else:
                v = torch.randint(0, 2, p.shape, generator=generator).float() * 2 - 1
            p.copy_(v.to(p))
