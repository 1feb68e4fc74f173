"""Single model: one network, M = 1. The reference every ensemble is measured against."""

from __future__ import annotations

from torch import nn

from methods.base import Task, UQMethod, register


@register
class Single(UQMethod):
    """The task's model trained once with the task's recipe (or used as is on zero-shot tasks)."""

    name = "single"
    needs_training = False

    def __init__(self) -> None:
        pass

    def fit(self, task: Task) -> Single:
        self.models_ = nn.ModuleList([task.single_model(task.seed)])
        self.extra_ = {}
        return self
