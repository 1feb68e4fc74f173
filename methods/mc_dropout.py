"""Monte Carlo Dropout: dropout kept on at test time, T stochastic passes as the ensemble.

Gal and Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty in
Deep Learning", ICML 2016.

The backbone gets dropout ``p`` after the attention and MLP projections and on the attention
probabilities (``config`` keys ``dropout`` and ``attn_dropout``). On a trainable task it is
trained with that dropout (as the method requires); on a zero-shot task the backbone is used as
is, with dropout switched on at inference only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import ConfigError, Inputs, Task, UQMethod, register


@register
class MCDropout(UQMethod):
    """One network, ``samples`` stochastic forward passes with dropout active.

    Args:
        p: dropout probability (0 <= p < 1), used both after projections and on attention.
        samples: number T of stochastic passes (the "members"), >= 1.
    """

    name = "mc_dropout"
    needs_training = False  # dropout on a zero-shot model needs no training
    inference_only = ("samples",)

    def __init__(self, p: float = 0.1, samples: int = 10) -> None:
        self.p = p
        self.samples = samples

    def validate(self) -> None:
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0 <= self.p < 1:
            raise ConfigError(f"p must be a float in [0, 1), got {self.p!r}")
        if not isinstance(self.samples, int) or isinstance(self.samples, bool) or self.samples < 1:
            raise ConfigError(f"samples must be an integer >= 1, got {self.samples!r}")

    @property
    def num_members(self) -> int:
        return self.samples

    def inference_networks(self, backbone: dict) -> list[tuple[dict, int]]:
        # the network fit builds: dropout adds no matrix product, but it takes time
        return [({**backbone, "dropout": float(self.p), "attn_dropout": float(self.p)}, self.samples)]

    def fit(self, task: Task) -> MCDropout:
        """Build the backbone with dropout ``p``; train it when the task allows training."""
        self.validate()
        p = float(self.p)
        model = task.backbone(task.seed, dropout=p, attn_dropout=p)
        if task.trainable:
            model = task.train(model, task.seed)
        self.models_ = nn.ModuleList([model])
        self.extra_ = {"trained": bool(task.trainable)}
        self._after_load()
        return self.eval()

    def _after_load(self) -> None:
        for m in self._fitted():
            m.set_mc_dropout(True)

    def forward_members(self, x: Inputs) -> Tensor:
        """``samples`` stochastic passes, ``(T, B, C)``; draws from torch's global RNG."""
        model = self._fitted()[0]
        return torch.cat([model(x) for _ in range(self.samples)], dim=0)  # T x (1, B, C)
