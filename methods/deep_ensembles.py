"""Deep Ensembles: M independently trained networks.

Lakshminarayanan, Pritzel and Blundell, "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS 2017.

Member 0 is exactly the ``single`` method's model of the job's seed (shared through the task's
cache); member k > 0 is the task's single model of seed ``derive_seed(seed, "deep_ensembles/member", k)``.
With ``lr_scale`` other than 1 the members are trained afresh at that multiple of the task's
learning rate (the one knob a tuning study gives the members), so member 0 is no longer ``single``.
A resumed run retrains no member that already finished. At inference the members run one after another,
which is the honest cost of an ensemble of M separate networks.
"""

from __future__ import annotations

from torch import nn

from .base import ConfigError, Task, UQMethod, derive_seed, register


@register
class DeepEnsembles(UQMethod):
    """M single models trained from different seeds (initialisation and data order).

    Args:
        num_members: ensemble size M (>= 1).
        lr_scale: the members' learning rate, as a multiple of the task's (> 0).
    """

    name = "deep_ensembles"
    needs_training = True

    def __init__(self, num_members: int = 3, lr_scale: float = 1.0) -> None:
        self.num_members = num_members
        self.lr_scale = lr_scale

    def validate(self) -> None:
        if not isinstance(self.num_members, int) or isinstance(self.num_members, bool) or self.num_members < 1:
            raise ConfigError(f"num_members must be an integer >= 1, got {self.num_members!r}")
        if isinstance(self.lr_scale, bool) or not isinstance(self.lr_scale, (int, float)) or not self.lr_scale > 0:
            raise ConfigError(f"lr_scale must be a number > 0, got {self.lr_scale!r}")

    def member_seeds(self, seed: int) -> list[int]:
        """Training seeds of the members for a job seed."""
        return [seed] + [derive_seed(seed, "deep_ensembles/member", k) for k in range(1, self.num_members)]

    def inference_networks(self, backbone: dict) -> list[tuple[dict, int]]:
        return [(backbone, 1)] * self.num_members

    def fit(self, task: Task) -> DeepEnsembles:
        """Train (or fetch from the task's cache) the M single models."""
        self.validate()
        seeds = self.member_seeds(task.seed)
        # Member 0 (the `single` model) last: a runner beside this one may be training it now.
        models = [self._member(task, k, s) for k, s in reversed(list(enumerate(seeds)))][::-1]
        self.models_ = nn.ModuleList(models)  # each returns (1, B, C)
        self.extra_ = {"member_seeds": seeds}
        return self.eval()

    def _member(self, task: Task, k: int, seed: int) -> nn.Module:
        if self.lr_scale == 1 or not task.trainable:
            return task.single_model(seed)
        return task.train(task.backbone(seed), seed, lr_scale=float(self.lr_scale), member=k)
