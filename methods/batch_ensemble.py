"""BatchEnsemble: members share each weight matrix and differ by rank-1 fast weights.

Wen, Tran and Ba, "BatchEnsemble: An Alternative Approach to Efficient Ensemble and Lifelong
Learning", ICLR 2020.

Every linear layer of every block (Q/K/V, output projection, MLP) and the head becomes a
``BatchLinear``: member m uses ``W * (s_m r_m^T)`` plus its own bias, computed with one shared
matmul. LayerNorms and the embedding stay shared, so the M streams fork at the first block.
The backbone's weights (pretrained where the task has them) become the slow weights and every
member's bias starts as the backbone's bias; the network is then trained once, over all M
streams (the task's loss is the mean cross-entropy over members).

Fast-weight initialisation (``fast_init``):
    random_sign  entries +-1 with equal probability (Wen et al. 2020). On a randomly
                 initialised backbone this costs nothing (a random-sign flip of random weights
                 is another random init) and makes the members diverse from the first step.
    gaussian     N(1, fast_std^2) (the uncertainty-baselines / torch-uncertainty variant,
                 whose default std is 0.5).
    ones         every member starts as the backbone; as all members see the same batches they
                 then get the same gradients and stay identical (for tests and ablations only).
    auto         (default) random_sign on a from-scratch backbone, gaussian on a pretrained
                 one. Random signs would scramble a pretrained network (each layer's inputs and
                 outputs flipped at random: the pretrained function is lost), whereas a mean-1
                 Gaussian with a small std (default 0.1) perturbs each effective weight by about
                 +-14 % multiplicatively, so every member starts close to the pretrained function
                 and fine-tuning keeps its features, while the members still differ. Measured
                 on all-MiniLM-L6-v2 (mean-pooled sentence embeddings of six sentences, M = 3):
                 cosine to the pretrained embedding 0.96 with std 0.1, 0.82 with 0.2, 0.08 with
                 0.5 and 0.00 with random signs. Whether the backbone is pretrained comes
                 from ``task.pretrained``.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ConfigError, Task, UQMethod, register
from .convert import FAST_INITS, batch_ensemble_config, copy_broadcast, init_fast_weights
from .transformer import StreamTransformer


@torch.no_grad()
def to_batch_ensemble(
    backbone: StreamTransformer, members: int, fast_init: str, fast_std: float, seed: int
) -> StreamTransformer:
    """BatchEnsemble network whose slow weights (and every member's bias) are the backbone's.

    Args:
        backbone: a single-model ``StreamTransformer``.
        members: ensemble size M.
        fast_init: ``random_sign``, ``gaussian`` or ``ones`` (see ``init_fast_weights``).
        fast_std: std of the ``gaussian`` init.
        seed: seed of the fast-weight draw.

    Returns:
        The network on the backbone's device; its forward returns ``(M, B, C)``.
    """
    model = StreamTransformer(batch_ensemble_config(backbone.config, members))
    device = next(backbone.parameters()).device
    model.to(device)
    copy_broadcast(model, backbone)
    init_fast_weights(model, fast_init, fast_std, torch.Generator().manual_seed(seed))
    return model


@register
class BatchEnsemble(UQMethod):
    """BatchEnsemble of M members over the task's backbone.

    Args:
        num_members: ensemble size M (>= 1; M = 1 is the backbone itself).
        fast_init: ``auto`` (default), ``random_sign``, ``gaussian`` or ``ones``.
        fast_std: std of the mean-1 Gaussian fast-weight init (> 0).
    """

    name = "batch_ensemble"
    needs_training = True

    def __init__(self, num_members: int = 3, fast_init: str = "auto", fast_std: float = 0.1) -> None:
        self.num_members = num_members
        self.fast_init = fast_init
        self.fast_std = fast_std

    def validate(self) -> None:
        if not isinstance(self.num_members, int) or isinstance(self.num_members, bool) or self.num_members < 1:
            raise ConfigError(f"num_members must be an integer >= 1, got {self.num_members!r}")
        if self.fast_init not in ("auto", *FAST_INITS):
            raise ConfigError(f"fast_init must be one of auto, {', '.join(FAST_INITS)}; got {self.fast_init!r}")
        if isinstance(self.fast_std, bool) or not isinstance(self.fast_std, (int, float)) or not self.fast_std > 0:
            raise ConfigError(f"fast_std must be a positive float, got {self.fast_std!r}")

    def inference_networks(self, backbone: dict) -> list[tuple[dict, int]]:
        return [(batch_ensemble_config(backbone, self.num_members), 1)]

    def fit(self, task: Task) -> BatchEnsemble:
        """Convert the backbone, initialise the fast weights and train all members at once."""
        self.validate()
        seed = task.seed
        backbone = task.backbone(seed)
        init = self.fast_init
        if init == "auto":
            init = "gaussian" if task.pretrained else "random_sign"
        model = to_batch_ensemble(backbone, self.num_members, init, float(self.fast_std), seed)
        del backbone
        model = task.train(model, seed)
        self.models_ = nn.ModuleList([model])
        self.extra_ = {"fast_init": init, "pretrained_backbone": task.pretrained}
        return self.eval()
