"""In-memory supervised tasks: splits of images or token ids, a backbone factory, a recipe.

``SupervisedTask`` implements the ``methods.base.Task`` protocol: the methods see models,
batches and a training call, never files. Trained models are cached on disk by a hash of
everything that determines them (``checkpoint_key``), so a resumed run does not train a
finished model again, and a changed evaluation knob retrains nothing.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, save
from torch import Tensor, nn

from .. import dist, locks, results
from .. import train as training
from ..results import cache_root  # noqa: F401  (tasks and the runner read it here)
from ..train import Recipe
from ...methods.base import Inputs, derive_seed
from ...methods.transformer import StreamTransformer


def config_hash(obj: Any) -> str:
    """A short stable hash of a JSON-able object."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def measuring_lock() -> Path:
    """The lock a runner holds while it measures cost; runners sharing the cache pause for it."""
    return cache_root() / "measuring.lock"


BASE_MODEL = "base-model"  # the checkpoint owner of ``single_model``, which several methods share


@dataclass
class Split:
    """One split: images ``(N, H, W, C)`` uint8, or token ids and masks ``(N, L)``; labels ``(N,)``
    (-1 for OOD samples)."""

    x: Tensor | dict[str, Tensor]
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: Tensor) -> Inputs:
        if isinstance(self.x, dict):
            out = {k: v[idx] for k, v in self.x.items()}
            n = int(out["attention_mask"].sum(1).max())  # trim padding to the longest in batch
            return {k: v[:, :n] for k, v in out.items()}
        return self.x[idx]


@dataclass
class Preprocess:
    """How raw image batches become model inputs (text needs none)."""

    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, ...] = (0.2470, 0.2435, 0.2616)
    crop_pad: int = 4  # random-crop padding for training augmentation; 0 = off
    flip: bool = True
    resize: int | None = None  # upsample each batch to this size (pretrained models' resolution)

    def __call__(self, x: Tensor, augment: bool, gen: torch.Generator | None) -> Tensor:
        x = x.permute(0, 3, 1, 2).float().div_(255)  # (B, C, H, W)
        if augment:
            x = self.augment(x, gen)
        if self.resize and x.shape[-1] != self.resize:
            x = torch.nn.functional.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
        mean = torch.tensor(self.mean[: x.shape[1]]).view(1, -1, 1, 1)
        std = torch.tensor(self.std[: x.shape[1]]).view(1, -1, 1, 1)
        return (x - mean) / std

    def augment(self, x: Tensor, gen: torch.Generator | None) -> Tensor:
        B, _, H, W = x.shape
        if self.flip:
            flip = torch.rand(B, generator=gen) < 0.5
            x = torch.where(flip.view(B, 1, 1, 1), x.flip(3), x)
        p = self.crop_pad
        if p:
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (B,), generator=gen)
            dx = torch.randint(0, 2 * p + 1, (B,), generator=gen)
            x = torch.stack([padded[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])
        return x


@dataclass
class SupervisedTask:
    """A task over in-memory splits; implements ``methods.base.Task``."""

    name: str
    num_classes: int
    splits: dict[str, Split]  # 'train', 'val', 'test', optional 'ood_val'
    ood: dict[str, Split]  # OOD evaluation sets by name
    backbone_fn: Callable[[int], StreamTransformer]  # seeded fresh model
    recipe: Recipe
    config: dict[str, Any]  # the whole declaration and what was found in the data (hashed into results)
    training_config: dict[str, Any]  # the part that determines trained weights (checkpoint keys)
    preprocess: Preprocess | None = None  # None for text
    shift: dict[str, Split] = field(default_factory=dict)  # 'corruption/severity' -> split
    near_ood: tuple[str, ...] = ()  # which OOD sets are near-OOD (the rest are far)
    trainable: bool = True
    pretrained: bool = False
    eval_batch_size: int = 256
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    notes: list[str] = field(default_factory=list)
    job: tuple[str, dict[str, Any]] | None = None  # (method, training hyper-parameters) of the running job
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # those the running job used

    @property
    def epochs(self) -> float:
        return self.recipe.epochs

    @functools.cached_property
    def backbone_config(self) -> dict[str, Any]:
        """The backbone's architecture (the same for every seed), read once from one built model."""
        with torch.random.fork_rng():
            return dict(self.backbone_fn(0).config)

    @property
    def modality(self) -> str:
        """``"image"`` or ``"text"`` (text splits need no preprocessing)."""
        return "text" if self.preprocess is None else "image"

    @property
    def hash(self) -> str:
        return config_hash(self.config)

    # -- data -----------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return len(self.splits.get(split, ())) > 0

    def _inputs(self, split: Split, idx: Tensor, augment: bool, gen: torch.Generator | None) -> Inputs:
        x = split.take(idx)
        if self.preprocess is not None:
            x = self.preprocess(x, augment, gen)
        if isinstance(x, dict):
            return {k: v.to(self.device) for k, v in x.items()}
        return x.to(self.device)

    def example_inputs(self, n: int) -> Inputs:
        """``n`` test inputs (cycling when the test split is smaller), for cost measurement."""
        test = self.splits["test"]
        return self._inputs(test, torch.arange(n) % len(test), False, None)

    def iterate(
        self, split: Split, batch_size: int, shuffle_seed: int | None = None, augment: bool = False,
        order: Tensor | None = None,
    ) -> Iterator[tuple[Inputs, Tensor]]:
        """Batches of a split, in ``order`` (default: the split's); shuffled and augmented when
        ``shuffle_seed`` is given."""
        gen = None
        order = torch.arange(len(split)) if order is None else order
        if shuffle_seed is not None:
            gen = torch.Generator().manual_seed(shuffle_seed)
            order = torch.randperm(len(split), generator=gen)
        for i in range(0, len(split), batch_size):
            locks.wait_for_measurement(measuring_lock())
            idx = order[i : i + batch_size]
            yield self._inputs(split, idx, augment, gen), split.y[idx].to(self.device)

    @torch.no_grad()
    def predict(self, forward: Callable[[Inputs], Tensor], split: Split) -> Tensor:
        """``forward``'s member logits ``(M, N, C)`` on a split, in the split's order. Text is
        run shortest first, so that each batch is trimmed to lengths like its own (padding is
        masked out, so the logits are those of any order, up to rounding)."""
        order = torch.arange(len(split))
        if isinstance(split.x, dict):
            order = torch.argsort(split.x["attention_mask"].sum(1), stable=True)
        chunks = [forward(x).float().cpu() for x, _ in self.iterate(split, self.eval_batch_size, order=order)]
        return torch.cat(chunks, dim=1)[:, torch.argsort(order)]

    def batches(self, split: str, seed: int, limit: int | None = None) -> Iterator[tuple[Inputs, Tensor]]:
        for i, batch in enumerate(self.iterate(self.splits[split], self.recipe.batch_size, seed)):
            if limit is not None and i >= limit:
                return
            yield batch

    def eval_sets(self) -> dict[str, Split]:
        """Every evaluated set: 'test', 'ood/<name>', 'shift/<corruption>/<severity>'."""
        sets = {"test": self.splits["test"]}
        sets.update({f"ood/{k}": v for k, v in self.ood.items()})
        sets.update({f"shift/{k}": v for k, v in self.shift.items()})
        return sets

    # -- models ---------------------------------------------------------------------
    def backbone(self, seed: int, **overrides: Any) -> StreamTransformer:
        torch.manual_seed(seed)
        model = self.backbone_fn(seed)
        if overrides:
            cfg = {**model.config, **overrides}
            fresh = StreamTransformer(cfg)
            fresh.load_state_dict(model.state_dict())
            model = fresh
        return model.to(self.device)

    def start_job(self, seed: int, method: str, params: dict[str, Any]) -> None:
        """Begin a job: the method's registry name and training hyper-parameters enter the keys
        of the checkpoints it trains, and ``checkpoints`` lists every one the job uses."""
        self.seed = seed
        self.job = (method, params)
        self.checkpoints = []

    @functools.cached_property
    def data_fingerprint(self) -> str:
        """A hash of every split a method may learn from ('train', 'val', 'ood_val'), so that
        changed data (a user's files, a loader) never meets a stale checkpoint."""
        h = hashlib.sha256()
        for name in sorted(set(self.splits) & {"train", "val", "ood_val"}):
            split = self.splits[name]
            xs = split.x if isinstance(split.x, dict) else {"x": split.x}
            for k in sorted(xs):
                h.update(f"{name}/{k}{tuple(xs[k].shape)}".encode())
                h.update(xs[k].contiguous().numpy().tobytes())
            h.update(split.y.numpy().tobytes())
        return h.hexdigest()[:16]

    def checkpoint_key(self, model: nn.Module, method: str, params: dict[str, Any], member: int, seed: int,
                       epochs: float, lr_scale: float) -> str:
        """The one derivation of a trained model's cache key: the task's training config and
        data, the method's registry name and training hyper-parameters, the member index and
        the seed (plus the architecture, budget and learning-rate scale of this training)."""
        configs = [m.config for m in model.modules() if isinstance(m, StreamTransformer)]
        return config_hash({"training": self.training_config, "data": self.data_fingerprint, "method": method,
                            "params": params, "member": member, "seed": seed, "epochs": epochs,
                            "lr_scale": lr_scale, "architecture": configs})

    def train(self, model: nn.Module, seed: int, epochs: float | None = None, lr_scale: float = 1.0,
              member: int = 0) -> nn.Module:
        if self.job is None:  # outside a job (a test calling fit): nothing names the model
            return self._train_cached(model, seed, epochs, lr_scale, None)
        method, params = self.job
        return self._train_cached(model, seed, epochs, lr_scale, (method, params, member))

    def single_model(self, seed: int) -> StreamTransformer:
        model = self.backbone(seed)
        if not self.trainable:
            return model.eval()
        return self._train_cached(model, seed, None, 1.0, (BASE_MODEL, {}, 0))

    def _train_cached(self, model: nn.Module, seed: int, epochs: float | None, lr_scale: float,
                      owner: tuple[str, dict, int] | None) -> nn.Module:
        """Train ``model``, or load it from the checkpoint cache when ``owner`` (method, params,
        member) names it; under torchrun rank 0 alone reads and writes, and shares the weights."""
        if not self.trainable:
            raise RuntimeError(f"task {self.name!r} is zero-shot: it allows no training")
        epochs = self.recipe.epochs if epochs is None else epochs
        if owner is None:
            return self._fit(model, seed, epochs, lr_scale, "")
        method, params, member = owner
        key = self.checkpoint_key(model, method, params, member, seed, epochs, lr_scale)
        path = cache_root() / "checkpoints" / self.training_config["task"] / f"{key}.safetensors"
        record = {"method": method, "member": member, "seed": seed, "key": key}
        # Another runner training the same model: wait for it, then load its checkpoint.
        with locks.file_lock(path.with_suffix(".lock"), wait=True) if dist.is_main() else contextlib.nullcontext():
            digest = self._load(model, path) if dist.agree(path.exists()) else None
            if dist.agree(digest is not None):
                dist.broadcast_state(model)
                self.checkpoints.append({**record, "sha256": digest, "cached": True})
                return model.eval()
            self._fit(model, seed, epochs, lr_scale, f"{method} member {member} seed {seed}")
            if dist.is_main():
                blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
                results.write_atomic(path, blob)
                self.checkpoints.append({**record, "sha256": hashlib.sha256(blob).hexdigest(), "cached": False})
        return model

    def _load(self, model: nn.Module, path: Path) -> str | None:
        """Load a checkpoint on rank 0 and return its sha256; None (a cache miss) when damaged."""
        if not dist.is_main():
            return ""
        try:
            blob = path.read_bytes()
            model.load_state_dict(load(blob))
            return hashlib.sha256(blob).hexdigest()
        except Exception as e:  # a damaged checkpoint is a cache miss: train again
            warnings.warn(f"ignoring damaged checkpoint {path} ({type(e).__name__}: {e})", stacklevel=3)
            return None

    def _fit(self, model: nn.Module, seed: int, epochs: float, lr_scale: float, what: str) -> nn.Module:
        split = self.splits["train"]
        steps = -(-len(split) // self.recipe.batch_size)
        torch.manual_seed(seed)

        def batches(epoch: int) -> Iterator[tuple[Inputs, Tensor]]:
            return self.iterate(split, self.recipe.batch_size, derive_seed(seed, "epoch", epoch), augment=True)

        return training.fit(model, batches, steps, self.recipe, epochs, lr_scale, desc=f"{self.name} {what}".rstrip())


def head_reinit_copies(base: StreamTransformer) -> Callable[[int], StreamTransformer]:
    """A backbone factory over a pretrained model converted once: each call returns a deep
    copy whose linear head is drawn anew under ``seed`` (normal, std 0.02; zero bias)."""

    def backbone(seed: int) -> StreamTransformer:
        model = copy.deepcopy(base)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            model.head.weight.normal_(0.0, 0.02, generator=gen)
            model.head.bias.zero_()
        return model

    return backbone


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held) with ``fraction`` of each class held out, deterministic in seed."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        held.extend(idx[: max(1, round(fraction * len(idx)))])
    held = np.sort(np.array(held, dtype=np.int64))
    rest = np.setdiff1d(np.arange(len(labels)), held)
    return rest, held


def subsample(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Up to ``per_class`` indices of each class (all when None), deterministic in seed."""
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        out.extend(rng.permutation(idx)[:per_class])
    return np.sort(np.array(out, dtype=np.int64))
