"""One transformer description shared by every method: the *stream transformer*.

A backbone (timm ViT, HF BERT, open_clip image tower) is converted once into this form
(``methods.adapters``); every method then works on the same view: an embedding, blocks that
expose Q/K/V/O per head and the MLP, a final norm, pooling and a head. The model is fully
described by a JSON-able ``config`` so that a fitted method can be rebuilt and loaded from
safetensors without pickle.

Block config keys (all but ``heads`` optional):
    heads:        heads kept by each member, e.g. [2, 2, 2]; its length is the member count
                  of the block. Members with fewer heads than the widest are zero-padded,
                  which contributes exactly nothing (zero V and O weights).
    mlp_members:  1 = one MLP applied to every stream (Hydra's merged MLP), M = one each.
    norm_members: 1 = shared LayerNorms, M = one affine transform per member.
    norm1_members: the first norm's, where it differs (a pre-norm block whose members' affine
                  transforms were folded into their Q/K/V projections has a plain norm: 1).
    linear:       "grouped" (a weight per member) or "batch" (BatchEnsemble rank-1 fast weights).
    lora_rank:    r > 0: Q/K/V and the output projection are one weight shared by the members
                  plus a rank-r adapter per member (one each for Q, K and V; LoRA-Ensemble).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (BatchLinear, LoraLinear, PatchEmbed, StreamLinear, StreamNorm, TextEmbed,
                                    ZeroShotHead)

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
}


def _linear(kind: str, in_f: int, out_f: int, members: int, bias: bool = True, lora: tuple[int, int] = (0, 1)
            ) -> nn.Module:
    """The linear layer of a layout; ``lora`` = (rank, groups) of per-member adapters (rank 0: none)."""
    if lora[0]:
        return LoraLinear(in_f, out_f, members, lora[0], lora[1], bias)
    if kind == "batch" and members > 1:
        return BatchLinear(in_f, out_f, members, bias)
    return StreamLinear(in_f, out_f, members, bias)


class StreamBlock(nn.Module):
    """A transformer block over ``(S, B, N, D)`` streams; pre-norm (ViT, CLIP) or post-norm (BERT)."""

    def __init__(self, cfg: dict[str, Any], model_cfg: dict[str, Any]):
        super().__init__()
        dim, dh = model_cfg["dim"], model_cfg["head_dim"]
        self.heads = list(cfg["heads"])
        self.members, self.head_dim = len(self.heads), dh
        self.max_heads = max(max(self.heads), 1)
        kind = cfg.get("linear", "grouped")
        mlp_m = cfg.get("mlp_members", 1)
        norm_m = cfg.get("norm_members", self.members)
        eps = model_cfg.get("eps", 1e-6)
        self.pre_norm = model_cfg.get("pre_norm", True)
        self.act = ACTIVATIONS[model_cfg.get("act", "gelu")]
        self.dropout = model_cfg.get("dropout", 0.0)  # after the attention and MLP projections
        self.attn_dropout = model_cfg.get("attn_dropout", 0.0)  # on the attention probabilities
        self.mc_dropout = False  # when True, dropout fires in eval mode too (MC Dropout)
        self.head_gate: Tensor | None = None  # (M, max_heads) multiplier on head outputs
        self.norm1 = StreamNorm(dim, cfg.get("norm1_members", norm_m), eps)
        rank = cfg.get("lora_rank", 0)
        self.qkv = _linear(kind, dim, 3 * self.max_heads * dh, self.members, model_cfg.get("qkv_bias", True), (rank, 3))
        self.proj = _linear(kind, self.max_heads * dh, dim, self.members, lora=(rank, 1))
        self.norm2 = StreamNorm(dim, norm_m, eps)
        self.fc1 = _linear(kind, dim, model_cfg["mlp_hidden"], mlp_m if kind == "grouped" else self.members)
        self.fc2 = _linear(kind, model_cfg["mlp_hidden"], dim, mlp_m if kind == "grouped" else self.members)

    def _drop(self, x: Tensor) -> Tensor:
        active = self.dropout > 0 and (self.training or self.mc_dropout)
        return F.dropout(x, self.dropout, training=True) if active else x

    def attention(self, x: Tensor, mask: Tensor | None) -> Tensor:
        qkv = self.qkv(x)
        M, B, N, _ = qkv.shape
        H, dh = self.max_heads, self.head_dim
        q, k, v = qkv.view(M * B, N, 3, H, dh).permute(2, 0, 3, 1, 4).unbind(0)  # (M*B, H, N, dh)
        attn_mask = None
        if mask is not None:  # (B, N) key mask, True = attend
            attn_mask = mask[None, :, None, None, :].expand(M, -1, -1, -1, -1).reshape(M * B, 1, 1, N)
        p = self.attn_dropout if self.training or self.mc_dropout else 0.0
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)  # (M*B, H, N, dh)
        if self.head_gate is not None:
            o = o.view(M, B, H, N, dh) * self.head_gate.view(M, 1, H, 1, 1)
        o = o.reshape(M, B, H, N, dh).permute(0, 1, 3, 2, 4).reshape(M, B, N, H * dh)
        return self._drop(self.proj(o))

    def mlp(self, x: Tensor) -> Tensor:
        return self._drop(self.fc2(self._drop(self.act(self.fc1(x)))))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.pre_norm:
            x = x + self.attention(self.norm1(x), mask)
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attention(x, mask))
        return self.norm2(x + self.mlp(x))


def _embed(cfg: dict[str, Any], streams: int) -> nn.Module:
    cfg = dict(cfg, streams=streams)
    kind = cfg.pop("kind")
    if kind == "patch":
        return PatchEmbed(**cfg)
    if kind == "text":
        return TextEmbed(**cfg)
    raise ValueError(f"unknown embedding kind {kind!r}; expected 'patch' or 'text'")


class StreamTransformer(nn.Module):
    """Embedding -> stream blocks -> final norm -> pooling -> head; returns ``(M, B, C)`` logits."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = copy.deepcopy(config)
        c = self.config
        self.embed_streams = c.get("embed_streams", 1)
        self.embed = _embed(c["embed"], self.embed_streams)
        self.blocks = nn.ModuleList(StreamBlock(b, c) for b in c["blocks"])
        fn = c.get("final_norm")
        self.norm = StreamNorm(c["dim"], fn, c.get("eps", 1e-6)) if fn else None
        self.pool = c.get("pool", "cls")
        h = c["head"]
        if h["kind"] == "zeroshot":
            self.head = ZeroShotHead(c["dim"], h["embed_dim"], h["num_classes"], h["members"])
        else:
            self.head = _linear(h.get("linear", "grouped"), c["dim"], h["num_classes"], h["members"])

    @property
    def num_members(self) -> int:
        return self.config["head"]["members"]

    def features(self, x: Tensor | dict[str, Tensor], blocks: int | None = None) -> tuple[Tensor, Tensor | None]:
        """Tokens ``(S, B, N, D)`` after the first ``blocks`` blocks (default: all), and the key mask."""
        t, mask = self.embed(x)
        B, N, _ = t.shape
        h = t.view(B, N, self.embed_streams, -1).permute(2, 0, 1, 3)  # (S, B, N, D)
        for blk in self.blocks[:blocks]:
            h = blk(h, mask)
        return h, mask

    def forward(self, x: Tensor | dict[str, Tensor]) -> Tensor:
        return self.logits_from(*self.features(x, 0), start=0)

    def logits_from(self, h: Tensor, mask: Tensor | None, start: int) -> Tensor:
        """The logits ``(M, B, C)`` of tokens ``h`` that enter block ``start`` (``features(x, start)``)."""
        for blk in self.blocks[start:]:
            h = blk(h, mask)
        if self.pool == "cls":
            pooled = h[:, :, 0]  # LayerNorm is per token, so norm(pool(h)) == pool(norm(h))
            pooled = pooled if self.norm is None else self.norm(pooled)
        else:
            h = h if self.norm is None else self.norm(h)
            if mask is None:
                pooled = h.mean(dim=2)
            else:
                w = mask.to(h.dtype)[None, :, :, None]
                pooled = (h * w).sum(2) / w.sum(2).clamp_min(1)
        logits = self.head(pooled)  # (M, B, C)
        return logits.expand(self.num_members, *logits.shape[1:]) if logits.shape[0] == 1 else logits

    def set_mc_dropout(self, on: bool) -> None:
        for blk in self.blocks:
            blk.mc_dropout = on


def vit_config(
    img_size: int = 32,
    patch: int = 4,
    dim: int = 192,
    depth: int = 6,
    heads: int = 6,
    mlp_ratio: float = 4.0,
    num_classes: int = 10,
    dropout: float = 0.0,
    attn_dropout: float = 0.0,
) -> dict[str, Any]:
    """Config of a plain pre-norm ViT (timm's defaults: class token, GELU, eps 1e-6)."""
    return {
        "embed": {"kind": "patch", "dim": dim, "img_size": img_size, "patch": patch},
        "dim": dim,
        "head_dim": dim // heads,
        "mlp_hidden": int(dim * mlp_ratio),
        "blocks": [{"heads": [heads]} for _ in range(depth)],
        "pre_norm": True,
        "act": "gelu",
        "eps": 1e-6,
        "final_norm": 1,
        "pool": "cls",
        "head": {"kind": "linear", "num_classes": num_classes, "members": 1},
        "dropout": dropout,
        "attn_dropout": attn_dropout,
    }


@torch.no_grad()
def init_weights(model: StreamTransformer, std: float = 0.02) -> StreamTransformer:
    """ViT-style initialisation for training from scratch: truncated normal weights, zero
    biases, unit norms. Zero-padded heads stay zero."""
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if "norm" in name:
            (p.fill_(1.0) if leaf == "weight" else p.zero_())
        elif leaf in ("bias", "cls_token"):
            p.zero_()
        elif leaf in ("r", "s"):
            continue  # BatchEnsemble fast weights keep their own initialisation
        elif p.ndim >= 2:
            nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)
    return model
