"""Generic task kinds that a suite file points at the user's own data.

``imagefolder``: ImageFolder trees (``<class>/*.jpg|jpeg|png``) for train and test, a ViT
trained from scratch. ``textcsv``: CSV files with a header row, all-MiniLM-L6-v2 fine-tuned.
Both take OOD sets as ``{name: path}`` and list the near-OOD ones in ``near_ood``; the rest
are far-OOD. A relative path is taken relative to the data root (``UQBENCH_DATA``), so a
suite stays portable between machines; a path that does not exist is an error when the suite
loads (unlike absent official data, which is a skip). A 'val' split of ``val_fraction`` per
class is held out from train.

A suite entry looks like::

    [[tasks]]
    name = "my-images"
    kind = "imagefolder"
    params = { train = "mine/train", test = "mine/test", ood = { noise = "mine/noise" } }
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uqbench.bench.data import (
    DataError,
    check_same_classes,
    class_dirs,
    load_image_dir,
    load_image_folder,
    load_text_column,
    load_text_csv,
)
from uqbench.bench.tasks import register_task
from uqbench.bench.tasks.base import Preprocess, SupervisedTask, stratified_split
from uqbench.bench.tasks.common import (
    MINILM,
    FineTuneFields,
    OODSource,
    ViTFields,
    assemble,
    gather_ood,
    held_out_indices,
    image_split,
    load_encoder,
    minilm_backbone_fn,
    ood_split,
    recipe,
    text_ood_split,
    text_split,
    user_path,
    vit_backbone_fn,
)
from uqbench.bench.tasks.config import TaskConfig, evaluation, positive, require
from uqbench.methods.transformer import vit_config


@dataclass(frozen=True)
class _UserData(TaskConfig):
    """The fields both custom kinds share: where the data are and how much of it is used."""

    _what = "a path"
    train: str = ""
    test: str = evaluation("")
    ood: dict[str, str] | None = evaluation(None)
    near_ood: tuple[str, ...] = evaluation(())
    val_fraction: float = 0.1
    train_per_class: int | None = None
    test_per_class: int | None = evaluation(None)
    ood_max: int | None = evaluation(2000)

    def validate(self) -> None:
        for knob in ("train", "test"):
            require(bool(getattr(self, knob)), f"parameter {knob!r} is required ({self._what})")
        ood = self.ood or {}
        require(all(ood.values()), f"'ood' must map names to non-empty paths, got {ood}")
        unknown = [n for n in self.near_ood if n not in ood]
        require(not unknown, f"near_ood name {unknown[0]!r} is not a key of 'ood' (keys: {', '.join(ood) or 'none'})"
                if unknown else "")
        require(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        positive(self, "train_per_class", "test_per_class", "ood_max", optional=True)

    def paths(self, root: Path) -> dict[str, Path]:
        """Every path the config names: 'train', 'test' and 'ood/<name>'."""
        named = {"train": self.train, "test": self.test, **{f"ood/{k}": v for k, v in (self.ood or {}).items()}}
        return {k: user_path(root, v) for k, v in named.items()}

    def check_paths(self, root: Path) -> None:
        for knob, path in self.paths(root).items():
            require(path.exists(), f"{knob} not found: {path} (paths are relative to the data root {root})")


def _val_split(labels: np.ndarray, classes: list[str], val_fraction: float, where: Path) -> np.ndarray:
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        c = int(counts.argmin())
        raise DataError(f"{where}: class {classes[c]!r} has {counts[c]} example(s); each class needs "
                        f"at least 2 (one is held out for 'val')")
    return stratified_split(labels, val_fraction, seed=0)[1]


@dataclass(frozen=True)
class ImageFolderConfig(_UserData, ViTFields):
    _what = "a folder in ImageFolder layout, <class>/*.jpg"
    image_size: int = 32

    def validate(self) -> None:
        _UserData.validate(self)
        ViTFields.validate(self)


@register_task("imagefolder", ImageFolderConfig)
def imagefolder(cfg: ImageFolderConfig, root: Path) -> SupervisedTask:
    paths = cfg.paths(root)
    train = load_image_folder(paths["train"], cfg.image_size)
    check_same_classes(train.classes, class_dirs(paths["test"]), paths["train"], paths["test"])
    test = load_image_folder(paths["test"], cfg.image_size, classes=train.classes)
    idx = held_out_indices(train.labels, test.labels, _val_split(train.labels, train.classes, cfg.val_fraction,
                                                                 paths["train"]), cfg.train_per_class, cfg.test_per_class)
    splits = {k: image_split(*((test.images, test.labels) if k == "test" else (train.images, train.labels)), i)
              for k, i in idx.items()}
    ood, _ = gather_ood([OODSource(k, lambda p=paths[f"ood/{k}"]: load_image_dir(p, cfg.image_size))
                         for k in cfg.ood or {}], lambda found, seed: ood_split(found.images, cfg.ood_max, seed), [])
    # Normalise with the training images' own statistics (a sample is enough).
    sample = train.images[idx["train"][np.linspace(0, len(idx["train"]) - 1, min(2000, len(idx["train"]))).astype(int)]]
    pixels = sample.reshape(-1, 3).astype(np.float32) / 255
    mean = tuple(float(v) for v in pixels.mean(0))
    std = tuple(float(max(v, 1e-3)) for v in pixels.std(0))
    vit = vit_config(img_size=cfg.image_size, patch=cfg.patch, dim=cfg.dim, depth=cfg.depth, heads=cfg.heads,
                     mlp_ratio=cfg.mlp_ratio, num_classes=len(train.classes))
    return assemble(
        "imagefolder", cfg, num_classes=len(train.classes), splits=splits, ood=ood, near_ood=tuple(cfg.near_ood),
        backbone_fn=vit_backbone_fn(vit), recipe=recipe(cfg),
        preprocess=Preprocess(mean=mean, std=std, crop_pad=max(1, cfg.image_size // 8), flip=True),
    )


@dataclass(frozen=True)
class TextCSVConfig(_UserData, FineTuneFields):
    _what = "a CSV file with a header row"
    text_column: str = "text"
    label_column: str = "label"

    def validate(self) -> None:
        _UserData.validate(self)
        FineTuneFields.validate(self)
        require(bool(self.text_column) and bool(self.label_column), "text_column and label_column must be non-empty")


@register_task("textcsv", TextCSVConfig)
def textcsv(cfg: TextCSVConfig, root: Path) -> SupervisedTask:
    paths = cfg.paths(root)
    train = load_text_csv(paths["train"], cfg.text_column, cfg.label_column)
    # Read test labels as written, then compare the class sets both ways.
    test_classes = load_text_csv(paths["test"], cfg.text_column, cfg.label_column).classes
    check_same_classes(train.classes, test_classes, paths["train"], paths["test"])
    test = load_text_csv(paths["test"], cfg.text_column, cfg.label_column, classes=train.classes)
    ood_texts = {k: load_text_column(paths[f"ood/{k}"], cfg.text_column) for k in cfg.ood or {}}
    _, tokenizer = load_encoder(MINILM)
    idx = held_out_indices(train.labels, test.labels, _val_split(train.labels, train.classes, cfg.val_fraction,
                                                                 paths["train"]), cfg.train_per_class, cfg.test_per_class)
    splits = {k: text_split(tokenizer, [s.texts[j] for j in i], s.labels[i], cfg.max_length)
              for k, i in idx.items() for s in [test if k == "test" else train]}
    ood, _ = gather_ood([OODSource(k, lambda t=t: t) for k, t in ood_texts.items()],
                        lambda texts, seed: text_ood_split(tokenizer, texts, cfg.max_length, cfg.ood_max, seed), [])
    return assemble(
        "textcsv", cfg, extra={"backbone": MINILM}, num_classes=len(train.classes), splits=splits, ood=ood,
        near_ood=tuple(cfg.near_ood), backbone_fn=minilm_backbone_fn(len(train.classes)), recipe=recipe(cfg),
        preprocess=None, pretrained=True,
    )
