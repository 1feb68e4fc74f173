"""Analytic inference cost of a ``StreamTransformer`` from its config alone.

Forward FLOPs follow ``torch.utils.flop_counter``'s convention, so that the two can be
compared: matrix products only (linear layers, the patch convolution, and attention's two
products ``Q K^T`` and ``P V``), a multiply-add counts as 2. Norms, activations, the softmax
and additions are element-wise and not counted (a LayerNorm is about 8 operations per channel
and token, well under 1 % of a block here). What is counted is what the layout *executes*:
zero-padded heads of a member narrower than the widest count, and a shared layer applied to S
streams counts S times.

Per sample, with N tokens, width D, head dimension d, H (padded) heads per member, MLP width F
and S streams through a block: Q/K/V ``2 S N D 3Hd``, scores and weighted values ``4 S H N^2 d``,
output projection ``2 S N Hd D``, MLP ``4 S N D F``; plus the patch embedding and the head. A
block with rank-r adapters (``lora_rank``, LoRA-Ensemble) adds ``2 S N r (3D + 3Hd)`` for Q/K/V
and ``2 S N r (Hd + D)`` for the output projection (part ``adapters``).
"""

from __future__ import annotations

from typing import Any

import torch

Config = dict[str, Any]


def tokens(config: Config, x: torch.Tensor | dict[str, torch.Tensor] | None = None) -> int:
    """Tokens per sample: the patch grid (plus class token) of an image model, else the
    sequence length of ``x['input_ids']``."""
    e = config["embed"]
    if e["kind"] == "patch":
        return (e["img_size"] // e["patch"]) ** 2 + int(e.get("class_token", True))
    if x is None:
        raise ValueError("a text model's token count needs its inputs")
    return int(x["input_ids"].shape[1])


def _streams(block: Config, incoming: int) -> int:
    m = len(block["heads"])
    return incoming if m == 1 else m


def forward_flops(config: Config, n_tokens: int) -> dict[str, float]:
    """FLOPs per sample of one forward pass, by part (``embed``, ``qkv``, ``attention``,
    ``proj``, ``mlp``, ``adapters``, ``head``) and ``total``."""
    c, N = config, n_tokens
    e = c["embed"]
    out = dict.fromkeys(("embed", "qkv", "attention", "proj", "mlp", "adapters", "head"), 0.0)
    if e["kind"] == "patch":
        grid = (e["img_size"] // e["patch"]) ** 2
        out["embed"] = 2.0 * grid * e.get("in_chans", 3) * e["patch"] ** 2 * e["dim"]
    D, d, F = c["dim"], c["head_dim"], c["mlp_hidden"]
    s = c.get("embed_streams", 1)
    for b in c["blocks"]:
        s = _streams(b, s)
        Hd = max(max(b["heads"]), 1) * d
        out["qkv"] += 2.0 * s * N * D * 3 * Hd
        out["attention"] += 4.0 * s * N * N * Hd
        out["proj"] += 2.0 * s * N * Hd * D
        out["mlp"] += 4.0 * s * N * D * F
        out["adapters"] += 2.0 * s * N * b.get("lora_rank", 0) * (4 * D + 4 * Hd)
    h = c["head"]
    s = max(s, h["members"])
    if h["kind"] == "zeroshot":
        out["head"] = 2.0 * s * (D * h["embed_dim"] + h["embed_dim"] * h["num_classes"])
    else:
        out["head"] = 2.0 * s * D * h["num_classes"]
    out["total"] = sum(out.values())
    return out


def _linear_params(kind: str, n_in: int, n_out: int, members: int, bias: bool = True, lora: tuple[int, int] = (0, 1)
                   ) -> int:
    rank, groups = lora
    if rank:  # one shared weight and bias, a rank-r adapter per member and group
        return n_in * n_out + (n_out if bias else 0) + members * rank * (groups * n_in + n_out)
    if kind == "batch" and members > 1:  # shared weight, rank-1 fast weights, bias per member
        return n_in * n_out + members * (n_in + n_out) + (members * n_out if bias else 0)
    return members * (n_in * n_out + (n_out if bias else 0))


def parameter_count(config: Config) -> int:
    """Number of parameters of ``StreamTransformer(config)`` (buffers excluded)."""
    c = config
    e, D, d, F = c["embed"], c["dim"], c["head_dim"], c["mlp_hidden"]
    E = e["dim"]
    if e["kind"] == "patch":
        n = (e["img_size"] // e["patch"]) ** 2 + int(e.get("class_token", True))
        count = E * e.get("in_chans", 3) * e["patch"] ** 2 + (E if e.get("conv_bias", True) else 0)
        count += (E if e.get("class_token", True) else 0) + n * E + (2 * E if e.get("pre_norm", False) else 0)
    else:
        count = E * (e["vocab_size"] + e["max_positions"] + e.get("type_vocab_size", 2)) + 2 * E
    for b in c["blocks"]:
        m, kind = len(b["heads"]), b.get("linear", "grouped")
        Hd = max(max(b["heads"]), 1) * d
        mlp_m = b.get("mlp_members", 1) if kind == "grouped" else m
        count += 2 * D * (b.get("norm_members", m) + b.get("norm1_members", b.get("norm_members", m)))
        r = b.get("lora_rank", 0)
        count += _linear_params(kind, D, 3 * Hd, m, c.get("qkv_bias", True), (r, 3)) + _linear_params(kind, Hd, D, m, lora=(r, 1))
        count += _linear_params(kind, D, F, mlp_m) + _linear_params(kind, F, D, mlp_m)
    count += 2 * D * (c.get("final_norm") or 0)
    h = c["head"]
    if h["kind"] == "zeroshot":
        count += h["members"] * D * h["embed_dim"]
    else:
        count += _linear_params(h.get("linear", "grouped"), D, h["num_classes"], h["members"])
    return count


RATES = ("dropout", "attn_dropout")  # rates whose value, once above 0, leaves the work the same


def workload(networks: list[tuple[Config, int]]) -> list[tuple[Config, int]]:
    """What a forward's run time depends on: the networks and their runs, with each dropout rate
    reduced to whether it is on (masks cost the same at any rate)."""
    return [({k: (v > 0 if k in RATES else v) for k, v in cfg.items()}, runs) for cfg, runs in networks]


def describes(networks: list[tuple[Config, int]]) -> bool:
    """Whether the analytic model covers these networks (stream transformers only)."""
    return all("blocks" in cfg for cfg, _ in networks)


def network_cost(networks: list[tuple[Config, int]], x: Any = None, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Analytic cost of a method's inference: ``networks`` holds ``(config, runs per call)`` of
    each network it holds (``UQMethod.inference_networks``). Returns ``flops`` per sample (and
    by part, ``flops/<part>``), ``params`` and ``param_bytes`` at ``dtype``."""
    out: dict[str, float] = {}
    params = 0
    for cfg, runs in networks:
        for part, v in forward_flops(cfg, tokens(cfg, x)).items():
            key = "flops" if part == "total" else f"flops/{part}"
            out[key] = out.get(key, 0.0) + runs * v
        params += parameter_count(cfg)
    out["params"] = float(params)
    out["param_bytes"] = float(params * torch.empty((), dtype=dtype).element_size())
    return out
