"""Generic task kinds that a suite file points at the user's own data.

``imagefolder``: ImageFolder trees (``<class>/*.jpg|jpeg|png``) for train and test, a ViT
trained from scratch. ``textcsv``: CSV files with a header row, all-MiniLM-L6-v2 fine-tuned.
Both take OOD sets as ``{name: path}`` and list the near-OOD ones in ``near_ood``; the rest
are far-OOD. A relative path is taken relative to the data root (``UQBENCH_DATA``), so a
suite stays portable between machines. A 'val' split of ``val_fraction`` per class is held
out from train.

A suite entry looks like::

    [[tasks]]
    name = "my-images"
    kind = "imagefolder"
    params = { train = "mine/train", test = "mine/test", ood = { noise = "mine/noise" } }
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from uqbench.bench.data import DataError, MissingData, load_image_folder, load_text_csv
from uqbench.bench.tasks import register_task
from uqbench.bench.tasks.base import Preprocess, Split, SupervisedTask, stratified_split, subsample
from uqbench.bench.tasks.text import MINILM, check_max_length, load_minilm, minilm_backbone_fn, text_ood_split, text_split
from uqbench.bench.tasks.vision import check_ood_max, check_vit, image_split, ood_split, resolve_root, vit_backbone_fn
from uqbench.bench.train import Recipe
from uqbench.methods.transformer import vit_config

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def _required(task: str, knob: str, value: Any, what: str) -> None:
    if not value:
        raise ValueError(f"task {task!r}: parameter {knob!r} is required ({what})")


def _path(root: Path, value: str) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else root / p


def _ood_spec(task: str, ood: dict[str, str] | None, near_ood: list[str] | tuple[str, ...]) -> dict[str, str]:
    ood = dict(ood or {})
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in ood.items()):
        raise ValueError(f"task {task!r}: 'ood' must map names to non-empty paths, got {ood}")
    unknown = [n for n in near_ood if n not in ood]
    if unknown:
        raise ValueError(f"task {task!r}: near_ood name {unknown[0]!r} is not a key of 'ood' "
                         f"(keys: {', '.join(ood) or 'none'})")
    return ood


def _check_fraction(val_fraction: float) -> None:
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")


def _check_classes(train_classes: list[str], test_classes: list[str], train: Path, test: Path) -> None:
    only_train = [c for c in train_classes if c not in set(test_classes)]
    if only_train:
        raise DataError(f"class {only_train[0]!r} is in {train} but missing from the test split {test}")
    only_test = [c for c in test_classes if c not in set(train_classes)]
    if only_test:
        raise DataError(f"class {only_test[0]!r} is in the test split {test} but missing from {train}")


def _val_split(labels: np.ndarray, classes: list[str], val_fraction: float, where: Path) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        c = int(counts.argmin())
        raise DataError(f"{where}: class {classes[c]!r} has {counts[c]} example(s); each class needs "
                        f"at least 2 (one is held out for 'val')")
    return stratified_split(labels, val_fraction, seed=0)


# --- imagefolder ----------------------------------------------------------------------------


def _class_dirs(path: Path) -> list[str]:
    if not path.is_dir():
        raise MissingData(f"image folder not found: {path}")
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _load_ood_images(path: Path, size: int):
    """An OOD folder: either ``<class>/*`` subfolders or the images directly."""
    if not path.is_dir():
        raise MissingData(f"OOD image folder not found: {path}")
    if _class_dirs(path):
        return load_image_folder(path, size)
    if not any(Path(e.name).suffix.lower() in _IMAGE_SUFFIXES for e in os.scandir(path) if e.is_file()):
        raise DataError(f"no images in {path}: expected *.jpg|*.jpeg|*.png files or <class>/ subfolders")
    return load_image_folder(path.parent, size, classes=[path.name])


@register_task("imagefolder")
def imagefolder(
    root=None,
    train: str = "",
    test: str = "",
    ood: dict[str, str] | None = None,
    near_ood: list[str] | tuple[str, ...] = (),
    image_size: int = 32,
    val_fraction: float = 0.1,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    ood_max: int | None = 2000,
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
) -> SupervisedTask:
    name = "imagefolder"
    _required(name, "train", train, "a folder in ImageFolder layout, <class>/*.jpg")
    _required(name, "test", test, "a folder in ImageFolder layout, <class>/*.jpg")
    ood_paths = _ood_spec(name, ood, near_ood)
    check_vit(image_size, dim, heads, patch)
    check_ood_max(ood_max)
    _check_fraction(val_fraction)
    params = dict(train=train, test=test, ood=ood_paths, near_ood=list(near_ood), image_size=image_size,
                  val_fraction=val_fraction, train_per_class=train_per_class, test_per_class=test_per_class,
                  ood_max=ood_max, dim=dim, depth=depth, heads=heads, patch=patch, mlp_ratio=mlp_ratio,
                  epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  label_smoothing=label_smoothing)

    root = resolve_root(root)
    train_dir, test_dir = _path(root, train), _path(root, test)
    classes = _class_dirs(train_dir)
    if not classes:
        raise DataError(f"no images in {train_dir}: expected <class>/*.jpg|*.jpeg|*.png subfolders")
    _check_classes(classes, _class_dirs(test_dir), train_dir, test_dir)
    train_set = load_image_folder(train_dir, image_size, classes=classes)
    test_set = load_image_folder(test_dir, image_size, classes=classes)

    rest, val_idx = _val_split(train_set.labels, classes, val_fraction, train_dir)
    train_idx = rest[subsample(train_set.labels[rest], train_per_class, seed=1)]
    test_idx = subsample(test_set.labels, test_per_class, seed=2)
    splits = {
        "train": image_split(train_set.images, train_set.labels, train_idx),
        "val": image_split(train_set.images, train_set.labels, val_idx),
        "test": image_split(test_set.images, test_set.labels, test_idx),
    }
    ood_splits = {k: ood_split(_load_ood_images(_path(root, p), image_size).images, ood_max, seed=10 + i)
                  for i, (k, p) in enumerate(ood_paths.items())}

    # Normalise with the training images' own statistics (a sample is enough).
    sample = train_set.images[train_idx[np.linspace(0, len(train_idx) - 1, min(2000, len(train_idx))).astype(int)]]
    pixels = sample.reshape(-1, 3).astype(np.float32) / 255
    mean = tuple(float(v) for v in pixels.mean(0))
    std = tuple(float(max(v, 1e-3)) for v in pixels.std(0))

    cfg = vit_config(img_size=image_size, patch=patch, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
                     num_classes=len(classes))
    return SupervisedTask(
        name=name,
        num_classes=len(classes),
        splits=splits,
        ood=ood_splits,
        backbone_fn=vit_backbone_fn(cfg),
        recipe=Recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      label_smoothing=label_smoothing),
        config={"task": name, **params},
        preprocess=Preprocess(mean=mean, std=std, crop_pad=max(1, image_size // 8), flip=True),
        near_ood=tuple(near_ood),
    )


# --- textcsv --------------------------------------------------------------------------------


def _read_text_column(path: Path, column: str) -> list[str]:
    """The ``column`` of a CSV file with a header row (the OOD files: labels are not read)."""
    if not path.is_file():
        raise MissingData(f"CSV file not found: {path}")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: unreadable CSV: {e}") from e
    header = rows[0] if rows else []
    if column not in header:
        raise DataError(f"{path}: no column {column!r}; columns present: "
                        f"{', '.join(map(repr, header)) or 'none'}")
    t = header.index(column)
    texts = []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) <= t:
            raise DataError(f"{path}:{number}: {len(row)} field(s), header has {len(header)}")
        texts.append(row[t])
    if not texts:
        raise DataError(f"{path}: no rows")
    return texts


@register_task("textcsv")
def textcsv(
    root=None,
    train: str = "",
    test: str = "",
    text_column: str = "text",
    label_column: str = "label",
    ood: dict[str, str] | None = None,
    near_ood: list[str] | tuple[str, ...] = (),
    max_length: int = 64,
    val_fraction: float = 0.1,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    ood_max: int | None = 2000,
    epochs: float = 4,
    batch_size: int = 32,
    lr: float = 5e-5,
    weight_decay: float = 0.01,
    head_lr_mult: float = 20.0,
) -> SupervisedTask:
    name = "textcsv"
    _required(name, "train", train, "a CSV file with a header row")
    _required(name, "test", test, "a CSV file with a header row")
    _required(name, "text_column", text_column, "the name of the text column")
    _required(name, "label_column", label_column, "the name of the label column")
    ood_paths = _ood_spec(name, ood, near_ood)
    check_ood_max(ood_max)
    check_max_length(max_length)
    _check_fraction(val_fraction)
    params = dict(train=train, test=test, text_column=text_column, label_column=label_column,
                  ood=ood_paths, near_ood=list(near_ood), max_length=max_length, val_fraction=val_fraction,
                  train_per_class=train_per_class, test_per_class=test_per_class, ood_max=ood_max,
                  epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  head_lr_mult=head_lr_mult)

    root = resolve_root(root)
    train_file, test_file = _path(root, train), _path(root, test)
    train_set = load_text_csv(train_file, text_column, label_column)
    if not len(train_set):
        raise DataError(f"{train_file}: no rows")
    # Read test labels as written, then compare the class sets both ways.
    test_raw = load_text_csv(test_file, text_column, label_column)
    _check_classes(train_set.classes, test_raw.classes, train_file, test_file)
    test_set = load_text_csv(test_file, text_column, label_column, classes=train_set.classes)
    ood_texts = {k: _read_text_column(_path(root, p), text_column) for k, p in ood_paths.items()}

    _, tokenizer = load_minilm()
    num_classes = len(train_set.classes)
    rest, val_idx = _val_split(train_set.labels, train_set.classes, val_fraction, train_file)
    train_idx = rest[subsample(train_set.labels[rest], train_per_class, seed=1)]
    test_idx = subsample(test_set.labels, test_per_class, seed=2)

    def split(s, idx) -> Split:
        return text_split(tokenizer, [s.texts[i] for i in idx], s.labels[idx], max_length)

    splits = {"train": split(train_set, train_idx), "val": split(train_set, val_idx),
              "test": split(test_set, test_idx)}
    ood_splits = {k: text_ood_split(tokenizer, texts, max_length, ood_max, seed=10 + i)
                  for i, (k, texts) in enumerate(ood_texts.items())}
    return SupervisedTask(
        name=name,
        num_classes=num_classes,
        splits=splits,
        ood=ood_splits,
        backbone_fn=minilm_backbone_fn(num_classes),
        recipe=Recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      head_lr_mult=head_lr_mult),
        config={"task": name, "backbone": MINILM, **params},
        preprocess=None,
        pretrained=True,
        near_ood=tuple(near_ood),
    )
