"""``cifar10-vit`` and ``cifar100-vit``: a ViT trained from scratch on CIFAR at 32x32.

One builder, two registrations. In-distribution: the CIFAR set's official train split
(``val_per_class`` images per class held out as 'val') and its test split. OOD sets are
optional: the other CIFAR (near-OOD), SVHN, Textures and ImageNet (``imagenet-sample``),
all at 32x32 (far-OOD); an absent one becomes a note in the results, not a skip. The
in-distribution set itself missing raises ``MissingData`` (the runner skips the task).
Shift sets ``<corruption>/<severity>`` hold ``shift_per_class`` test images per class: read
from the published CIFAR-10-C / CIFAR-100-C arrays when their folder is in the data root (the
config then records ``shift_source``), else the project's own deterministic corruptions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..data import CORRUPTIONS, load_cifar, load_imagenet, load_svhn, load_textures
from ..data.cifar_c import FOLDERS, cifar_c_folder
from . import register_task
from .base import Preprocess, SupervisedTask, subsample
from .common import (
    OODSource,
    ViTFields,
    assemble,
    gather_ood,
    held_out_indices,
    image_split,
    ood_split,
    pretrained_vit_fn,
    published_shift_sets,
    recipe,
    shift_sets,
    vit_backbone_fn,
)
from .config import evaluation, positive, require
from ...methods.transformer import vit_config

DEFAULT_CORRUPTIONS = ("gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "brightness",
                       "jpeg", "pixelate")
DEFAULT_SEVERITIES = (1, 2, 3, 4, 5)
_STATS = {  # published per-channel pixel statistics
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass(frozen=True)
class CifarViTConfig(ViTFields):
    """``timm_model`` (e.g. ``vit_base_patch16_224.augreg_in21k``) fine-tunes that pretrained
    ViT at its own resolution (images upsampled per batch) instead of training the small ViT
    given by dim/depth/heads/patch from scratch."""

    train_per_class: int | None = None
    val_per_class: int = 50
    test_per_class: int | None = evaluation(None)
    ood_max: int | None = evaluation(2000)
    corruptions: tuple[str, ...] = evaluation(DEFAULT_CORRUPTIONS)
    severities: tuple[int, ...] = evaluation(DEFAULT_SEVERITIES)
    shift_per_class: int = evaluation(100)
    timm_model: str | None = None

    def validate(self) -> None:
        super().validate()
        positive(self, "val_per_class", "shift_per_class")
        positive(self, "train_per_class", "test_per_class", "ood_max", optional=True)
        bad = [c for c in self.corruptions if c not in CORRUPTIONS]
        require(not bad, f"unknown corruption {bad[0]!r} (valid: {', '.join(sorted(CORRUPTIONS))})" if bad else "")
        require(all(1 <= s <= 5 for s in self.severities),
                f"severities must be integers from 1 to 5, got {list(self.severities)}")


def _cifar_vit(dataset: str, cfg: CifarViTConfig, root) -> SupervisedTask:
    train = load_cifar(root, dataset, "train")  # MissingData: the runner skips the task
    test = load_cifar(root, dataset, "test")
    idx = held_out_indices(train.labels, test.labels, subsample(train.labels, cfg.val_per_class, seed=0),
                           cfg.train_per_class, cfg.test_per_class)
    splits = {k: image_split(*((test.images, test.labels) if k == "test" else (train.images, train.labels)), i)
              for k, i in idx.items()}
    other = "cifar100" if dataset == "cifar10" else "cifar10"
    notes: list[str] = []
    ood, near = gather_ood([
        OODSource(other, lambda: load_cifar(root, other, "test"), True, "CIFAR-100" if other == "cifar100" else "CIFAR-10"),
        OODSource("svhn", lambda: load_svhn(root, "test"), title="SVHN"),
        OODSource("textures", lambda: load_textures(root, 32), title="Textures"),
        OODSource("imagenet", lambda: load_imagenet(root, 32, "imagenet-sample"), title="ImageNet (imagenet-sample)"),
    ], lambda found, seed: ood_split(found.images, cfg.ood_max, seed), notes)
    if cifar_c_folder(root, dataset):
        found = {"shift_source": FOLDERS[dataset]}
        shift = published_shift_sets(root, dataset, cfg.corruptions, cfg.severities, cfg.shift_per_class)
    else:  # the offline fallback; a config without shift_source means these
        found = {}
        shift_idx = subsample(test.labels, cfg.shift_per_class, seed=3)
        shift = shift_sets(test.images[shift_idx], test.labels[shift_idx], cfg.corruptions, cfg.severities)
    mean, std = _STATS[dataset]
    preprocess = Preprocess(mean=mean, std=std, crop_pad=4, flip=True)
    if cfg.timm_model:
        backbone, data_cfg = pretrained_vit_fn(cfg.timm_model, len(train.classes))
        preprocess = Preprocess(mean=tuple(data_cfg["mean"]), std=tuple(data_cfg["std"]), crop_pad=4,
                                flip=True, resize=data_cfg["img_size"])
    else:
        backbone = vit_backbone_fn(vit_config(img_size=32, patch=cfg.patch, dim=cfg.dim, depth=cfg.depth,
                                              heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, num_classes=len(train.classes)))
    return assemble(
        f"{dataset}-vit", cfg, extra={"ood_sets": sorted(ood), **found},  # a result without SVHN is another result
        num_classes=len(train.classes), splits=splits, ood=ood, near_ood=near, notes=notes, shift=shift,
        backbone_fn=backbone, recipe=recipe(cfg), preprocess=preprocess, pretrained=bool(cfg.timm_model),
    )


cifar10_vit = register_task("cifar10-vit", CifarViTConfig)(functools.partial(_cifar_vit, "cifar10"))
cifar100_vit = register_task("cifar100-vit", CifarViTConfig)(functools.partial(_cifar_vit, "cifar100"))
