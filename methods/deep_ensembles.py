"""Deep Ensembles: M independently trained networks.

Lakshminarayanan, Pritzel and Blundell, "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS 2017.

Member k is the task's single model of seed ``task.seed + 1000 * k``: member 0 is exactly the
``single`` method's model of the same seed (shared through the task's cache), and a resumed
run retrains no member that already finished. At inference the members run one after another,
which is the honest cost of an ensemble of M separate networks.
"""

from __future__ import annotations

from torch import nn

from uqbench.methods.base import ConfigError, Task, UQMethod, register

SEED_STRIDE = 1000  # member k trains with seed task.seed + SEED_STRIDE * k


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
        return [seed + SEED_STRIDE * k for k in range(self.num_members)]

    def inference_networks(self, backbone: dict) -> list[tuple[dict, int]]:
        return [(backbone, 1)] * self.num_members

    def fit(self, task: Task) -> DeepEnsembles:
        """Train (or fetch from the task's cache) the M single models."""
        self.validate()
        seeds = self.member_seeds(task.seed)
        self.models_ = nn.ModuleList(task.single_model(s) for s in seeds)  # each returns (1, B, C)
        self.extra_ = {"member_seeds": seeds}
        return self.eval()
