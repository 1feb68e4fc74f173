"""The one training loop: AdamW, linear warm-up then cosine decay, mean cross-entropy over
members. Every method trains through it (via ``Task.train``), whatever its network."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm


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
    decay = [p for n, p in named if is_matrix(n, p)]
    no_decay = [p for n, p in named if not is_matrix(n, p)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr * lr_scale,
    )
    warmup = max(1, int(recipe.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, total, warmup))
    model.train()
    step, epoch = 0, 0
    with tqdm(total=total, desc=desc, leave=False, unit="step", dynamic_ncols=True, mininterval=1.0) as bar:
        while step < total:
            for x, y in batches(epoch):
                loss = member_loss(model(x), y, recipe.label_smoothing)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{desc}: training loss became {loss.item()} at step {step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip:
                    nn.utils.clip_grad_norm_(params, recipe.grad_clip)
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if step >= total:
                    break
            epoch += 1
    return model.eval()
