"""Hugging Face datasets as sources of the custom task kinds' splits.

A source is a table ``{dataset = ..., split = ..., revision = ...}``. ``dataset`` is either a
folder written by ``datasets``' ``save_to_disk`` (relative to the data root unless absolute;
a ``DatasetDict`` whose ``split`` is taken, or a single ``Dataset`` with no ``split``) or a
Hugging Face Hub name, which must be pinned to a ``revision`` (a commit id) so that a result
names the exact data it was computed on. A folder of that name under the data root wins over
the Hub. Hub downloads obey ``UQBENCH_OFFLINE``; an unreachable Hub is ``MissingData``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .images import ImageSet, to_rgb_array
from .root import DataError, MissingData, offline
from .text import TextSet, label_indices

_KEYS = {"dataset", "split", "revision"}


@dataclass(frozen=True)
class HFSource:
    """One split of a Hugging Face dataset: a local ``save_to_disk`` folder or a pinned Hub name."""

    dataset: str
    split: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{self.dataset}{at}" + (f"[{self.split}]" if self.split else "")


def parse_source(value: Mapping[str, Any], where: str) -> HFSource:
    """Checks a source table's keys and types (no data is read); ``where`` starts the error."""
    if not isinstance(value, Mapping) or "dataset" not in value or set(value) - _KEYS:
        raise ValueError(f"{where}: a Hugging Face source is a table with 'dataset' and optionally "
                         f"'split' and 'revision', got {value!r}")
    if not all(isinstance(v, str) and v for v in value.values()):
        raise ValueError(f"{where}: 'dataset', 'split' and 'revision' must be non-empty strings, got {value!r}")
    return HFSource(value["dataset"], value.get("split"), value.get("revision"))


def _folder(source: HFSource, root: Path) -> Path | None:
    path = Path(os.path.expanduser(source.dataset))
    path = path if path.is_absolute() else root / path
    return path if path.is_dir() else None


def check_source(source: HFSource, root: Path) -> None:
    """Raises ``ValueError`` unless the source is a folder under ``root`` or a Hub name with a
    ``split`` and a pinned ``revision`` (checked when the suite loads; nothing is read)."""
    if _folder(source, root) is None and not (source.revision and source.split):
        raise ValueError(f"Hugging Face dataset {source.dataset!r}: no folder {root / source.dataset}; "
                         f"a Hub dataset needs 'split' and a pinned 'revision' (a commit id)")


def load_source(source: HFSource, root: Path) -> Any:
    """The ``datasets.Dataset`` a source names.

    Raises:
        ValueError: a Hub name without a revision, or without a split.
        MissingData: a Hub dataset that cannot be had (offline, unreachable, unknown).
        DataError: a folder that is not a saved dataset, or has no such split.
    """
    import datasets  # imported here: it takes seconds, and only these sources need it

    check_source(source, root)
    folder = _folder(source, root)
    if folder is None:
        if offline():
            raise MissingData(f"Hub dataset {source} not downloaded: UQBENCH_OFFLINE is set "
                              f"(save it with save_to_disk and give the folder)")
        try:
            return datasets.load_dataset(source.dataset, split=source.split, revision=source.revision)
        except Exception as e:  # no network, unknown name or revision
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise MissingData(f"Hub dataset {source} could not be loaded: {first}") from e
    try:
        saved = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{folder} is not a folder written by save_to_disk: {e}") from e
    if isinstance(saved, datasets.DatasetDict):
        if source.split not in saved:
            raise DataError(f"{folder}: no split {source.split!r} (splits: {', '.join(saved) or 'none'})")
        return saved[source.split]
    if source.split is not None:
        raise DataError(f"{folder} holds one Dataset, not a DatasetDict: give no 'split'")
    return saved


def _column(ds: Any, column: str, source: HFSource) -> list[Any]:
    if column not in ds.column_names:
        raise DataError(f"{source}: no column {column!r}; columns present: "
                        f"{', '.join(map(repr, ds.column_names)) or 'none'}")
    return ds[column]


def _labels(ds: Any, column: str, classes: list[str] | None, source: HFSource) -> tuple[np.ndarray, list[str]]:
    """Labels as indices into ``classes``; a ``ClassLabel`` column gives its names."""
    values = _column(ds, column, source)
    names = getattr(ds.features[column], "names", None)
    raw = [names[v] for v in values] if names else [str(v).strip() for v in values]
    if classes is None and names:
        classes = list(names)
    return label_indices(raw, classes, f"{source}: label", column)


def texts(ds: Any, text_column: str, source: HFSource) -> list[str]:
    """The text column (OOD sets: labels are not read)."""
    out = [str(t) for t in _column(ds, text_column, source)]
    if not out:
        raise DataError(f"{source}: no rows")
    return out


def text_set(ds: Any, text_column: str, label_column: str, source: HFSource,
             classes: list[str] | None = None) -> TextSet:
    """Texts and labels (``classes`` as in ``load_text_csv``; a ``ClassLabel`` names them)."""
    labels, classes = _labels(ds, label_column, classes, source)
    return TextSet(texts(ds, text_column, source), labels, classes)


def images(ds: Any, image_column: str, size: int, source: HFSource) -> np.ndarray:
    """The image column as uint8 ``(N, size, size, 3)`` (center-cropped, resized)."""
    column = _column(ds, image_column, source)
    if not len(column):
        raise DataError(f"{source}: no rows")
    try:
        return np.stack([to_rgb_array(img, size) for img in column])
    except (AttributeError, OSError, ValueError) as e:
        raise DataError(f"{source}: column {image_column!r} does not hold readable images ({e})") from e


def image_set(ds: Any, image_column: str, label_column: str, size: int, source: HFSource,
              classes: list[str] | None = None) -> ImageSet:
    """Images and labels, as ``images`` and ``text_set`` give them."""
    labels, classes = _labels(ds, label_column, classes, source)
    return ImageSet(images(ds, image_column, size, source), labels, classes)
