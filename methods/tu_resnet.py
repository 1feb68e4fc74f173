"""CNN ensembles from torch-uncertainty: its Packed-Ensembles and BatchEnsemble ResNets.

Laurent et al., "Packed-Ensembles for Efficient Uncertainty Estimation", ICLR 2023; Wen, Tran
and Ba, "BatchEnsemble: an Alternative Approach to Efficient Ensemble and Lifelong Learning",
ICLR 2020. The networks are torch-uncertainty's own (``packed_resnet``, ``batched_resnet``, in
its CIFAR style: a 3x3 stem and no max-pooling), trained from scratch with the task's recipe
like every method here, so that CNN ensembles stand as references beside the transformer ones.

torch-uncertainty returns member logits stacked as ``(M * B, C)``, member-major; ``TUEnsemble``
views them as ``(M, B, C)``. BatchEnsemble runs with ``repeat_strategy="legacy"``: every
member sees every sample in training too, as in ``methods.batch_ensemble``. MIMO is left out:
it trains on a different batch per member, which the one training loop does not do.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .base import ConfigError, Task, UQMethod, register

KINDS = ("packed", "batched")
NOTE = "CNN reference: torch-uncertainty's {kind} ResNet-{arch} (M={members}), trained from scratch"


class TUEnsemble(nn.Module):
    """A torch-uncertainty ResNet ensemble built from a JSON-able config; forward ``(M, B, C)``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        from torch_uncertainty.models.classification import batched_resnet, packed_resnet

        self.config = dict(config)
        self.num_members = config["num_members"]
        common = dict(in_channels=config["in_channels"], num_classes=config["num_classes"], arch=config["arch"],
                      num_estimators=self.num_members, width_multiplier=config["width"], style="cifar")
        if config["kind"] == "packed":
            self.net = packed_resnet(alpha=config["alpha"], gamma=config["gamma"], **common)
        else:
            self.net = batched_resnet(repeat_strategy="legacy", **common)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, C_in, H, W)
        z = self.net(x)  # (M * B, C), member-major
        return z.view(self.num_members, -1, z.shape[-1])  # (M, B, C)


@register
class TUResNet(UQMethod):
    """A torch-uncertainty ResNet ensemble, trained from scratch on an image task.

    Args:
        kind: ``"packed"`` (Packed-Ensembles) or ``"batched"`` (BatchEnsemble).
        arch: ResNet depth as torch-uncertainty names it (18, 20, 34, 50, ...).
        num_members: ensemble size M (>= 1).
        alpha: Packed-Ensembles width factor (packed only).
        gamma: Packed-Ensembles groups per member (packed only).
        width: width multiplier of the ResNet (1.0 = the standard widths).
    """

    name = "tu_resnet"
    needs_training = True
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, kind: str = "packed", arch: int = 18, num_members: int = 4, alpha: float = 2.0,
                 gamma: int = 2, width: float = 1.0) -> None:
        self.kind = kind
        self.arch = arch
        self.num_members = num_members
        self.alpha = alpha
        self.gamma = gamma
        self.width = width

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for key in ("arch", "num_members", "gamma"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{key} must be an integer >= 1, got {v!r}")
        for key in ("alpha", "width"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{key} must be a positive number, got {v!r}")

    @classmethod
    def build_network(cls, config: dict[str, Any]) -> nn.Module:
        return TUEnsemble(config)

    def _config(self, in_channels: int, num_classes: int) -> dict[str, Any]:
        return {"kind": self.kind, "arch": self.arch, "num_members": self.num_members,
                "alpha": float(self.alpha), "gamma": self.gamma, "width": float(self.width),
                "in_channels": in_channels, "num_classes": num_classes}

    def inference_networks(self, backbone: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
        """The ResNet ensemble for the backbone's image channels and classes. It is no stream
        transformer, so the analytic cost model leaves it out: its FLOPs are the ones
        ``torch.utils.flop_counter`` counts."""
        return [(self._config(backbone["embed"].get("in_chans", 3), backbone["head"]["num_classes"]), 1)]

    def fit(self, task: Task) -> TUResNet:
        """Build the ensemble for the task's image shape and classes, then train it."""
        self.validate()
        x, _ = next(iter(task.batches("train", task.seed, limit=1)))
        config = self._config(int(x.shape[1]), task.num_classes)
        torch.manual_seed(task.seed)
        try:
            model = TUEnsemble(config)
        except ValueError as e:  # e.g. channels not divisible by gamma * num_members
            raise ConfigError(f"tu_resnet: {e}") from None
        model = task.train(model.to(task.device), task.seed)
        self.models_ = nn.ModuleList([model])
        self.extra_ = {"note": NOTE.format(kind=self.kind, arch=self.arch, members=self.num_members)}
        return self.eval()
