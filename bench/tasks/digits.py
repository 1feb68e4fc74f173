"""``digits``: scikit-learn's bundled 8x8 handwritten digits; needs no files and no network.

Digits 0-5 are in-distribution, 6-9 the OOD set. A tiny ViT trains on it in seconds, which
is what the tests and a machine without data use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import register_task
from .base import Preprocess, Split, SupervisedTask, stratified_split
from .common import assemble, recipe, vit_backbone_fn
from .config import TaskConfig, check_vit, positive, require
from ...methods.transformer import vit_config


@dataclass(frozen=True)
class DigitsConfig(TaskConfig):
    in_classes: int = 6  # digits below this are in-distribution, the others OOD
    dim: int = 48
    depth: int = 2
    heads: int = 6
    patch: int = 4
    epochs: float = 40
    batch_size: int = 64
    lr: float = 2e-3

    def validate(self) -> None:
        require(2 <= self.in_classes <= 9, f"in_classes must be from 2 to 9, got {self.in_classes}")
        positive(self, "dim", "depth", "heads", "patch", "epochs", "batch_size", "lr")
        check_vit(8, self.dim, self.heads, self.patch)


@register_task("digits", DigitsConfig)
def digits(cfg: DigitsConfig, root=None) -> SupervisedTask:
    from sklearn.datasets import load_digits  # imported here: scikit-learn takes seconds to import

    d = load_digits()
    images = (d.images * (255 / 16)).round().astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    labels = d.target.astype(np.int64)
    ind = np.flatnonzero(labels < cfg.in_classes)
    ood = np.flatnonzero(labels >= cfg.in_classes)
    rest, test = stratified_split(labels[ind], 0.25, seed=0)
    train, val = stratified_split(labels[ind][rest], 0.1, seed=1)
    train, val, test = ind[rest][train], ind[rest][val], ind[test]

    def split(idx: np.ndarray, ood_labels: bool = False) -> Split:
        y = np.full(len(idx), -1) if ood_labels else labels[idx]
        return Split(torch.from_numpy(images[idx]), torch.from_numpy(y))

    vit = vit_config(img_size=8, patch=cfg.patch, dim=cfg.dim, depth=cfg.depth, heads=cfg.heads,
                     num_classes=cfg.in_classes)
    vit["embed"]["in_chans"] = 1
    return assemble(
        "digits", cfg, num_classes=cfg.in_classes,
        splits={"train": split(train), "val": split(val), "test": split(test)},
        ood={"digits6-9": split(ood, ood_labels=True)},
        backbone_fn=vit_backbone_fn(vit), recipe=recipe(cfg, weight_decay=0.01),
        preprocess=Preprocess(mean=(0.3,), std=(0.4,), crop_pad=1, flip=False),  # 4 patches of 4x4 + class token
        near_ood=("digits6-9",),
    )
