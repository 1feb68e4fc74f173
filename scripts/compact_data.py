"""Writes a compact copy of a data root for a machine that can receive only a few tens of MB.

CIFAR-10 keeps its JPEG files as they are (the first ``--train``/``--test`` per class, in the
sorted order the loader uses). Textures and the ImageNet sample are decoded exactly as the
CIFAR task decodes them (centre crop, bilinear resize to 32 px) and stored as lossless PNG,
so the task sees the same pixels as from the full folders.

    python scripts/compact_data.py SRC DST --train 1850 --test 500
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

from uqbench.bench.data.images import class_dirs, _image_files, load_image_folder  # the loader's own listing


def copy_cifar(src: Path, dst: Path, per_class: dict[str, int]) -> int:
    n = 0
    for split, k in per_class.items():
        for cls in class_dirs(src / split):
            files = _image_files(src / split / cls)[:k]
            out = dst / split / cls
            out.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(src / split / cls / f, out / f)
            n += len(files)
    return n


def shrink_folder(src: Path, dst: Path, size: int = 32) -> int:
    images = load_image_folder(src, size, cache=False)
    counts: dict[int, int] = {}
    for img, label in zip(images.images, images.labels):
        out = dst / images.classes[label]
        out.mkdir(parents=True, exist_ok=True)
        i = counts[label] = counts.get(label, -1) + 1
        Image.fromarray(img).save(out / f"{i:05d}.png", optimize=True)
    return len(images)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--train", type=int, default=1850, help="CIFAR-10 training images per class")
    ap.add_argument("--test", type=int, default=500, help="CIFAR-10 test images per class")
    args = ap.parse_args()
    if not (args.src / "cifar10" / "train").is_dir():
        print(f"error: {args.src}/cifar10/train/<class>/ not found", file=sys.stderr)
        return 2
    n = copy_cifar(args.src / "cifar10", args.dst / "cifar10", {"train": args.train, "test": args.test})
    print(f"cifar10: {n} files")
    for name in ("textures", "imagenet-sample"):
        if (args.src / name).is_dir():
            print(f"{name}: {shrink_folder(args.src / name, args.dst / name)} images at 32 px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
