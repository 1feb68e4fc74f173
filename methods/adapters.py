"""Convert library transformers into the one view every method works on.

``from_timm_vit``, ``from_hf_bert`` and ``from_open_clip_visual`` copy the weights of a timm
``VisionTransformer``, a Hugging Face ``BertModel`` and an open_clip image tower into a
``StreamTransformer`` that computes the same function (checked to 1e-5 in the tests).
Features these adapters do not translate (layer scale, QK norm, attention pooling, ...) raise
``NotImplementedError`` naming the feature rather than giving a silently different model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .transformer import StreamTransformer

_ACTS = {"GELU": "gelu", "QuickGELU": "quick_gelu", "GELUTanh": "gelu_tanh", "ReLU": "relu"}


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise NotImplementedError(f"cannot convert a model with {what}")


def _act_name(module: nn.Module) -> str:
    name = type(module).__name__
    if name == "GELU" and getattr(module, "approximate", "none") == "tanh":
        return "gelu_tanh"
    _require(name in _ACTS, f"activation {name}")
    return _ACTS[name]


@torch.no_grad()
def _fill_block(blk, norm1, q, k, v, o, norm2, fc1, fc2) -> None:
    """Copy one block's weights; q/k/v/o/fc1/fc2 are (weight, bias) pairs, norms nn.LayerNorm."""
    for dst, src in ((blk.norm1, norm1), (blk.norm2, norm2)):
        dst.weight[0].copy_(src.weight)
        dst.bias[0].copy_(src.bias)
    blk.qkv.weight[0].copy_(torch.cat([q[0], k[0], v[0]], 0))
    if blk.qkv.bias is not None:
        blk.qkv.bias[0].copy_(torch.cat([q[1], k[1], v[1]], 0))
    for dst, (w, b) in ((blk.proj, o), (blk.fc1, fc1), (blk.fc2, fc2)):
        dst.weight[0].copy_(w)
        dst.bias[0].copy_(b)


def _base_config(dim: int, heads: int, depth: int, mlp_hidden: int, **kw) -> dict:
    cfg = {
        "dim": dim,
        "head_dim": dim // heads,
        "mlp_hidden": mlp_hidden,
        "blocks": [{"heads": [heads]} for _ in range(depth)],
    }
    cfg.update(kw)
    return cfg


@torch.no_grad()
def from_timm_vit(vit: nn.Module) -> StreamTransformer:
    """A timm ``VisionTransformer`` (class-token pooling, plain blocks) as a StreamTransformer."""
    _require(vit.global_pool == "token", f"global_pool={vit.global_pool!r}")
    _require(getattr(vit, "attn_pool", None) is None, "attention pooling")
    _require(not getattr(vit, "no_embed_class", False), "no_embed_class")
    _require(isinstance(vit.norm_pre, nn.Identity), "a pre-norm")
    blk0 = vit.blocks[0]
    _require(isinstance(blk0.ls1, nn.Identity), "layer scale")
    _require(isinstance(blk0.attn.q_norm, nn.Identity), "QK norm")
    dim, heads = vit.embed_dim, blk0.attn.num_heads
    _require(vit.cls_token is not None, "no class token")
    cfg = _base_config(
        dim, heads, len(vit.blocks), blk0.mlp.fc1.out_features,
        embed={"kind": "patch", "dim": dim, "img_size": vit.patch_embed.img_size[0],
               "patch": vit.patch_embed.patch_size[0], "in_chans": vit.patch_embed.proj.in_channels},
        pre_norm=True, act=_act_name(blk0.mlp.act), eps=blk0.norm1.eps,
        qkv_bias=blk0.attn.qkv.bias is not None, final_norm=1, pool="cls",
        head={"kind": "linear", "num_classes": vit.head.out_features, "members": 1},
    )
    model = StreamTransformer(cfg)
    e = model.embed
    e.proj.load_state_dict(vit.patch_embed.proj.state_dict())
    e.cls_token.copy_(vit.cls_token)
    e.pos_embed.copy_(vit.pos_embed)
    for blk, src in zip(model.blocks, vit.blocks):
        w, b = src.attn.qkv.weight, src.attn.qkv.bias
        bq = b.chunk(3) if b is not None else (None, None, None)
        q, k, v = zip(w.chunk(3), bq)
        o = (src.attn.proj.weight, src.attn.proj.bias)
        fc1 = (src.mlp.fc1.weight, src.mlp.fc1.bias)
        fc2 = (src.mlp.fc2.weight, src.mlp.fc2.bias)
        _fill_block(blk, src.norm1, q, k, v, o, src.norm2, fc1, fc2)
    model.norm.weight[0].copy_(vit.norm.weight)
    model.norm.bias[0].copy_(vit.norm.bias)
    model.head.weight[0].copy_(vit.head.weight)
    model.head.bias[0].copy_(vit.head.bias)
    return model


@torch.no_grad()
def from_hf_bert(bert: nn.Module, num_classes: int, pool: str = "mean") -> StreamTransformer:
    """A Hugging Face ``BertModel`` with a new linear head over mean-pooled (or [CLS]) tokens.

    The head is freshly initialised (seed the caller's RNG); all-MiniLM-L6-v2 was trained
    with mean pooling, hence the default.
    """
    c = bert.config
    _require(getattr(c, "position_embedding_type", "absolute") == "absolute", "relative positions")
    cfg = _base_config(
        c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.intermediate_size,
        embed={"kind": "text", "dim": c.hidden_size, "vocab_size": c.vocab_size,
               "max_positions": c.max_position_embeddings, "type_vocab_size": c.type_vocab_size,
               "eps": c.layer_norm_eps},
        pre_norm=False, act={"gelu": "gelu", "gelu_new": "gelu_tanh", "relu": "relu"}[c.hidden_act],
        eps=c.layer_norm_eps, final_norm=0, pool=pool,
        head={"kind": "linear", "num_classes": num_classes, "members": 1},
    )
    model = StreamTransformer(cfg)
    emb = bert.embeddings
    model.embed.word.load_state_dict(emb.word_embeddings.state_dict())
    model.embed.position.load_state_dict(emb.position_embeddings.state_dict())
    model.embed.token_type.load_state_dict(emb.token_type_embeddings.state_dict())
    model.embed.norm.load_state_dict(emb.LayerNorm.state_dict())
    for blk, layer in zip(model.blocks, bert.encoder.layer):
        a = layer.attention
        lin = lambda m: (m.weight, m.bias)  # noqa: E731
        _fill_block(blk, a.output.LayerNorm, lin(a.self.query), lin(a.self.key), lin(a.self.value),
                    lin(a.output.dense), layer.output.LayerNorm, lin(layer.intermediate.dense),
                    lin(layer.output.dense))
    nn.init.normal_(model.head.weight, std=0.02)
    nn.init.zeros_(model.head.bias)
    return model


@torch.no_grad()
def from_open_clip_visual(visual: nn.Module, class_embeddings: Tensor, logit_scale: Tensor) -> StreamTransformer:
    """An open_clip ``VisionTransformer`` image tower plus a zero-shot head.

    ``class_embeddings`` (C, E) are the normalised text embeddings of the class prompts,
    ``logit_scale`` the model's learned log temperature.
    """
    _require(visual.attn_pool is None, "attentional pooling")
    _require(visual.pool_type == "tok", f"pool_type={visual.pool_type!r}")
    _require(not visual.final_ln_after_pool, "final_ln_after_pool")
    _require(isinstance(visual.ln_pre, nn.LayerNorm), "no_ln_pre")
    blocks = visual.transformer.resblocks
    r0 = blocks[0]
    _require(isinstance(r0.ls_1, nn.Identity), "layer scale")
    dim, heads = visual.conv1.out_channels, r0.attn.num_heads
    grid = visual.grid_size[0]
    patch = visual.conv1.kernel_size[0]
    cfg = _base_config(
        dim, heads, len(blocks), r0.mlp.c_fc.out_features,
        embed={"kind": "patch", "dim": dim, "img_size": grid * patch, "patch": patch,
               "conv_bias": False, "pre_norm": True, "eps": visual.ln_pre.eps},
        pre_norm=True, act=_act_name(r0.mlp.gelu), eps=r0.ln_1.eps, final_norm=1, pool="cls",
        head={"kind": "zeroshot", "embed_dim": visual.proj.shape[1],
              "num_classes": class_embeddings.shape[0], "members": 1},
    )
    model = StreamTransformer(cfg)
    e = model.embed
    e.proj.weight.copy_(visual.conv1.weight)
    e.cls_token.copy_(visual.class_embedding.view(1, 1, -1))
    e.pos_embed.copy_(visual.positional_embedding.unsqueeze(0))
    e.norm.load_state_dict(visual.ln_pre.state_dict())
    for blk, r in zip(model.blocks, blocks):
        w, b = r.attn.in_proj_weight, r.attn.in_proj_bias
        q, k, v = zip(w.chunk(3), b.chunk(3))
        o = (r.attn.out_proj.weight, r.attn.out_proj.bias)
        fc1 = (r.mlp.c_fc.weight, r.mlp.c_fc.bias)
        fc2 = (r.mlp.c_proj.weight, r.mlp.c_proj.bias)
        _fill_block(blk, r.ln_1, q, k, v, o, r.ln_2, fc1, fc2)
    model.norm.weight[0].copy_(visual.ln_post.weight)
    model.norm.bias[0].copy_(visual.ln_post.bias)
    model.head.proj.weight[0].copy_(visual.proj.T)
    model.head.class_embeddings.copy_(class_embeddings)
    model.head.logit_scale.copy_(logit_scale)
    return model
