"""``imagenet-zeroshot-clip``: an open_clip image tower with a zero-shot head; no training.

The zero-shot classifier is built from open_clip's own ImageNet class names and prompt
templates (``OPENAI_IMAGENET_TEMPLATES`` or ``SIMPLE_IMAGENET_TEMPLATES``): each class's
text embeddings are averaged over the templates and normalised, and the image tower plus
that head become a ``StreamTransformer`` (``from_open_clip_visual``). Images are
``<wnid>/*.JPEG`` folders, sorted wnids giving the class index (a subset of the 1,000 wnids
works too), at ``image_size`` with CLIP's normalisation and no augmentation. A random
``val_fraction`` of the images is the 'val' split, disjoint from 'test'.

Weights are never fetched when ``UQBENCH_OFFLINE=1``: only the local open_clip / Hugging
Face caches are looked at; weights that cannot be had raise ``MissingData``.
``model="tiny-random"`` (or ``pretrained=None``) builds a randomly initialised CLIP so the
whole path runs without weights; its results are flagged in the notes as meaningless.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from .. import results
from ..data import DataError, MissingData, load_image_folder, load_textures
from ..data.root import offline
from . import register_task
from .base import Preprocess, SupervisedTask, cache_root, config_hash
from .common import OODSource, assemble, gather_ood, image_split, ood_split
from .config import TaskConfig, evaluation, positive, require
from ..train import Recipe
from ...methods.adapters import from_open_clip_visual

TINY = "tiny-random"
DEFAULT_FOLDERS = ("imagenet", "imagenet-sample")


# --- model --------------------------------------------------------------------------------


def _tiny_clip(image_size: int) -> tuple[Any, Any]:
    """A small randomly initialised open_clip CLIP (seed 0) and its BPE tokenizer."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    if image_size % 8:
        raise ValueError(f"model={TINY!r} needs an image_size divisible by its patch size 8, got {image_size}")
    ctx = 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIP(
            embed_dim=32,
            vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=image_size),
            text_cfg=CLIPTextCfg(context_length=ctx, vocab_size=49408, width=64, heads=2, layers=2),
        )
    return model.eval(), open_clip.SimpleTokenizer(context_length=ctx)


def _download_host(cfg: dict[str, Any]) -> str | None:
    """The host a pretrained tag's weights would be downloaded from."""
    from urllib.parse import urlparse

    if cfg.get("hf_hub"):
        return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    return urlparse(cfg["url"]).hostname if cfg.get("url") else None


def _resolves(host: str) -> bool:
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _cached_checkpoint(cfg: dict[str, Any]) -> str | None:
    """The local file of a pretrained tag's weights, looked up without any network access."""
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache
        from open_clip.pretrained import _get_safe_alternatives

        model_id, filename = os.path.split(cfg["hf_hub"])
        filename = filename or "open_clip_pytorch_model.bin"
        for name in [*_get_safe_alternatives(filename), filename]:
            found = try_to_load_from_cache(model_id, name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    if cfg.get("url"):
        file = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if file.is_file():
            return str(file)
    return None


def _pretrained_clip(model_name: str, pretrained: str, image_size: int | None) -> tuple[Any, Any, dict]:
    """A pretrained open_clip model, its tokenizer and its tag's config, or MissingData."""
    import open_clip
    from open_clip.pretrained import download_pretrained

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r} (or {TINY!r}); "
                         f"valid: {', '.join(open_clip.list_models()[:20])}, ...")
    what = f"no weights for {model_name}/{pretrained}"
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg and not os.path.isfile(pretrained):
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ValueError(f"{what}: unknown pretrained tag (valid for {model_name}: {', '.join(tags) or 'none'}; "
                         f"or a checkpoint file path)")
    if not cfg:
        checkpoint = pretrained
    elif offline():
        checkpoint = _cached_checkpoint(cfg)
        if checkpoint is None:
            raise MissingData(f"{what}: not in the local cache and UQBENCH_OFFLINE=1 forbids downloading")
    else:
        checkpoint = _cached_checkpoint(cfg)
        host = _download_host(cfg)
        if checkpoint is None and host and not _resolves(host):  # fail now, not after the hub's retries
            raise MissingData(f"{what}: not in the local cache, and {host} cannot be reached to download it")
        try:
            checkpoint = checkpoint or download_pretrained(cfg)
        except Exception as e:  # any network or hub failure: the weights cannot be had
            raise MissingData(f"{what}: download failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        if not checkpoint:
            raise MissingData(f"{what}: the tag names no downloadable file")
    try:
        model = open_clip.create_model(model_name, pretrained=checkpoint,
                                       force_quick_gelu=bool(cfg.get("quick_gelu", False)),
                                       force_image_size=image_size)
    except Exception as e:
        raise MissingData(f"{what}: cannot load {checkpoint}: {type(e).__name__}: {str(e)[:200]}") from e
    return model.eval(), open_clip.get_tokenizer(model_name), cfg


def _random_clip(model_name: str, image_size: int | None) -> tuple[Any, Any]:
    import open_clip

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r} (or {TINY!r})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(model_name, pretrained=None, force_image_size=image_size)
    return model.eval(), open_clip.get_tokenizer(model_name)


# --- data ---------------------------------------------------------------------------------


def imagenet_classnames(wnids: list[str], where: Path) -> list[str]:
    """open_clip's ImageNet class names of the given wnids (from the standard 1,000-class order)."""
    import open_clip
    from timm.data import ImageNetInfo

    index = {w: i for i, w in enumerate(ImageNetInfo().label_names())}
    unknown = [w for w in wnids if w not in index]
    if unknown:
        raise DataError(f"{where}: folder {unknown[0]!r} is not an ImageNet-1k wnid (expected <wnid>/*.JPEG)")
    return [open_clip.IMAGENET_CLASSNAMES[index[w]] for w in wnids]


def _find_folder(root: Path, folder: str | None, notes: list[str]) -> Path:
    candidates = [folder] if folder else list(DEFAULT_FOLDERS)
    for name in candidates:
        if (root / name).is_dir():
            if name == "imagenet-sample" and not folder:
                notes.append(f"{root / 'imagenet'} absent: evaluated on {root / name} (a few images per class: "
                             f"a smoke set, not an accuracy benchmark)")
            return root / name
    looked = " and ".join(f"{root / c}/<wnid>/*.JPEG" for c in candidates)
    raise MissingData(f"ImageNet not found: looked for {looked}; it cannot be downloaded automatically")


def _classifier(model: Any, tokenizer: Any, classnames: list[str], templates: str, key: list | None) -> torch.Tensor:
    """(C, E) normalised class text embeddings, averaged over the templates (cached on disk
    under ``key`` when given)."""
    import open_clip

    path = None
    if key is not None:
        path = cache_root() / "clip" / f"zeroshot-{config_hash(key)}.safetensors"
        if path.is_file():
            try:
                return load_file(str(path))["class_embeddings"]
            except Exception:  # unreadable cache: compute again
                pass
    chosen = open_clip.OPENAI_IMAGENET_TEMPLATES if templates == "openai" else open_clip.SIMPLE_IMAGENET_TEMPLATES
    weights = open_clip.build_zero_shot_classifier(model, tokenizer, classnames, chosen,
                                                   num_classes_per_batch=10, device="cpu")
    emb = weights.T.contiguous().float()
    if path is not None:
        try:
            results.write_atomic(path, save({"class_embeddings": emb}))
        except OSError:
            pass
    return emb


@dataclass(frozen=True)
class ZeroShotCLIPConfig(TaskConfig):
    """``model="tiny-random"`` (or ``pretrained=None``) is a randomly initialised CLIP."""

    model: str = "ViT-B-32"
    pretrained: str | None = "laion2b_s34b_b79k"
    folder: str | None = None
    image_size: int | None = None
    val_fraction: float = 0.1
    templates: str = "openai"
    max_per_class: int | None = None
    ood_max: int | None = evaluation(2000)

    def validate(self) -> None:
        require(self.templates in ("openai", "simple"), f"templates must be 'openai' or 'simple', got {self.templates!r}")
        require(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        positive(self, "image_size", "max_per_class", "ood_max", optional=True)


def _load_clip(cfg: ZeroShotCLIPConfig, notes: list[str]) -> tuple[Any, Any, dict]:
    """The open_clip model, its tokenizer and its pretrained tag's config."""
    if cfg.model == TINY:
        notes.append(f"model {TINY!r}: randomly initialised CLIP weights; results are meaningless "
                     f"(a pipeline check only)")
        return (*_tiny_clip(cfg.image_size or 32), {})
    if not cfg.pretrained:
        notes.append(f"model {cfg.model} without pretrained weights (pretrained=None): randomly initialised; "
                     f"results are meaningless (a pipeline check only)")
        return (*_random_clip(cfg.model, cfg.image_size), {})
    return _pretrained_clip(cfg.model, cfg.pretrained, cfg.image_size)


@register_task("imagenet-zeroshot-clip", ZeroShotCLIPConfig)
def imagenet_zeroshot_clip(cfg: ZeroShotCLIPConfig, root: Path) -> SupervisedTask:
    import open_clip

    notes: list[str] = []
    clip, tokenizer, pcfg = _load_clip(cfg, notes)  # weights first: without them, decode no images
    size = int(clip.visual.image_size[0] if isinstance(clip.visual.image_size, (tuple, list))
               else clip.visual.image_size)
    path = _find_folder(root, cfg.folder, notes)
    data = load_image_folder(path, size, max_per_class=cfg.max_per_class)
    classnames = imagenet_classnames(data.classes, path)
    n = len(data)
    n_val = min(n - 1, max(1, round(cfg.val_fraction * n))) if cfg.val_fraction > 0 and n > 1 else 0
    order = np.random.default_rng(0).permutation(n)
    splits = {"test": image_split(data.images, data.labels, np.sort(order[n_val:]))}
    if n_val:
        splits["val"] = image_split(data.images, data.labels, np.sort(order[:n_val]))
    ood, _ = gather_ood([OODSource("textures", lambda: load_textures(root, size), title="Textures")],
                        lambda found, seed: ood_split(found.images, cfg.ood_max, seed), notes)
    key = None if cfg.model == TINY or not cfg.pretrained else [cfg.model, cfg.pretrained, cfg.templates, classnames]
    with torch.no_grad():
        net = from_open_clip_visual(clip.visual, _classifier(clip, tokenizer, classnames, cfg.templates, key),
                                    clip.logit_scale.detach())
    net.eval()
    return assemble(
        "imagenet-zeroshot-clip", cfg, extra={"folder_used": path.name, "resolved_image_size": size,
                                              "num_classes": len(classnames), "ood_sets": sorted(ood)},
        num_classes=len(classnames), splits=splits, ood=ood, near_ood=(), notes=notes,
        backbone_fn=lambda seed: copy.deepcopy(net),  # no random parts: the same model for every seed
        recipe=Recipe(epochs=0.0, batch_size=64), trainable=False, pretrained=cfg.model != TINY and bool(cfg.pretrained),
        preprocess=Preprocess(mean=tuple(pcfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                              std=tuple(pcfg.get("std", open_clip.OPENAI_DATASET_STD)), crop_pad=0, flip=False),
        eval_batch_size=128,
    )
