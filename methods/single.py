"""Single model: one network, M = 1. The reference every ensemble is measured against."""

from __future__ import annotations

import copy

from torch import nn

from .base import ConfigError, Task, UQMethod, derive_seed, register


@register
class Single(UQMethod):
    """The task's model trained once with the task's recipe (or used as is on zero-shot tasks).

    Args:
        extra_finetune_frac: further fine-tuning of the trained model, as a fraction of the
            task's epochs, at ``lr_scale`` times its learning rate. It gives the single model
            the extra training a Hydra ensemble receives (Hydra's default: 3 members x 0.25),
            for a like-for-like comparison. 0 (default) = the plain single model.
        lr_scale: learning-rate factor of that fine-tuning.
    """

    name = "single"
    needs_training = False

    def __init__(self, extra_finetune_frac: float = 0.0, lr_scale: float = 0.2) -> None:
        self.extra_finetune_frac = extra_finetune_frac
        self.lr_scale = lr_scale

    def validate(self) -> None:
        if not self.extra_finetune_frac >= 0:
            raise ConfigError(f"extra_finetune_frac={self.extra_finetune_frac!r} must be >= 0")
        if not self.lr_scale > 0:
            raise ConfigError(f"lr_scale={self.lr_scale!r} must be > 0")

    def inference_networks(self, backbone: dict) -> list[tuple[dict, int]]:
        return [(backbone, 1)]

    def fit(self, task: Task) -> Single:
        model = task.single_model(task.seed)
        if self.extra_finetune_frac > 0 and task.trainable:
            model = task.train(copy.deepcopy(model), derive_seed(task.seed, "single/finetune"),
                               epochs=self.extra_finetune_frac * task.epochs, lr_scale=self.lr_scale)
        self.models_ = nn.ModuleList([model.eval()])
        self.extra_ = {"extra_finetune_epochs": self.extra_finetune_frac * task.epochs if task.trainable else 0.0}
        return self
