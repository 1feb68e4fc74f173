"""Fusing pruned members into ONE network, as in Hydra Ensembles (arXiv 2510.18358).

Given M single-member networks that share their embedding and the blocks before
``fork_layer`` (``prune`` copies them; member fine-tuning keeps them frozen), the fused
``StreamTransformer`` is:

* shared, run once: the embedding and the blocks before ``fork_layer`` (one stream);
* per member, from ``fork_layer`` on: Q/K/V and output projection as *grouped* linears
  (weights ``(M, out, in)`` applied with one batched matmul -- the block-diagonal structure is
  never materialised), LayerNorm affine transforms; a member with fewer heads than the widest
  is zero-padded (zero Q/K/V rows and zero projection columns: it adds exactly nothing);
* the MLP: with ``merge_mlp`` one MLP whose weights are the members' mean, applied to every
  stream (``mlp_members = 1``, the paper's merged MLP); otherwise one MLP per member;
* per member: the final norm and the classifier head (for a CLIP zero-shot head, its
  projection; the class text embeddings and temperature are shared buffers).

The first block with M members expands the single trunk stream into M streams, so the output
is ``(M, B, C)``: stream m equals member m run alone (with the merged MLP substituted when
``merge_mlp``).

For inference, ``fold_pre_norms`` moves each member's pre-norm affine transform into that
member's Q/K/V weights (W diag(g) and W beta + c): the same function, with one plain LayerNorm
instead of one normalisation plus a per-stream multiply-add.
"""

from __future__ import annotations

import copy

import torch

from .prune import head_rows
from ..transformer import StreamTransformer


def _shared_equal(members: list[StreamTransformer], fork_layer: int) -> None:
    ref = members[0]
    shared = ["embed."] + [f"blocks.{i}." for i in range(fork_layer)]
    ref_state = ref.state_dict()
    for j, m in enumerate(members[1:], start=1):
        for name, t in m.state_dict().items():
            if any(name.startswith(p) for p in shared) and not torch.equal(t, ref_state[name]):
                raise ValueError(f"member {j} differs from member 0 in shared weight {name!r}; "
                                 "freeze the embedding and the blocks before fork_layer")


def fused_config(members: list[dict], fork_layer: int, merge_mlp: bool) -> dict:
    """The config of the network fusing members of configs ``members`` (see the module docstring)."""
    M = len(members)
    cfg = copy.deepcopy(members[0])
    for layer in range(fork_layer, len(cfg["blocks"])):
        heads = [m["blocks"][layer]["heads"][0] for m in members]
        cfg["blocks"][layer] = {**cfg["blocks"][layer], "heads": heads, "linear": "grouped",
                                "mlp_members": 1 if merge_mlp else M, "norm_members": M}
    if cfg.get("final_norm"):
        cfg["final_norm"] = M
    cfg["head"] = {**cfg["head"], "members": M}
    return cfg


@torch.no_grad()
def fuse(members: list[StreamTransformer], fork_layer: int = 0, merge_mlp: bool = True) -> StreamTransformer:
    """One ``StreamTransformer`` whose M output streams are the M members (see module doc)."""
    if not members:
        raise ValueError("fuse needs at least one member")
    depth = len(members[0].blocks)
    for j, m in enumerate(members):
        if m.num_members != 1 or any(b.members != 1 for b in m.blocks):
            raise ValueError(f"member {j} is not a single-member network")
        if len(m.blocks) != depth:
            raise ValueError(f"member {j} has {len(m.blocks)} blocks, member 0 has {depth}")
    _shared_equal(members, fork_layer)
    ref = members[0]
    p0 = next(ref.parameters())
    fused = StreamTransformer(fused_config([m.config for m in members], fork_layer, merge_mlp)).to(device=p0.device, dtype=p0.dtype)

    fused.embed.load_state_dict(ref.embed.state_dict())
    for layer in range(fork_layer):
        fused.blocks[layer].load_state_dict(ref.blocks[layer].state_dict())
    for layer in range(fork_layer, depth):
        dst = fused.blocks[layer]
        srcs = [m.blocks[layer] for m in members]
        H, dh = dst.max_heads, dst.head_dim
        for t in (dst.qkv.weight, dst.qkv.bias, dst.proj.weight):
            if t is not None:
                t.zero_()
        for i, src in enumerate(srcs):
            k = src.max_heads
            rows = head_rows(list(range(k)), H, dh).to(p0.device)
            dst.qkv.weight[i, rows] = src.qkv.weight[0]
            if dst.qkv.bias is not None:
                dst.qkv.bias[i, rows] = src.qkv.bias[0]
            dst.proj.weight[i, :, : k * dh] = src.proj.weight[0]
            dst.proj.bias[i] = src.proj.bias[0]
            for name in ("norm1", "norm2"):
                getattr(dst, name).weight[i] = getattr(src, name).weight[0]
                getattr(dst, name).bias[i] = getattr(src, name).bias[0]
        for name in ("fc1", "fc2"):
            lin = getattr(dst, name)
            ws = torch.stack([getattr(s, name).weight[0] for s in srcs])
            bs = torch.stack([getattr(s, name).bias[0] for s in srcs])
            if merge_mlp:
                lin.weight[0] = ws.mean(0)
                lin.bias[0] = bs.mean(0)
            else:
                lin.weight.copy_(ws)
                lin.bias.copy_(bs)

    for i, m in enumerate(members):
        if fused.norm is not None:
            fused.norm.weight[i] = m.norm.weight[0]
            fused.norm.bias[i] = m.norm.bias[0]
        if fused.config["head"]["kind"] == "zeroshot":
            fused.head.proj.weight[i] = m.head.proj.weight[0]
        else:
            fused.head.weight[i] = m.head.weight[0]
            if fused.head.bias is not None:
                fused.head.bias[i] = m.head.bias[0]
    if fused.config["head"]["kind"] == "zeroshot":
        fused.head.class_embeddings.copy_(ref.head.class_embeddings)
        fused.head.logit_scale.copy_(ref.head.logit_scale)
    return fused.train(ref.training)


def foldable(block: dict, pre_norm: bool) -> bool:
    """Whether a block's first norm can move into its per-member Q/K/V projection."""
    m = len(block["heads"])
    return (pre_norm and m > 1 and block.get("linear", "grouped") == "grouped"
            and block.get("norm1_members", block.get("norm_members", m)) == m)


def folded_config(cfg: dict) -> dict:
    """``cfg`` with every foldable block's first norm plain (``norm1_members = 1``)."""
    out = copy.deepcopy(cfg)
    if out.get("qkv_bias", True):
        for b in out["blocks"]:
            if foldable(b, out.get("pre_norm", True)):
                b["norm1_members"] = 1
    return out


@torch.no_grad()
def fold_pre_norms(model: StreamTransformer) -> StreamTransformer:
    """``model`` (in place) with each member's pre-norm affine folded into its Q/K/V weights."""
    new = folded_config(model.config)
    for blk, old_b, new_b in zip(model.blocks, model.config["blocks"], new["blocks"]):
        if new_b.get("norm1_members") == old_b.get("norm1_members"):
            continue
        g, beta = blk.norm1.weight, blk.norm1.bias  # (M, D)
        blk.qkv.bias += torch.einsum("mod,md->mo", blk.qkv.weight, beta)
        blk.qkv.weight *= g[:, None, :]
        blk.norm1 = type(blk.norm1)(g.shape[1], 1, blk.norm1.eps).to(device=g.device, dtype=g.dtype)
    model.config = new
    return model
