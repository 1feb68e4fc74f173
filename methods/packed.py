"""Packed-Ensembles: M independent narrow members packed into one wide network.

Laurent, Lafage, Tartaglione, Daniel, Martinez, Bursuc and Franchi, "Packed-Ensembles for
Efficient Uncertainty Estimation", ICLR 2023.

The network is built from the backbone's *config* (depth, head dimension, activation, norm
placement, embedding kind) but never its weights: M streams of width ``alpha * D / M`` (rounded
to whole heads of the backbone's head dimension), each with its own heads, grouped Q/K/V/O and
MLP (hidden ``alpha * mlp_hidden / M``), its own LayerNorms and its own head. The embedding
(patch convolution or token embeddings) produces ``M * width`` channels that are split into the
M streams; its LayerNorm, where it has one, normalises each stream separately
(``embed_streams``). Members therefore exchange no information: member m's
logits depend on no parameter of member n. Initialised with ``methods.transformer.init_weights``
and trained from scratch with the task's recipe.

Only ``gamma = 1`` is supported: extra groups inside each member's layers would need
sub-stream grouping that the stream transformer does not express.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ConfigError, Task, UQMethod, register
from .convert import packed_config
from .transformer import StreamTransformer, init_weights

NOTE = "trained from scratch: packed layers cannot inherit pretrained weights"
GROUP = "trained from scratch"  # its leaderboard group on a task whose other methods start pretrained


def build_packed(config: dict, members: int, alpha: float) -> StreamTransformer:
    """An uninitialised Packed-Ensembles network for a single-model config.

    Args:
        config: the backbone's config.
        members: ensemble size M.
        alpha: width factor.

    Returns:
        The network (default layer init; call ``init_weights``), forward ``(M, B, C)``.
    """
    return StreamTransformer(packed_config(config, members, alpha))


@register
class PackedEnsembles(UQMethod):
    """Packed-Ensembles of M members, trained from scratch.

    Args:
        num_members: ensemble size M (>= 1).
        alpha: width factor of the ensemble (> 0); each member is ``alpha / M`` as wide as
            the backbone.
        gamma: groups inside each member's layers; only 1 is supported.
    """

    name = "packed_ensembles"
    needs_training = True

    def __init__(self, num_members: int = 3, alpha: float = 2.0, gamma: int = 1) -> None:
        self.num_members = num_members
        self.alpha = alpha
        self.gamma = gamma

    def validate(self) -> None:
        if not isinstance(self.num_members, int) or isinstance(self.num_members, bool) or self.num_members < 1:
            raise ConfigError(f"num_members must be an integer >= 1, got {self.num_members!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            raise ConfigError(f"alpha must be a positive number, got {self.alpha!r}")
        if self.gamma != 1 or isinstance(self.gamma, bool):
            raise ConfigError(f"packed_ensembles supports only gamma=1, got {self.gamma!r}")

    def inference_networks(self, backbone: dict) -> list[tuple[dict, int]]:
        return [(packed_config(backbone, self.num_members, float(self.alpha)), 1)]

    def fit(self, task: Task) -> PackedEnsembles:
        """Build the packed network from the backbone's config, initialise and train it."""
        self.validate()
        seed = task.seed
        backbone = task.backbone(seed)
        config, device = backbone.config, next(backbone.parameters()).device
        torch.manual_seed(seed)
        model = init_weights(build_packed(config, self.num_members, float(self.alpha)))
        if config["head"]["kind"] == "zeroshot":  # fixed class text embeddings and temperature
            model.head.class_embeddings.copy_(backbone.head.class_embeddings)
            model.head.logit_scale.copy_(backbone.head.logit_scale)
        del backbone
        model.to(device)
        model = task.train(model, seed)
        self.models_ = nn.ModuleList([model])
        self.extra_ = {"note": NOTE, "member_width": model.config["dim"],
                       "member_heads": model.config["blocks"][0]["heads"][0],
                       **({"group": GROUP} if task.pretrained else {})}
        return self.eval()
