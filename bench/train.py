"""The one training loop: AdamW, linear warm-up then cosine decay, mean cross-entropy over
members. Every method trains through it (via ``Task.train``), whatever its network."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import dist


@dataclass(frozen=True)
class Recipe:
    """A task's training recipe; ``epochs`` may be fractional (a share of one pass)."""

    epochs: float = 10.0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.1  # fraction of steps
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    head_lr_mult: float = 1.0  # learning-rate multiplier of the classifier head (fine-tuning)


def member_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean over members of the cross-entropy of each member, logits ``(M, B, C)``."""
    M, B, C = logits.shape
    return F.cross_entropy(logits.reshape(M * B, C), labels.repeat(M), label_smoothing=label_smoothing)


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def fit(
    model: nn.Module,
    batches: Callable[[int], Iterator[tuple[object, Tensor]]],
    steps_per_epoch: int,
    recipe: Recipe,
    epochs: float,
    lr_scale: float = 1.0,
    desc: str = "train",
) -> nn.Module:
    """Train ``model`` in place. ``batches(epoch)`` yields shuffled training batches."""
    total = max(1, round(epochs * steps_per_epoch))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    # Decay weight matrices only: not biases, norms, class/position embeddings, nor
    # BatchEnsemble's fast weights (whose neutral value is 1, not 0).
    is_matrix = lambda n, p: n.endswith("weight") and p.ndim >= 2 and "norm" not in n  # noqa: E731
    groups: dict[tuple[bool, bool], list] = {}
    for n, p in named:
        groups.setdefault((is_matrix(n, p), n.startswith("head.")), []).append(p)
    base_lr = recipe.lr * lr_scale
    opt = torch.optim.AdamW([
        {"params": ps, "weight_decay": recipe.weight_decay if decay else 0.0,
         "lr": base_lr * (recipe.head_lr_mult if head else 1.0)}
        for (decay, head), ps in sorted(groups.items())
    ], lr=base_lr, fused=True)  # one kernel per step: on the CPU the per-tensor loop cost a quarter of a MiniLM step
    warmup = max(1, int(recipe.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, total, warmup))
    model.train()
    net = _ddp(model) if dist.is_distributed() else None  # under torchrun: this rank's share of each batch
    step, epoch = 0, 0
    with tqdm(total=total, desc=desc, leave=False, unit="step", dynamic_ncols=True, mininterval=1.0,
              disable=not dist.is_main() or bool(os.environ.get("TQDM_DISABLE"))) as bar:
        while step < total:
            for x, y in batches(epoch):
                if net is None:
                    loss = value = member_loss(model(x), y, recipe.label_smoothing)
                else:
                    loss, value = _shard_loss(net, x, y, recipe.label_smoothing)
                if not torch.isfinite(value):
                    raise FloatingPointError(f"{desc}: training loss became {value.item()} at step {step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip:
                    nn.utils.clip_grad_norm_(params, recipe.grad_clip)
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{value.item():.3f}", refresh=False)
                if step >= total:
                    break
            epoch += 1
    if net is not None:
        dist.sync_rng()
    return model.eval()


# -- distributed (torchrun) ----------------------------------------------------------------
# Every rank draws the same global batches (same seeds, same augmentation) and keeps a
# contiguous share of each, so the samples, the effective batch and the number of steps are
# those of the single-process run, uneven and short batches included. DDP averages the ranks'
# gradients; weighting each rank's mean loss by its share makes that average the gradient of
# the global batch's mean loss. Forward randomness (dropout) is drawn per shard, so a model
# trained with dropout is equivalent in distribution, not bit for bit.


def _ddp(model: nn.Module) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    dist.init(device)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _shard_loss(net: nn.Module, x: object, y: Tensor, label_smoothing: float) -> tuple[Tensor, Tensor]:
    """This rank's weighted loss on its share of the global batch ``(x, y)``, and the global
    batch's mean loss (the same on every rank, for the progress bar and the finiteness check)."""
    W, r, B = dist.world_size(), dist.rank(), len(y)
    lo, hi = B * r // W, B * (r + 1) // W
    n = hi - lo
    if n == 0:  # fewer samples than ranks: one sample with weight 0 keeps this rank in the all-reduce
        lo, hi = 0, 1
    xs = {k: v[lo:hi] for k, v in x.items()} if isinstance(x, dict) else x[lo:hi]
    local = member_loss(net(xs), y[lo:hi], label_smoothing)
    return local * (n * W / B), dist.all_sum(local.detach() * (n / B))
