"""Deep Ensembles: M independently trained networks.

Lakshminarayanan, Pritzel and Blundell, "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS 2017.

Member 0 is exactly the ``single`` method's model of the job's seed (shared through the task's
cache); member k > 0 is the task's single model of seed ``derive_seed(seed, "deep_ensembles/member", k)``.
A resumed run retrains no member that already finished. At inference the members run one after another,
which is the honest cost of an ensemble of M separate networks.
"""

from __future__ import annotations

from torch import nn

from uqbench.methods.base import ConfigError, Task, UQMethod, derive_seed, register


@register
class DeepEnsembles(UQMethod):
    """M single models trained from different seeds (initialisation and data order).

    Args:
        num_members: ensemble size M (>= 1).
    """

    name = "deep_ensembles"
    needs_training = True

    def __init__(self, num_members: int = 3) -> None:
        self.num_members = num_members

    def validate(self) -> None:
        if not isinstance(self.num_members, int) or isinstance(self.num_members, bool) or self.num_members < 1:
            raise ConfigError(f"num_members must be an integer >= 1, got {self.num_members!r}")

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
        models = [task.single_model(s) for s in reversed(seeds)][::-1]
        self.models_ = nn.ModuleList(models)  # each returns (1, B, C)
        self.extra_ = {"member_seeds": seeds}
        return self.eval()
