"""Image data sets as uint8 arrays: ImageFolder trees, CIFAR, SVHN, Textures, ImageNet.

Every loader returns an ``ImageSet`` of ``(N, H, W, 3)`` uint8 images, int64 labels and
the class names, label ``i`` being ``classes[i]``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .root import DataError, FetchFailed, MissingData, check_same_classes, fetch, fetch_and_extract

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Decoding a few thousand small files takes seconds; below this a cache is not worth it.
CACHE_MIN_FILES = 1000


@dataclass
class ImageSet:
    """Images ``(N, H, W, 3)`` uint8, labels ``(N,)`` int64 and the class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


# --- ImageFolder ------------------------------------------------------------------------


def cache_dir() -> Path:
    """Returns the decoded-image cache folder: env ``UQBENCH_CACHE``, default
    ``~/.cache/uqbench``."""
    return Path(os.environ.get("UQBENCH_CACHE") or Path.home() / ".cache" / "uqbench")


def class_dirs(path: Path) -> list[str]:
    """The class subfolders of ``path``, sorted (hidden ones left out)."""
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _image_files(folder: Path) -> list[str]:
    return sorted(
        e.name for e in os.scandir(folder)
        if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
        and not e.name.startswith(".")
    )


def _decode(file: Path, size: int | None) -> np.ndarray:
    """Reads one image as RGB; with ``size``, center-crops to a square and resizes."""
    try:
        with Image.open(file) as img:
            return to_rgb_array(img, size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"unreadable image {file}: {e}") from e


def to_rgb_array(img: Image.Image, size: int | None) -> np.ndarray:
    """An image as uint8 RGB ``(H, W, 3)``; with ``size``, center-cropped to a square and resized."""
    img = img.convert("RGB")  # forces a full decode, so truncation shows here
    if size is not None:
        w, h = img.size
        if w != h:
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _cache_key(path: Path, size: int | None, files: list[Path]) -> str:
    h = hashlib.sha256(f"{path.resolve()}|{size}".encode())
    for f in files:
        st = f.stat()
        h.update(f"|{f.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _read_cache(file: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(file, allow_pickle=False) as z:
            return z["images"], z["labels"]
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache: decode again


def _write_cache(file: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from ..results import atomic_file

    try:
        with atomic_file(file) as f:
            np.savez(f, images=images, labels=labels)
    except OSError:
        pass  # a read-only or full disk must not break loading


def load_image_folder(path: str | os.PathLike, size: int | None,
                      classes: list[str] | None = None,
                      max_per_class: int | None = None, *,
                      cache: bool = True) -> ImageSet:
    """Loads a ``<class>/*.{jpg,jpeg,png}`` tree.

    Args:
        path: Folder holding one subfolder per class.
        size: Output side length; images are center-cropped to a square and resized
            (bilinear). ``None`` keeps the stored size, which must then be uniform.
        classes: Classes to load, in label order; default all subfolders, sorted.
        max_per_class: Keep at most this many files per class (first in sorted order).
        cache: Reuse/write a ``.npz`` of the decoded arrays under ``cache_dir()`` for
            folders of ``CACHE_MIN_FILES`` or more images.

    Raises:
        MissingData: the folder does not exist.
        DataError: a requested class folder is missing, a class or the whole folder has
            no images, an image is unreadable, or sizes differ with ``size=None``.
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingData(f"image folder not found: {path}")
    classes = list(classes) if classes is not None else class_dirs(path)
    if not classes:
        raise DataError(f"no images in {path}: expected <class>/*.jpg|*.jpeg|*.png subfolders")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        folder = path / name
        if not folder.is_dir():
            raise DataError(f"class {name!r} missing: no folder {folder}")
        names = _image_files(folder)
        if not names:
            raise DataError(f"no images in {folder}")
        names = names[:max_per_class] if max_per_class is not None else names
        files += [folder / n for n in names]
        labels += [index] * len(names)

    cache_file = None
    if cache and len(files) >= CACHE_MIN_FILES:
        cache_file = cache_dir() / f"images-{_cache_key(path, size, files)}.npz"
        cached = _read_cache(cache_file)
        if cached is not None and len(cached[1]) == len(files):
            return ImageSet(cached[0], cached[1], classes)

    # PIL releases the GIL while decoding, so threads overlap the work.
    workers = min(16, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(lambda f: _decode(f, size), files))
    shape = arrays[0].shape
    for f, a in zip(files, arrays):
        if a.shape != shape:
            raise DataError(f"image {f} is {a.shape[1]}x{a.shape[0]}, others "
                            f"{shape[1]}x{shape[0]}: pass size= to resize")
    images = np.stack(arrays)
    label_array = np.asarray(labels, dtype=np.int64)
    if cache_file is not None:
        _write_cache(cache_file, images, label_array)
    return ImageSet(images, label_array, classes)


def load_image_dir(path: str | os.PathLike, size: int) -> ImageSet:
    """Loads a folder in either layout: ``<class>/*`` subfolders, or the images directly
    (then one class named after the folder), e.g. an OOD set.

    Raises:
        MissingData: the folder does not exist.
        DataError: it holds neither images nor class subfolders.
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingData(f"image folder not found: {path}")
    if class_dirs(path):
        return load_image_folder(path, size)
    if not _image_files(path):
        raise DataError(f"no images in {path}: expected *.jpg|*.jpeg|*.png files or <class>/ subfolders")
    return load_image_folder(path.parent, size, classes=[path.name])


def _not_found(what: str, looked: list[str], reason: str) -> MissingData:
    return MissingData(f"{what} not found: looked for {' and '.join(looked)}; {reason}")


# --- CIFAR ------------------------------------------------------------------------------

_CIFAR = {
    "cifar10": {
        "title": "CIFAR-10",
        "archive_dir": "cifar-10-batches-py",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "names_key": b"label_names",
        "labels_key": b"labels",
    },
    "cifar100": {
        "title": "CIFAR-100",
        "archive_dir": "cifar-100-python",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "names_key": b"fine_label_names",
        "labels_key": b"fine_labels",
    },
}


def _unpickle(file: Path) -> dict:
    if not file.is_file():
        raise DataError(f"incomplete CIFAR archive: {file} is missing")
    try:
        with open(file, "rb") as f:
            # The official CIFAR "python version" is a pickle; loading it is acceptable
            # only because it is the data's own published format from a pinned source.
            obj = pickle.load(f, encoding="bytes")
    except Exception as e:  # unpickling damaged bytes can raise almost anything
        raise DataError(f"damaged CIFAR file {file}: {type(e).__name__}: {e}") from e
    if not isinstance(obj, dict):
        raise DataError(f"damaged CIFAR file {file}: not a dict")
    return obj


def _load_cifar_archive(folder: Path, spec: dict, split: str) -> ImageSet:
    meta = _unpickle(folder / spec["meta"])
    try:
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[spec["names_key"]]]
    except KeyError as e:
        raise DataError(f"{folder / spec['meta']}: no key {e}") from e
    images, labels = [], []
    for name in spec[split]:
        batch = _unpickle(folder / name)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            batch_labels = np.asarray(batch[spec["labels_key"]], dtype=np.int64)
        except KeyError as e:
            raise DataError(f"{folder / name}: no key {e}") from e
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(batch_labels):
            raise DataError(f"{folder / name}: expected (N, 3072) data and N labels, "
                            f"got {data.shape} and {batch_labels.shape}")
        # Rows are channel-major: 1024 red, then green, then blue values.
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    label_array = np.concatenate(labels)
    if label_array.size and (label_array.min() < 0 or label_array.max() >= len(classes)):
        raise DataError(f"{folder}: labels outside 0..{len(classes) - 1}")
    return ImageSet(np.ascontiguousarray(np.concatenate(images)), label_array, classes)


def _matching_classes(folder: Path) -> list[str]:
    """Sorted class list of ``folder/{train,test}``; both splits must agree."""
    splits = {s: class_dirs(folder / s) for s in ("train", "test") if (folder / s).is_dir()}
    if len(splits) == 2:
        check_same_classes(splits["train"], splits["test"], folder / "train", folder / "test")
    return sorted(set().union(*splits.values()))


def load_cifar(root: str | os.PathLike, name: str, split: str) -> ImageSet:
    """Loads CIFAR-10 or CIFAR-100 (fine labels) at 32x32.

    Looks for, in order: ``root/<name>/<split>/<class>/*`` (ImageFolder), the official
    python archive folder under ``root``, and the official tarball (downloaded into
    ``root``).

    Args:
        root: Data root.
        name: ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"`` or ``"test"``.

    Raises:
        MissingData: none of the above could be had.
        DataError: the data found is damaged or the splits' classes disagree.
    """
    if name not in _CIFAR:
        raise ValueError(f"unknown CIFAR name {name!r}; valid: {', '.join(_CIFAR)}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown CIFAR split {split!r}; valid: train, test")
    root, spec = Path(root), _CIFAR[name]
    folder = root / name
    if (folder / split).is_dir():
        return load_image_folder(folder / split, 32, classes=_matching_classes(folder))
    archive_dir = root / spec["archive_dir"]
    if not archive_dir.is_dir():
        try:
            fetch_and_extract(spec["url"], root / Path(spec["url"]).name, root, md5=spec["md5"])
        except FetchFailed as e:
            raise _not_found(
                spec["title"],
                [f"{folder}/{{train,test}}/<class>/*.jpg", str(archive_dir)],
                f"download failed: {e.reason}",
            ) from e
    return _load_cifar_archive(archive_dir, spec, split)


# --- SVHN -------------------------------------------------------------------------------

_SVHN_URL = "http://ufldl.stanford.edu/housenumbers/{split}_32x32.mat"
_SVHN_MD5 = {
    "train": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test": "eb5a983be6a315427106f1b164d9cef3",
    "extra": "a93ce644f1a588dc4d68dda5feec44a7",
}


def load_svhn(root: str | os.PathLike, split: str = "test") -> ImageSet:
    """Loads SVHN (cropped digits, 32x32) from ``root/svhn/<split>_32x32.mat``.

    The official file stores digit 0 as label 10; it is mapped back to 0.

    Raises:
        MissingData: the file is absent and could not be downloaded.
        DataError: the file is not a readable ``.mat`` with ``X`` and ``y``.
    """
    import scipy.io  # only SVHN needs scipy

    if split not in _SVHN_MD5:
        raise ValueError(f"unknown SVHN split {split!r}; valid: {', '.join(_SVHN_MD5)}")
    file = Path(root) / "svhn" / f"{split}_32x32.mat"
    if not file.is_file():
        try:
            fetch(_SVHN_URL.format(split=split), file, md5=_SVHN_MD5[split])
        except FetchFailed as e:
            raise _not_found("SVHN", [str(file)], f"download failed: {e.reason}") from e
    try:
        mat = scipy.io.loadmat(file)
        x, y = mat["X"], mat["y"]
    except (scipy.io.matlab.MatReadError, NotImplementedError, KeyError, ValueError,
            OSError, TypeError) as e:
        raise DataError(f"damaged SVHN file {file}: {type(e).__name__}: {e}") from e
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise DataError(f"{file}: expected X (32, 32, 3, N) and N labels, "
                        f"got {x.shape} and {y.shape}")
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2), dtype=np.uint8)
    return ImageSet(images, labels, [str(d) for d in range(10)])


# --- Textures (DTD) ---------------------------------------------------------------------

_DTD_URL = "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"
_DTD_MD5 = "fff73e5086ae6bdbea199a49dfb8a4c1"


def load_textures(root: str | os.PathLike, size: int) -> ImageSet:
    """Loads the Describable Textures data set, resized to ``size`` x ``size``.

    Looks for ``root/textures/<class>/*.jpg``, then the official layout
    ``root/dtd/images/<class>/*.jpg``, then downloads the official tarball.

    Raises:
        MissingData: none of the above could be had.
    """
    root = Path(root)
    candidates = [root / "textures", root / "dtd" / "images"]
    for folder in candidates:
        if folder.is_dir():
            return load_image_folder(folder, size)
    try:
        fetch_and_extract(_DTD_URL, root / Path(_DTD_URL).name, root, md5=_DTD_MD5)
    except FetchFailed as e:
        raise _not_found("Textures (DTD)", [f"{c}/<class>/*.jpg" for c in candidates],
                         f"download failed: {e.reason}") from e
    return load_image_folder(candidates[1], size)


# --- ImageNet ---------------------------------------------------------------------------


def load_imagenet(root: str | os.PathLike, size: int, folder: str = "imagenet-sample") -> ImageSet:
    """Loads an ImageNet-style ``<wnid>/*.JPEG`` folder; sorted wnids give the class index.

    Raises:
        MissingData: the folder is absent (ImageNet cannot be downloaded automatically).
    """
    path = Path(root) / folder
    if not path.is_dir():
        raise MissingData(
            f"ImageNet not found: looked for {path}/<wnid>/*.JPEG; it cannot be downloaded "
            f"automatically (image-net.org needs a login), put the class folders there"
        )
    return load_image_folder(path, size)
