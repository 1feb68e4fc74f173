"""``cifar10-vit`` and ``cifar100-vit``: a ViT trained from scratch on CIFAR at 32x32.

One factory, two registrations. In-distribution: the CIFAR set's official train split
(``val_per_class`` images per class held out as 'val') and its test split. OOD sets are
optional: the other CIFAR (near-OOD), SVHN, Textures and ImageNet (``imagenet-sample``),
all at 32x32 (far-OOD); an absent one becomes a note in the results, not a skip. The
in-distribution set itself missing raises ``MissingData`` (the runner skips the task).
Shift sets ``<corruption>/<severity>`` are the project's own deterministic corruptions of
``shift_per_class`` test images per class.

The helpers here (ViT backbone factory, OOD capping, optional loading) are shared with
``bench.tasks.custom``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uqbench.bench.data import (
    CORRUPTIONS,
    MissingData,
    corrupt,
    data_root,
    load_cifar,
    load_imagenet,
    load_svhn,
    load_textures,
)
from uqbench.bench.tasks import register_task
from uqbench.bench.tasks.base import Preprocess, Split, SupervisedTask, head_reinit_copies, subsample
from uqbench.bench.train import Recipe
from uqbench.methods.adapters import from_timm_vit
from uqbench.methods.transformer import StreamTransformer, init_weights, vit_config

DEFAULT_CORRUPTIONS = ("gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "brightness",
                       "jpeg", "pixelate")
DEFAULT_SEVERITIES = (1, 2, 3, 4, 5)

_STATS = {  # published per-channel pixel statistics
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "textures": "Textures",
           "imagenet": "ImageNet (imagenet-sample)"}


# --- shared helpers -------------------------------------------------------------------------


def resolve_root(root: str | Path | None) -> Path:
    """The data root a factory reads: its ``root`` argument, else ``data_root()``."""
    return Path(root) if root is not None else data_root()


def vit_backbone_fn(cfg: dict[str, Any]) -> Callable[[int], StreamTransformer]:
    """A factory of freshly initialised ViTs, deterministic in the seed."""

    def backbone(seed: int) -> StreamTransformer:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return init_weights(StreamTransformer(cfg))

    return backbone


def pretrained_vit_fn(timm_model: str, num_classes: int) -> tuple[Callable[[int], StreamTransformer], dict]:
    """A factory of a pretrained timm ViT (converted once) with a new head drawn under each
    seed, and the model's pretrained input config (size, mean, std). Needs the weights: from
    timm's cache or the Hugging Face Hub; ``MissingData`` otherwise."""
    import timm

    try:
        vit = timm.create_model(timm_model, pretrained=True, num_classes=num_classes)
    except Exception as e:  # no network, no cache, unknown name
        raise MissingData(f"no weights for timm model {timm_model!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    data_cfg = dict(timm.data.resolve_data_config({}, model=vit), img_size=vit.patch_embed.img_size[0])
    return head_reinit_copies(from_timm_vit(vit.eval())), data_cfg


def check_vit(img_size: int, dim: int, heads: int, patch: int) -> None:
    if dim % heads:
        raise ValueError(f"dim={dim} is not divisible by heads={heads}")
    if img_size % patch:
        raise ValueError(f"patch={patch} does not divide the image size {img_size}")


def cap(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` items, chosen at random (deterministic)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def ood_split(x: np.ndarray, ood_max: int | None, seed: int) -> Split:
    """An OOD split (labels -1) of at most ``ood_max`` uint8 images."""
    idx = cap(len(x), ood_max, seed)
    return Split(torch.from_numpy(np.ascontiguousarray(x[idx])), torch.full((len(idx),), -1, dtype=torch.int64))


def image_split(images: np.ndarray, labels: np.ndarray, idx: np.ndarray | None = None) -> Split:
    if idx is not None:
        images, labels = images[idx], labels[idx]
    return Split(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64)))


def load_optional(title: str, load: Callable[[], Any], notes: list[str]) -> Any | None:
    """``load()``, or None with a note when the data is absent (``MissingData``)."""
    try:
        return load()
    except MissingData as e:
        notes.append(f"{title} absent: not evaluated ({e})")
        return None


def check_ood_max(ood_max: int | None) -> None:
    if ood_max is not None and ood_max < 1:
        raise ValueError(f"ood_max must be a positive integer or None, got {ood_max!r}")


# --- CIFAR ViT ------------------------------------------------------------------------------


def _shift_sets(images: np.ndarray, labels: np.ndarray, corruptions: Sequence[str],
                severities: Sequence[int]) -> dict[str, Split]:
    y = torch.from_numpy(labels.astype(np.int64))
    out = {}
    for i, name in enumerate(corruptions):
        for s in severities:
            out[f"{name}/{s}"] = Split(torch.from_numpy(corrupt(images, name, s, seed=100 * i + s)), y)
    return out


def _cifar_vit(
    dataset: str,
    root=None,
    train_per_class: int | None = None,
    val_per_class: int = 50,
    test_per_class: int | None = None,
    dim: int = 192,
    depth: int = 6,
    heads: int = 6,
    patch: int = 4,
    mlp_ratio: float = 4.0,
    epochs: float = 50,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    label_smoothing: float = 0.1,
    ood_max: int | None = 2000,
    corruptions: Sequence[str] = DEFAULT_CORRUPTIONS,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    shift_per_class: int = 100,
    timm_model: str | None = None,
) -> SupervisedTask:
    """``timm_model`` (e.g. ``vit_base_patch16_224.augreg_in21k``) fine-tunes that pretrained
    ViT at its own resolution (images upsampled per batch) instead of training the small ViT
    given by dim/depth/heads/patch from scratch."""
    name = f"{dataset}-vit"
    params = dict(train_per_class=train_per_class, val_per_class=val_per_class,
                  test_per_class=test_per_class, dim=dim, depth=depth, heads=heads, patch=patch,
                  mlp_ratio=mlp_ratio, epochs=epochs, batch_size=batch_size, lr=lr,
                  weight_decay=weight_decay, label_smoothing=label_smoothing, ood_max=ood_max,
                  corruptions=list(corruptions), severities=list(severities),
                  shift_per_class=shift_per_class, timm_model=timm_model)
    # Check the knobs before touching any data.
    check_vit(32, dim, heads, patch)
    check_ood_max(ood_max)
    bad = [c for c in corruptions if c not in CORRUPTIONS]
    if bad:
        raise ValueError(f"unknown corruption {bad[0]!r} (valid: {', '.join(sorted(CORRUPTIONS))})")
    if any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 5 for s in severities):
        raise ValueError(f"severities must be integers from 1 to 5, got {list(severities)}")
    if val_per_class < 1:
        raise ValueError(f"val_per_class must be at least 1, got {val_per_class}")

    root = resolve_root(root)
    train = load_cifar(root, dataset, "train")  # MissingData: the runner skips the task
    test = load_cifar(root, dataset, "test")
    num_classes = len(train.classes)

    val_idx = subsample(train.labels, val_per_class, seed=0)
    rest = np.setdiff1d(np.arange(len(train)), val_idx)
    train_idx = rest[subsample(train.labels[rest], train_per_class, seed=1)]
    test_idx = subsample(test.labels, test_per_class, seed=2)
    splits = {
        "train": image_split(train.images, train.labels, train_idx),
        "val": image_split(train.images, train.labels, val_idx),
        "test": image_split(test.images, test.labels, test_idx),
    }

    notes: list[str] = []
    other = "cifar100" if dataset == "cifar10" else "cifar10"
    loaders = {  # name -> (loader, near-OOD?)
        other: (lambda: load_cifar(root, other, "test"), True),
        "svhn": (lambda: load_svhn(root, "test"), False),
        "textures": (lambda: load_textures(root, 32), False),
        "imagenet": (lambda: load_imagenet(root, 32, "imagenet-sample"), False),
    }
    ood: dict[str, Split] = {}
    near: list[str] = []
    for k, (ood_name, (load, is_near)) in enumerate(loaders.items()):
        found = load_optional(_TITLES[ood_name], load, notes)
        if found is not None:
            ood[ood_name] = ood_split(found.images, ood_max, seed=10 + k)
            if is_near:
                near.append(ood_name)

    shift_idx = subsample(test.labels, shift_per_class, seed=3)
    shift = _shift_sets(test.images[shift_idx], test.labels[shift_idx], corruptions, severities)

    mean, std = _STATS[dataset]
    preprocess = Preprocess(mean=mean, std=std, crop_pad=4, flip=True)
    if timm_model:
        backbone, data_cfg = pretrained_vit_fn(timm_model, num_classes)
        preprocess = Preprocess(mean=tuple(data_cfg["mean"]), std=tuple(data_cfg["std"]), crop_pad=4,
                                flip=True, resize=data_cfg["img_size"])
    else:
        backbone = vit_backbone_fn(vit_config(img_size=32, patch=patch, dim=dim, depth=depth, heads=heads,
                                              mlp_ratio=mlp_ratio, num_classes=num_classes))
    return SupervisedTask(
        name=name,
        num_classes=num_classes,
        splits=splits,
        ood=ood,
        backbone_fn=backbone,
        recipe=Recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      label_smoothing=label_smoothing),
        # The OOD sets actually evaluated are part of the config: a result computed without
        # SVHN is not the same result as one with it.
        config={"task": name, **params, "ood_sets": sorted(ood)},
        preprocess=preprocess,
        shift=shift,
        near_ood=tuple(near),
        pretrained=bool(timm_model),
        notes=notes,
    )


cifar10_vit = register_task("cifar10-vit")(functools.partial(_cifar_vit, "cifar10"))
cifar100_vit = register_task("cifar100-vit")(functools.partial(_cifar_vit, "cifar100"))
