"""Data layer: finding, downloading, checking and loading the benchmark's data sets.

Images come back as uint8 ``(N, H, W, 3)`` arrays (``ImageSet``), texts as lists of
strings (``TextSet``); both carry int64 labels and the class names. The data root is
env ``UQBENCH_DATA`` (default ``./data``); ``UQBENCH_OFFLINE=1`` forbids downloads.
"""

from .corruptions import CORRUPTIONS, corrupt
from .images import (
    ImageSet,
    class_dirs,
    load_cifar,
    load_image_dir,
    load_image_folder,
    load_imagenet,
    load_svhn,
    load_textures,
)
from .root import (
    DataError,
    FetchFailed,
    MissingData,
    check_same_classes,
    data_root,
    extract,
    fetch,
    fetch_and_extract,
    verify_manifest,
)
from .text import (
    TextSet,
    load_ag_news,
    load_clinc150,
    load_custrev,
    load_sst2,
    load_text_column,
    load_text_csv,
    load_trec,
)

__all__ = [
    "CORRUPTIONS",
    "DataError",
    "FetchFailed",
    "ImageSet",
    "MissingData",
    "TextSet",
    "check_same_classes",
    "class_dirs",
    "corrupt",
    "data_root",
    "extract",
    "fetch",
    "fetch_and_extract",
    "load_ag_news",
    "load_cifar",
    "load_clinc150",
    "load_custrev",
    "load_image_dir",
    "load_image_folder",
    "load_imagenet",
    "load_sst2",
    "load_svhn",
    "load_text_column",
    "load_text_csv",
    "load_textures",
    "load_trec",
    "verify_manifest",
]
