"""Small builders shared by tests.

``tiny_text_task()``: a text-classification ``SupervisedTask`` over a tiny random-weight BERT,
converted with ``methods.adapters.from_hf_bert``. Its backbone stands in for a pretrained one:
the BERT body is drawn once (fixed seed), so every ``backbone(seed)`` shares the body weights
and only the freshly initialised linear head depends on the seed, as for a real checkpoint.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

from uqbench.bench.tasks.base import Split, SupervisedTask
from uqbench.bench.train import Recipe
from uqbench.methods.adapters import from_hf_bert
from uqbench.methods.transformer import StreamTransformer


def _token_split(
    n: int, num_classes: int, vocab: int, length: int, gen: torch.Generator, ood: bool = False
) -> Split:
    """Padded token-id sequences whose class is marked by a class token; OOD ones carry none."""
    lengths = torch.randint(length // 2, length + 1, (n,), generator=gen)
    ids = torch.randint(num_classes + 3, vocab, (n, length), generator=gen)  # filler tokens
    y = torch.randint(0, num_classes, (n,), generator=gen)
    if not ood:
        pos = (torch.rand(n, generator=gen) * (lengths - 1).float()).long() + 1
        ids[torch.arange(n), pos] = 2 + y  # class token
    ids[:, 0] = 1  # [CLS]
    mask = torch.arange(length)[None, :] < lengths[:, None]
    ids = ids.masked_fill(~mask, 0)  # [PAD]
    return Split({"input_ids": ids, "attention_mask": mask.long()}, torch.full_like(y, -1) if ood else y)


def tiny_bert(seed: int = 1234, hidden: int = 32, layers: int = 2, heads: int = 4, vocab: int = 64,
              max_positions: int = 32) -> BertModel:
    """A small random-weight Hugging Face ``BertModel`` (eval mode, no pooler)."""
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=max_positions)
    return BertModel(cfg, add_pooling_layer=False).eval()


def tiny_text_task(
    num_classes: int = 3,
    epochs: float = 1,
    batch_size: int = 32,
    n_train: int = 96,
    n_eval: int = 32,
    length: int = 12,
    seed: int = 0,
) -> SupervisedTask:
    """A trainable text task with a (stand-in) pretrained BERT backbone; trains in a second."""
    bert = tiny_bert()
    vocab = bert.config.vocab_size
    gen = torch.Generator().manual_seed(99)
    splits = {
        "train": _token_split(n_train, num_classes, vocab, length, gen),
        "val": _token_split(n_eval, num_classes, vocab, length, gen),
        "test": _token_split(n_eval, num_classes, vocab, length, gen),
        "ood_val": _token_split(n_eval, num_classes, vocab, length, gen, ood=True),
    }

    def backbone(seed: int) -> StreamTransformer:  # the task seeds torch before calling this
        return from_hf_bert(bert, num_classes)

    params = dict(num_classes=num_classes, epochs=epochs, batch_size=batch_size, n_train=n_train,
                  n_eval=n_eval, length=length)
    return SupervisedTask(
        name="tiny_text",
        num_classes=num_classes,
        splits=splits,
        ood={"no_class_token": _token_split(n_eval, num_classes, vocab, length, gen, ood=True)},
        backbone_fn=backbone,
        recipe=Recipe(epochs=epochs, batch_size=batch_size, lr=1e-3, weight_decay=0.01),
        config={"task": "tiny_text", **params},
        training_config={"task": "tiny_text", **params},
        preprocess=None,
        seed=seed,
        pretrained=True,
    )
