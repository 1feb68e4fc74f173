"""Building blocks of a transformer whose residual stream is split into member streams.

Every tensor that flows between blocks has a leading *stream* axis: ``(S, B, N, D)`` for
tokens, ``(S, B, D)`` after pooling. A single model has one stream; an ensemble fused into
one network (Hydra, Packed-Ensembles, BatchEnsemble) has one stream per member. A layer
with ``members == 1`` is shared: it is applied to every stream that reaches it. A layer
with ``members == M`` holds one set of weights per member and expands a single incoming
stream to M streams (this is how a shared trunk forks into members).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_streams(x: Tensor, members: int) -> None:
    if x.shape[0] not in (1, members):
        raise ValueError(f"{x.shape[0]} streams reach a layer of {members} members")


def _expand_streams(x: Tensor, members: int) -> Tensor:
    _check_streams(x, members)
    return x if x.shape[0] == members else x.expand(members, *x.shape[1:])


def _stream_layer_norm(norm: nn.LayerNorm, x: Tensor, streams: int) -> Tensor:
    """LayerNorm of ``x`` whose channels hold ``streams`` member streams side by side: each
    stream is normalised on its own (members exchange no information), then the affine."""
    if streams == 1:
        return norm(x)
    g = x.unflatten(-1, (streams, -1))  # (..., S, D/S)
    return F.layer_norm(g, (g.shape[-1],), eps=norm.eps).flatten(-2) * norm.weight + norm.bias


def _per_stream(p: Tensor, ndim: int) -> Tensor:
    """View a (members, F) parameter so it broadcasts over a (S, ..., F) tensor."""
    return p.view(p.shape[0], *([1] * (ndim - 2)), p.shape[-1])


class StreamLinear(nn.Module):
    """A linear map per member; ``members == 1`` means one map shared by all streams.

    Weights are stored ``(members, out, in)`` and applied as one batched matrix product
    (never as a dense block-diagonal matrix).
    """

    def __init__(self, in_features: int, out_features: int, members: int = 1, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.members = in_features, out_features, members
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(members, out_features)) if bias else None
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if self.members == 1:
            return F.linear(x, self.weight[0], None if self.bias is None else self.bias[0])
        x = _expand_streams(x, self.members)
        flat = x.reshape(self.members, -1, self.in_features)  # (M, L, in)
        w = self.weight.transpose(1, 2)
        y = torch.bmm(flat, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), flat, w)
        return y.view(*x.shape[:-1], self.out_features)


class LoraLinear(nn.Module):
    """A linear map shared by every stream plus a low-rank adapter per member (LoRA-Ensemble):
    member m computes ``x W^T + b + (x A_m^T) B_m^T``.

    The shared weight and bias are stored like a one-member ``StreamLinear`` (``(1, out, in)``,
    ``(1, out)``). The output may be ``groups`` projections side by side (Q, K and V): each gets an
    adapter of its own, ``lora_a`` ``(M, groups * rank, in)`` and ``lora_b`` ``(M, groups, out /
    groups, rank)``, applied as batched products (no block-diagonal matrix). An adapter's scaling
    is folded into ``lora_b``. The shared product runs on every stream, so the layer costs M times
    the single layer plus the adapters.
    """

    def __init__(self, in_features: int, out_features: int, members: int, rank: int, groups: int = 1,
                 bias: bool = True):
        super().__init__()
        if out_features % groups:
            raise ValueError(f"{out_features} outputs do not split into {groups} groups")
        self.in_features, self.out_features, self.members = in_features, out_features, members
        self.rank, self.groups = rank, groups
        self.weight = nn.Parameter(torch.empty(1, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(1, out_features)) if bias else None
        self.lora_a = nn.Parameter(torch.empty(members, groups * rank, in_features))
        self.lora_b = nn.Parameter(torch.zeros(members, groups, out_features // groups, rank))
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.lora_a, -bound, bound)  # with B = 0 every member starts as the shared layer

    def forward(self, x: Tensor) -> Tensor:
        x = _expand_streams(x, self.members)
        y = F.linear(x, self.weight[0], None if self.bias is None else self.bias[0])  # (M, ..., out)
        M, g, r = self.members, self.groups, self.rank
        flat = x.reshape(M, -1, self.in_features)  # (M, L, in)
        L = flat.shape[1]
        u = torch.bmm(flat, self.lora_a.transpose(1, 2))  # (M, L, g r)
        u = u.view(M, L, g, r).transpose(1, 2).reshape(M * g, L, r)  # (M g, L, r)
        d = torch.bmm(u, self.lora_b.view(M * g, -1, r).transpose(1, 2))  # (M g, L, out / g)
        return y + d.view(M, g, L, -1).transpose(1, 2).reshape(y.shape)


class BatchLinear(nn.Module):
    """BatchEnsemble linear layer (Wen et al., 2020): one shared slow weight W and, per
    member m, rank-1 fast weights so that W_m = W * (s_m r_m^T), plus a bias per member.

    Computed as ((x * r_m) W^T) * s_m + b_m on each stream, so the cost is one shared matmul.
    """

    def __init__(self, in_features: int, out_features: int, members: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.members = in_features, out_features, members
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.r = nn.Parameter(torch.ones(members, in_features))
        self.s = nn.Parameter(torch.ones(members, out_features))
        self.bias = nn.Parameter(torch.zeros(members, out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        x = _expand_streams(x, self.members)
        y = F.linear(x * _per_stream(self.r, x.ndim), self.weight) * _per_stream(self.s, x.ndim)
        return y if self.bias is None else y + _per_stream(self.bias, x.ndim)


class StreamNorm(nn.Module):
    """LayerNorm with one affine transform per member (or one shared when members == 1)."""

    def __init__(self, dim: int, members: int = 1, eps: float = 1e-6):
        super().__init__()
        self.dim, self.members, self.eps = dim, members, eps
        self.weight = nn.Parameter(torch.ones(members, dim))
        self.bias = nn.Parameter(torch.zeros(members, dim))

    def forward(self, x: Tensor) -> Tensor:
        if self.members == 1:
            return F.layer_norm(x, (self.dim,), self.weight[0], self.bias[0], self.eps)
        _check_streams(x, self.members)
        # normalise the incoming streams once (a trunk stream is not copied M times), then one
        # fused multiply-add applies each member's affine transform and expands to M streams
        y = F.layer_norm(x, (self.dim,), eps=self.eps)
        return torch.addcmul(_per_stream(self.bias, x.ndim), y, _per_stream(self.weight, x.ndim))


class PatchEmbed(nn.Module):
    """Image to tokens: patch convolution, optional class token, learned positions, optional
    pre-norm. Returns ``(tokens (B, N, D), None)``; ``D`` may hold ``streams`` member streams
    side by side (Packed-Ensembles), each normalised on its own."""

    def __init__(
        self,
        dim: int,
        img_size: int,
        patch: int,
        in_chans: int = 3,
        class_token: bool = True,
        conv_bias: bool = True,
        pre_norm: bool = False,
        eps: float = 1e-6,
        streams: int = 1,
    ):
        super().__init__()
        self.streams = streams
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=patch, bias=conv_bias)
        n = (img_size // patch) ** 2 + int(class_token)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.norm = nn.LayerNorm(dim, eps=eps) if pre_norm else None

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        t = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)
        if self.cls_token is not None:
            t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        t = t + self.pos_embed
        return (t if self.norm is None else _stream_layer_norm(self.norm, t, self.streams)), None


class TextEmbed(nn.Module):
    """BERT embeddings: word + position + token type, then LayerNorm. Takes a dict with
    ``input_ids`` and ``attention_mask`` (B, N); returns tokens and a boolean key mask."""

    def __init__(self, dim: int, vocab_size: int, max_positions: int, type_vocab_size: int = 2,
                 eps: float = 1e-12, streams: int = 1):
        super().__init__()
        self.streams = streams
        self.word = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(max_positions, dim)
        self.token_type = nn.Embedding(type_vocab_size, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        ids = batch["input_ids"]
        pos = torch.arange(ids.shape[1], device=ids.device)
        t = self.word(ids) + self.position(pos) + self.token_type(torch.zeros_like(ids))
        return _stream_layer_norm(self.norm, t, self.streams), batch["attention_mask"].bool()


class ZeroShotHead(nn.Module):
    """CLIP zero-shot classifier: project, L2-normalise, cosine against fixed class text
    embeddings, times the learned temperature."""

    def __init__(self, dim: int, embed_dim: int, num_classes: int, members: int = 1):
        super().__init__()
        self.proj = StreamLinear(dim, embed_dim, members, bias=False)
        self.register_buffer("class_embeddings", torch.zeros(num_classes, embed_dim))
        self.register_buffer("logit_scale", torch.tensor(math.log(1 / 0.07)))

    def forward(self, x: Tensor) -> Tensor:
        z = F.normalize(self.proj(x), dim=-1)
        return self.logit_scale.exp() * z @ self.class_embeddings.T
