"""Generic task kinds that a suite file points at the user's own data.

``imagefolder``: ImageFolder trees (``<class>/*.jpg|jpeg|png``) for train and test, a ViT
trained from scratch. ``textcsv``: CSV files with a header row, all-MiniLM-L6-v2 fine-tuned.
Both take OOD sets as ``{name: path}`` and list the near-OOD ones in ``near_ood``; the rest
are far-OOD. A relative path is taken relative to the data root (``UQBENCH_DATA``), so a
suite stays portable between machines; a path that does not exist is an error when the suite
loads (unlike absent official data, which is a skip). A 'val' split of ``val_fraction`` per
class is held out from train.

Instead of a path, ``train``, ``test`` and each OOD value may name a split of a Hugging Face
dataset, ``{dataset = ..., split = ..., revision = ...}`` (a ``save_to_disk`` folder, or a Hub
name pinned to a revision; see ``bench.data.hf``). Its columns are ``text_column`` /
``label_column`` (textcsv) or ``image_column`` / ``label_column`` (imagefolder).

A suite entry looks like::

    [[tasks]]
    name = "my-images"
    kind = "imagefolder"
    params = { train = "mine/train", test = "mine/test", ood = { noise = "mine/noise" } }
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from ..data import (
    DataError,
    check_same_classes,
    hf,
    load_image_dir,
    load_image_folder,
    load_text_column,
    load_text_csv,
)
from . import register_task
from .base import Preprocess, SupervisedTask, stratified_split
from .common import (
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
from .config import TaskConfig, evaluation, positive, require
from ...methods.transformer import vit_config


Source = Union[str, dict[str, str]]  # a path, or a Hugging Face source table


@dataclass(frozen=True)
class _UserData(TaskConfig):
    """The fields both custom kinds share: where the data are and how much of it is used."""

    _what = "a path"
    train: Source = ""
    test: Source = evaluation("")
    ood: dict[str, Source] | None = evaluation(None)
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
        for knob, source in self.sources().items():
            if isinstance(source, dict):
                hf.parse_source(source, knob)
        unknown = [n for n in self.near_ood if n not in ood]
        require(not unknown, f"near_ood name {unknown[0]!r} is not a key of 'ood' (keys: {', '.join(ood) or 'none'})"
                if unknown else "")
        require(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        positive(self, "train_per_class", "test_per_class", "ood_max", optional=True)

    def sources(self) -> dict[str, Source]:
        """Every source the config names: 'train', 'test' and 'ood/<name>'."""
        return {"train": self.train, "test": self.test, **{f"ood/{k}": v for k, v in (self.ood or {}).items()}}

    def check_paths(self, root: Path) -> None:
        for knob, source in self.sources().items():
            if isinstance(source, dict):
                hf.check_source(hf.parse_source(source, knob), root)
            else:
                path = user_path(root, source)
                require(path.exists(), f"{knob} not found: {path} (paths are relative to the data root {root})")


def _where(source: Source, root: Path) -> object:
    return user_path(root, source) if isinstance(source, str) else hf.parse_source(source, "")


def _aligned(train, test, train_source: Source, test_source: Source, root: Path):
    """``test`` relabelled to ``train``'s class order, once both have the same classes."""
    check_same_classes(train.classes, test.classes, _where(train_source, root), _where(test_source, root))
    order = np.array([train.classes.index(c) for c in test.classes], dtype=np.int64)
    return dataclasses.replace(test, labels=order[test.labels], classes=list(train.classes))


def _val_split(labels: np.ndarray, classes: list[str], val_fraction: float, where: object) -> np.ndarray:
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
    image_column: str = "image"  # Hugging Face sources only
    label_column: str = "label"

    def validate(self) -> None:
        _UserData.validate(self)
        ViTFields.validate(self)


def _labelled_images(cfg: ImageFolderConfig, source: Source, root: Path):
    if isinstance(source, str):
        return load_image_folder(user_path(root, source), cfg.image_size)
    src = hf.parse_source(source, "")
    return hf.image_set(hf.load_source(src, root), cfg.image_column, cfg.label_column, cfg.image_size, src)


def _ood_images(cfg: ImageFolderConfig, source: Source, root: Path) -> np.ndarray:
    if isinstance(source, str):
        return load_image_dir(user_path(root, source), cfg.image_size).images
    src = hf.parse_source(source, "")
    return hf.images(hf.load_source(src, root), cfg.image_column, cfg.image_size, src)


@register_task("imagefolder", ImageFolderConfig)
def imagefolder(cfg: ImageFolderConfig, root: Path) -> SupervisedTask:
    train = _labelled_images(cfg, cfg.train, root)
    test = _aligned(train, _labelled_images(cfg, cfg.test, root), cfg.train, cfg.test, root)
    idx = held_out_indices(train.labels, test.labels, _val_split(train.labels, train.classes, cfg.val_fraction,
                                                                 _where(cfg.train, root)), cfg.train_per_class, cfg.test_per_class)
    splits = {k: image_split(*((test.images, test.labels) if k == "test" else (train.images, train.labels)), i)
              for k, i in idx.items()}
    ood, _ = gather_ood([OODSource(k, lambda v=v: _ood_images(cfg, v, root)) for k, v in (cfg.ood or {}).items()],
                        lambda found, seed: ood_split(found, cfg.ood_max, seed), [])
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


def _labelled_texts(cfg: TextCSVConfig, source: Source, root: Path):
    if isinstance(source, str):
        return load_text_csv(user_path(root, source), cfg.text_column, cfg.label_column)
    src = hf.parse_source(source, "")
    return hf.text_set(hf.load_source(src, root), cfg.text_column, cfg.label_column, src)


def _ood_texts(cfg: TextCSVConfig, source: Source, root: Path) -> list[str]:
    if isinstance(source, str):
        return load_text_column(user_path(root, source), cfg.text_column)
    src = hf.parse_source(source, "")
    return hf.texts(hf.load_source(src, root), cfg.text_column, src)


@register_task("textcsv", TextCSVConfig)
def textcsv(cfg: TextCSVConfig, root: Path) -> SupervisedTask:
    train = _labelled_texts(cfg, cfg.train, root)
    # Test labels are read as written, then mapped to train's classes once both sets agree.
    test = _aligned(train, _labelled_texts(cfg, cfg.test, root), cfg.train, cfg.test, root)
    ood_texts = {k: _ood_texts(cfg, v, root) for k, v in (cfg.ood or {}).items()}
    _, tokenizer = load_encoder(MINILM)
    idx = held_out_indices(train.labels, test.labels, _val_split(train.labels, train.classes, cfg.val_fraction,
                                                                 _where(cfg.train, root)), cfg.train_per_class, cfg.test_per_class)
    splits = {k: text_split(tokenizer, [s.texts[j] for j in i], s.labels[i], cfg.max_length)
              for k, i in idx.items() for s in [test if k == "test" else train]}
    ood, _ = gather_ood([OODSource(k, lambda t=t: t) for k, t in ood_texts.items()],
                        lambda texts, seed: text_ood_split(tokenizer, texts, cfg.max_length, cfg.ood_max, seed), [])
    return assemble(
        "textcsv", cfg, extra={"backbone": MINILM}, num_classes=len(train.classes), splits=splits, ood=ood,
        near_ood=tuple(cfg.near_ood), backbone_fn=minilm_backbone_fn(len(train.classes)), recipe=recipe(cfg),
        preprocess=None, pretrained=True,
    )
