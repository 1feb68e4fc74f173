"""LoRA-Ensemble: members share one frozen transformer and differ by low-rank adapters.

Halbheer, Mühlematter, Becker, Narnhofer, Aasen, Schindler and Turkoglu, "LoRA-Ensemble:
Efficient Uncertainty Modelling for Self-attention Networks", 2024 (arXiv 2405.14438).

Member m adds its own update ``(alpha / r) B_m A_m`` of rank r to the query, key, value and output
projections of every block, and has its own classification head; the shared backbone stays
frozen. The members are trained one after another through ``task.train``, each from its own seed
(``derive_seed``: adapter initialisation, head and data order), at ``lr_scale`` times the task's
learning rate for ``epochs_frac`` times its epochs.

The shared backbone: on a task with a pretrained backbone (the MiniLM text tasks) it is
``task.backbone(seed)``, as in the paper. A task trained from scratch (the CIFAR ViT, digits) has
no pretrained network, so its trained single model ``task.single_model(seed)`` stands in: the
members adapt the features that model learned. Every member's head is drawn anew under its seed
(normal, std 0.02, zero bias), as the paper gives each member a head of its own.

The adapters are built and trained with ``peft``. For training, a member is a copy of the
backbone whose Q/K/V and output projections are plain ``nn.Linear`` views (peft adapts
``nn.Linear``; it does not know the project's ``StreamLinear``), with peft's LoRA layers injected
(``inject_adapter_in_model``: A kaiming-uniform, B zero, so a member starts as the backbone).
After training, the adapters are read back from peft's layers into one fused ``StreamTransformer``
holding the shared weights and every member's adapters (``convert.lora_ensemble_config``,
``layers.LoraLinear``): one forward runs the M member streams, i.e. M passes of the backbone plus
the adapters' low-rank products, with one backbone's parameters plus M adapter sets and M heads.
That is what ``inference_networks`` states. The adapters are not merged into the weights: merged,
the ensemble would hold M full copies of the backbone. The fused network equals each peft-trained
member run alone (``tests/test_lora_ensemble.py``).

Defaults from the paper: rank 8 and an unscaled update (``alpha`` = r); M = 3 like the other
ensembles here; the learning rate and epochs of one model (the paper trains LoRA-Ensemble with its
explicit ensemble's recipe).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .base import ConfigError, Task, UQMethod, derive_seed, register
from .convert import lora_ensemble_config
from .layers import StreamLinear
from .transformer import StreamTransformer

TARGETS = r"blocks\.\d+\.(qkv\.[qkv]|proj)"  # peft's target modules of the training view (full match)


def _as_linear(layer: StreamLinear, rows: slice = slice(None)) -> nn.Linear:
    """A one-member ``StreamLinear`` (or some of its output rows) as an ``nn.Linear``."""
    w = layer.weight[0, rows]
    out = nn.Linear(w.shape[1], w.shape[0], bias=layer.bias is not None).to(w.device)
    with torch.no_grad():
        out.weight.copy_(w)
        if layer.bias is not None:
            out.bias.copy_(layer.bias[0, rows])
    return out


class _QKV(nn.Module):
    """Q, K and V as three ``nn.Linear`` whose outputs are concatenated, as the fused layer's are."""

    def __init__(self, layer: StreamLinear):
        super().__init__()
        n = layer.out_features // 3
        self.q, self.k, self.v = (_as_linear(layer, slice(i * n, (i + 1) * n)) for i in range(3))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)


@torch.no_grad()
def peft_member(backbone: StreamTransformer, rank: int, alpha: float, seed: int) -> StreamTransformer:
    """A trainable member: a copy of the single-model ``backbone`` with a new head drawn under
    ``seed`` and peft's LoRA adapters on Q, K, V and the output projection; only the adapters and
    the head train."""
    from peft import LoraConfig, inject_adapter_in_model  # imported on use: it takes seconds

    model = copy.deepcopy(backbone)
    for blk in model.blocks:
        blk.qkv, blk.proj = _QKV(blk.qkv), _as_linear(blk.proj)
    gen = torch.Generator().manual_seed(seed)
    model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=gen) * 0.02)
    model.head.bias.zero_()
    torch.manual_seed(seed)  # peft draws A from the global generator
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS), model)
    for p in model.parameters():  # peft leaves only the adapters trainable; the head trains too
        p.requires_grad_(False)
    for name, p in model.named_parameters():
        if "lora_" in name or name.startswith("head."):
            p.requires_grad_(True)
    return model


def _adapter(layer: nn.Module) -> tuple[Tensor, Tensor]:
    """(A, scaling x B) of a peft LoRA layer's default adapter."""
    return layer.lora_A["default"].weight, layer.lora_B["default"].weight * layer.scaling["default"]


@torch.no_grad()
def fuse(backbone: StreamTransformer, members: list[StreamTransformer], rank: int) -> StreamTransformer:
    """One network running every member: ``backbone``'s shared weights, each member's adapters
    (read from its peft layers) and head. Stream m of its output equals ``members[m]`` run alone."""
    M = len(members)
    fused = StreamTransformer(lora_ensemble_config(backbone.config, M, rank)).to(next(backbone.parameters()).device)
    state = {k: v for k, v in backbone.state_dict().items() if not k.startswith("head.")}
    loaded = fused.load_state_dict(state, strict=False)
    for i, blk in enumerate(fused.blocks):
        for m, member in enumerate(members):
            mb = member.blocks[i]
            qkv = [_adapter(mb.qkv.q), _adapter(mb.qkv.k), _adapter(mb.qkv.v)]
            blk.qkv.lora_a[m] = torch.cat([a for a, _ in qkv])  # (3r, D)
            blk.qkv.lora_b[m] = torch.stack([b for _, b in qkv])  # (3, Hd, r)
            a, b = _adapter(mb.proj)
            blk.proj.lora_a[m], blk.proj.lora_b[m] = a, b[None]
    fused.head.weight.copy_(torch.stack([m.head.weight[0] for m in members]))
    fused.head.bias.copy_(torch.stack([m.head.bias[0] for m in members]))
    left = [k for k in loaded.missing_keys if "lora_" not in k and not k.startswith("head.")] + loaded.unexpected_keys
    if left:
        raise RuntimeError(f"backbone and fused LoRA-Ensemble do not match: {left[:3]}")
    return fused.eval()


@register
class LoraEnsemble(UQMethod):
    """M LoRA adapters (and heads) on one frozen backbone, trained with different seeds.

    Args:
        num_members: ensemble size M (>= 1; M = 1 is one LoRA fine-tuned model).
        rank: adapter rank r (>= 1).
        alpha: LoRA scaling numerator; the update is ``(alpha / r) B A``. None (default): r, an
            unscaled update as in the paper.
        lr_scale: the members' learning rate, as a multiple of the task's (> 0).
        epochs_frac: each member's training budget, as a fraction of the task's epochs (> 0).
    """

    name = "lora_ensemble"
    needs_training = True

    def __init__(self, num_members: int = 3, rank: int = 8, alpha: float | None = None, lr_scale: float = 1.0,
                 epochs_frac: float = 1.0) -> None:
        self.num_members = num_members
        self.rank = rank
        self.alpha = alpha
        self.lr_scale = lr_scale
        self.epochs_frac = epochs_frac

    def validate(self) -> None:
        for key in ("num_members", "rank"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{key} must be an integer >= 1, got {v!r}")
        for key in ("lr_scale", "epochs_frac") + (("alpha",) if self.alpha is not None else ()):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{key} must be a number > 0, got {v!r}")

    def member_seeds(self, seed: int) -> list[int]:
        """Training seeds of the members for a job seed."""
        return [derive_seed(seed, "lora_ensemble/member", k) for k in range(self.num_members)]

    def inference_networks(self, backbone: dict) -> list[tuple[dict, int]]:
        return [(lora_ensemble_config(backbone, self.num_members, self.rank), 1)]

    def fit(self, task: Task) -> LoraEnsemble:
        """Train the M members' adapters and heads on the shared backbone, then fuse them."""
        self.validate()
        backbone = task.backbone(task.seed) if task.pretrained else task.single_model(task.seed)
        backbone = backbone.eval().requires_grad_(False)
        alpha = float(self.rank if self.alpha is None else self.alpha)
        seeds = self.member_seeds(task.seed)
        members = [task.train(peft_member(backbone, self.rank, alpha, s), s, epochs=self.epochs_frac * task.epochs,
                              lr_scale=float(self.lr_scale), member=k) for k, s in enumerate(seeds)]
        self.models_ = nn.ModuleList([fuse(backbone, members, self.rank)])
        self.extra_ = {"member_seeds": seeds, "backbone": "pretrained" if task.pretrained else "single model",
                       "adapter_params": sum(p.numel() for m in members for n, p in m.named_parameters() if "lora_" in n)}
        return self.eval()
