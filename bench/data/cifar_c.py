"""The published CIFAR-10-C and CIFAR-100-C arrays (Hendrycks & Dietterich, ICLR 2019).

Their release, which RobustBench and torch-uncertainty read as it is, is one folder per data
set (``CIFAR-10-C/``, ``CIFAR-100-C/`` under the data root) holding ``<corruption>.npy``, uint8
``(5 * N, 32, 32, 3)`` with severities 1 to 5 stacked in blocks of the N = 10000 test images,
and ``labels.npy``, ``(5 * N,)``. When the folder is absent the benchmark uses its own
corruptions (``bench.data.corruptions``) instead, and the results say which was used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .root import DataError, MissingData

FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
SEVERITIES = 5
# The project's corruption names whose published file is named differently.
PUBLISHED_NAMES = {"jpeg": "jpeg_compression"}


def cifar_c_folder(root: str | Path, dataset: str) -> Path | None:
    """The published folder of ``dataset`` (``cifar10`` or ``cifar100``) under ``root``, if present."""
    folder = Path(root) / FOLDERS[dataset]
    return folder if folder.is_dir() else None


def _array(file: Path) -> np.ndarray:
    if not file.is_file():
        raise DataError(f"{file} is missing from the published corruption arrays")
    try:
        return np.load(file, mmap_mode="r")  # 150 MB per corruption: read only the rows used
    except (OSError, ValueError) as e:
        raise DataError(f"{file}: unreadable .npy array ({e})") from e


def load_cifar_c(root: str | Path, dataset: str, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """The N test images of one corruption at one severity, in the published order, and their
    labels: a read-only memory map ``(N, H, W, 3)`` (index it to read the rows used) and int64 ``(N,)``.

    Args:
        root: The data root.
        dataset: ``cifar10`` or ``cifar100``.
        corruption: The project's name of a corruption (``jpeg`` reads ``jpeg_compression.npy``).
        severity: 1 to 5.

    Raises:
        MissingData: the published folder is absent.
        DataError: a file is missing or unreadable, or the shapes are not those of the release.
    """
    folder = cifar_c_folder(root, dataset)
    if folder is None:
        raise MissingData(f"{FOLDERS[dataset]} not found: looked for {Path(root) / FOLDERS[dataset]}")
    if not 1 <= severity <= SEVERITIES:
        raise ValueError(f"severity must be from 1 to {SEVERITIES}, got {severity}")
    images = _array(folder / f"{PUBLISHED_NAMES.get(corruption, corruption)}.npy")
    labels = _array(folder / "labels.npy")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise DataError(f"{folder}: {corruption} array is {images.dtype} {images.shape}, expected uint8 (5N, H, W, 3)")
    if labels.ndim != 1 or len(labels) != len(images) or len(images) % SEVERITIES:
        raise DataError(f"{folder}: {len(images)} images and {labels.shape} labels; expected 5 equal severity "
                        f"blocks with one label per image")
    n = len(images) // SEVERITIES
    block = slice((severity - 1) * n, severity * n)
    return images[block], np.asarray(labels[block], dtype=np.int64)
