"""Which attention heads matter: the two head-selection criteria of Hydra Ensembles
(Gabetni, Curci et al., "Ensembling Pruned Attention Heads For Uncertainty-Aware Efficient
Transformers", arXiv 2510.18358, ICLR 2026), plus the (optionally Gumbel-perturbed) top-k
that turns scores into a member's head set.

``taylor`` -- first-order Taylor importance (Michel, Levy & Neubig, "Are Sixteen Heads Really
Better than One?", NeurIPS 2019). A gate xi_h multiplies the output o_h of every head; at
xi = 1 the importance is

    I_h = E_x | dL(x) / d xi_h | = E_x | sum_{n,d} o_h(x)[n, d] * dL(x) / d o_h(x)[n, d] |,

with L the cross-entropy. The absolute value is taken *per example* (the inner product above
is exact for each example because o_h(x) only influences L(x)), then averaged over all
examples of the scoring batches. A head whose output is identically zero scores exactly 0.

``circuit`` -- layer-conditioned circuit extraction in the spirit of HeadMap (Wang et al.,
ICLR 2025). Layers are visited in order; heads of earlier layers are already fixed (kept
heads on, removed heads masked). For each head h of the current layer, the objective is
evaluated with h masked on top of the earlier layers' masks; the score is how much masking
h *raises* the objective:

    s_h = J(mask_<l ∪ {h}) - J(mask_<l),
    J   = CE_val + ood_weight * (1 - Hbar_ood / log C)        (lower is better)

where CE_val is the mean cross-entropy on the 'val' batches and Hbar_ood the mean entropy of
the predictive distribution on the 'ood_val' batches (the term is dropped when the task has
no 'ood_val' split or ood_weight == 0). Dividing by log C puts the OOD term in [0, 1], so it
rewards heads that keep the model uncertain on OOD inputs without swamping accuracy. The k
highest-scoring heads are kept, the rest of the layer is masked, and the next layer is
scored under that mask. No gradient is taken, so this works on zero-shot models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..transformer import StreamTransformer

Batches = Sequence[tuple[object, Tensor]]


def select_heads(scores: Tensor, k: int, tau: float = 0.0, gen: torch.Generator | None = None) -> list[int]:
    """The k heads to keep, ascending. ``tau == 0``: the k best scores (ties -> lower index).
    ``tau > 0``: Gumbel top-k, i.e. k heads drawn without replacement from softmax(z / tau),
    where z are the scores standardised over the layer (so tau does not depend on their scale)."""
    s = scores.detach().double().cpu()
    if tau > 0:
        z = (s - s.mean()) / s.std().clamp_min(1e-12) if len(s) > 1 else torch.zeros_like(s)
        u = torch.rand(len(s), generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        s = z / tau - torch.log(-torch.log(u))
    order = torch.sort(-s, stable=True).indices
    return sorted(order[:k].tolist())


def _set_gates(model: StreamTransformer, gates: list[Tensor] | None) -> None:
    for i, blk in enumerate(model.blocks):
        blk.head_gate = None if gates is None else gates[i]


def _check_single(model: StreamTransformer) -> None:
    if any(blk.members != 1 for blk in model.blocks) or model.num_members != 1:
        raise ValueError("head scoring expects a single model (one member in every block)")


def taylor_scores(model: StreamTransformer, batches: Batches) -> list[Tensor]:
    """Per-layer Taylor importances ``(H_l,)`` averaged over every example of ``batches``."""
    _check_single(model)
    if not batches:
        raise ValueError("taylor scoring needs at least one batch")
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    device = next(model.parameters()).device
    # The gates only make the graph reach every head output; the scores come from the
    # captured inputs of each output projection (the gated head outputs, (1, B, N, H*dh)).
    gates = [torch.ones(1, blk.max_heads, device=device, requires_grad=True) for blk in model.blocks]
    captured: list[Tensor] = []
    hooks = [blk.proj.register_forward_pre_hook(lambda _m, inp: captured.append(inp[0])) for blk in model.blocks]
    totals = [torch.zeros(blk.max_heads, dtype=torch.float64, device=device) for blk in model.blocks]
    count = 0
    try:
        _set_gates(model, gates)
        with torch.enable_grad():
            for x, y in batches:
                captured.clear()
                logits = model(x)  # (1, B, C)
                loss = F.cross_entropy(logits[0].float(), y, reduction="sum")  # sum: per-example grads
                grads = torch.autograd.grad(loss, captured)
                for i, (blk, o, g) in enumerate(zip(model.blocks, captured, grads)):
                    per_head = (o * g).view(*o.shape[:3], blk.max_heads, blk.head_dim).sum((2, 4))  # (1, B, H)
                    totals[i] += per_head[0].abs().sum(0).double()
                count += len(y)
    finally:
        for h in hooks:
            h.remove()
        _set_gates(model, None)
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
    return [t.float().cpu() / count for t in totals]


@torch.no_grad()
def circuit_objective(model: StreamTransformer, val: Batches, ood: Batches, ood_weight: float) -> float:
    """J = mean CE on ``val`` + ood_weight * (1 - mean normalised predictive entropy on ``ood``)."""
    ce, n = 0.0, 0
    for x, y in val:
        logits = model(x).float()  # (M, B, C)
        M, B, C = logits.shape
        ce += F.cross_entropy(logits.reshape(M * B, C), y.repeat(M), reduction="sum").item() / M
        n += B
    J = ce / max(n, 1)
    if ood and ood_weight > 0:
        ent, n = 0.0, 0
        for x, _ in ood:
            p = model(x).float().softmax(-1).mean(0)  # (B, C)
            ent += -(p * p.clamp_min(1e-12).log()).sum(-1).sum().item()
            n += p.shape[0]
        C = p.shape[-1]
        J += ood_weight * (1 - ent / max(n, 1) / math.log(C))
    return J


@torch.no_grad()
def circuit_select(
    model: StreamTransformer,
    val: Batches,
    ood: Batches,
    k: int,
    fork_layer: int = 0,
    tau: float = 0.0,
    gen: torch.Generator | None = None,
    ood_weight: float = 1.0,
) -> tuple[list[list[int]], list[Tensor]]:
    """Head sets and scores of the layers ``fork_layer..depth-1``, chosen layer by layer."""
    _check_single(model)
    if not val:
        raise ValueError("circuit scoring needs at least one 'val' batch")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gates: list[Tensor | None] = [None] * len(model.blocks)  # None: every head on
    sets, scores = [], []
    try:
        for layer in range(fork_layer, len(model.blocks)):
            H = model.blocks[layer].max_heads
            # One pass per batch scores the layer: the blocks before it run once, then stream 0
            # keeps every head of this layer and stream 1 + h masks head h.
            trial = torch.ones(1 + H, H, device=device)
            trial[1:].fill_diagonal_(0.0)
            J = _stream_objectives(model, val, ood, ood_weight, gates, layer, trial)
            s = (J[1:] - J[0]).float()
            keep = select_heads(s, k, tau, gen)
            gates[layer] = torch.zeros(1, H, device=device)
            gates[layer][0, keep] = 1.0
            sets.append(keep)
            scores.append(s)
    finally:
        _set_gates(model, None)
        model.train(was_training)
    return sets, scores


@torch.no_grad()
def _stream_objectives(model: StreamTransformer, val: Batches, ood: Batches, ood_weight: float,
                       gates: list[Tensor | None], layer: int, trial: Tensor) -> Tensor:
    """``circuit_objective`` under each row of ``trial`` as the head gate of ``layer``, the
    earlier layers gated by ``gates`` (the later ones all on), ``(len(trial),)`` float64."""
    S = trial.shape[0]

    def logits(x) -> Tensor:  # (S, B, C)
        _set_gates(model, gates[:layer] + [None] * (len(gates) - layer))
        h, mask = model.features(x, layer)
        _set_gates(model, [None] * layer + [trial] + [None] * (len(gates) - layer - 1))
        return model.logits_from(h.expand(S, *h.shape[1:]), mask, layer).float()

    ce, n = torch.zeros(S, dtype=torch.float64), 0
    for x, y in val:
        z = logits(x)
        ce += F.cross_entropy(z.flatten(0, 1), y.repeat(S), reduction="none").view(S, -1).sum(1).double().cpu()
        n += len(y)
    J = ce / max(n, 1)
    if ood and ood_weight > 0:
        ent, n = torch.zeros(S, dtype=torch.float64), 0
        for x, _ in ood:
            p = logits(x).softmax(-1)  # (S, B, C): each stream is one whole model here
            ent += -(p * p.clamp_min(1e-12).log()).sum(-1).sum(1).double().cpu()
            n += p.shape[1]
        J += ood_weight * (1 - ent / max(n, 1) / math.log(p.shape[-1]))
    return J
