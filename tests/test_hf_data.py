"""Hugging Face datasets as split sources, on datasets the tests build and save to disk."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from uqbench.bench.data import DataError, MissingData
from uqbench.bench.data import hf

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A DatasetDict (texts with a ClassLabel, images with string labels) and a lone Dataset."""
    root = tmp_path_factory.mktemp("hf")
    rng = np.random.default_rng(0)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    text = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["bad", "good", "awful", "great"], "label": [0, 1, 0, 1]},
                                            features=features),
        "test": datasets.Dataset.from_dict({"text": ["fine", "poor"], "label": [1, 0]}, features=features),
    })
    text.save_to_disk(str(root / "reviews"))
    pictures = [Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)) for _ in range(3)]
    datasets.Dataset.from_dict({"img": pictures, "kind": ["b", "a", "b"]},
                               features=datasets.Features({"img": datasets.Image(), "kind": datasets.Value("string")})
                               ).save_to_disk(str(root / "pictures"))
    return root, pictures


def test_text_split_from_a_saved_dataset_dict(saved):
    root, _ = saved
    src = hf.parse_source({"dataset": "reviews", "split": "train"}, "train")
    s = hf.text_set(hf.load_source(src, root), "text", "label", src)
    assert s.texts == ["bad", "good", "awful", "great"] and s.classes == ["neg", "pos"]
    np.testing.assert_array_equal(s.labels, [0, 1, 0, 1])
    absolute = hf.HFSource(str(root / "reviews"), "test")
    assert hf.texts(hf.load_source(absolute, root), "text", absolute) == ["fine", "poor"]


def test_image_set_from_a_saved_dataset(saved):
    root, pictures = saved
    src = hf.HFSource("pictures")
    s = hf.image_set(hf.load_source(src, root), "img", "kind", 8, src)
    assert s.images.shape == (3, 8, 8, 3) and s.images.dtype == np.uint8
    assert s.classes == ["a", "b"] and s.labels.tolist() == [1, 0, 1]
    # the same crop and resize as the image-folder loader
    from uqbench.bench.data.images import to_rgb_array
    np.testing.assert_array_equal(s.images[0], to_rgb_array(pictures[0], 8))


def test_bad_sources_fail_with_one_line(saved, monkeypatch):
    root, _ = saved
    with pytest.raises(ValueError, match="a table with 'dataset'"):
        hf.parse_source({"dataset": "reviews", "splt": "train"}, "train")
    with pytest.raises(ValueError, match="non-empty strings"):
        hf.parse_source({"dataset": "reviews", "split": 1}, "train")
    with pytest.raises(DataError, match=r"no split 'dev' \(splits: train, test\)"):
        hf.load_source(hf.HFSource("reviews", "dev"), root)
    with pytest.raises(DataError, match="give no 'split'"):
        hf.load_source(hf.HFSource("pictures", "train"), root)
    with pytest.raises(DataError, match="no column 'body'; columns present: 'text', 'label'"):
        src = hf.HFSource("reviews", "train")
        hf.texts(hf.load_source(src, root), "body", src)
    with pytest.raises(DataError, match=r"label 'neg' in column 'label' is not one of the classes \['meh'\]"):
        src = hf.HFSource("reviews", "test")
        hf.text_set(hf.load_source(src, root), "text", "label", src, classes=["meh"])
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="not a folder written by save_to_disk"):
        hf.load_source(hf.HFSource("empty"), root)
    with pytest.raises(ValueError, match="pinned 'revision'"):
        hf.load_source(hf.HFSource("someone/reviews", "train"), root)
    monkeypatch.setenv("UQBENCH_OFFLINE", "1")
    with pytest.raises(MissingData, match="UQBENCH_OFFLINE"):
        hf.load_source(hf.HFSource("someone/reviews", "train", "0123abc"), root)


# --- the custom kinds with Hugging Face sources ---------------------------------------------------


def test_textcsv_reads_a_saved_dataset(saved, monkeypatch):
    from uqbench.bench.tasks import create_task

    root, _ = saved
    monkeypatch.setenv("UQBENCH_DATA", str(root))
    task = create_task("textcsv", train={"dataset": "reviews", "split": "train"},
                       test={"dataset": "reviews", "split": "test"},
                       ood={"pics": {"dataset": "reviews", "split": "test"}}, val_fraction=0.5)
    assert task.num_classes == 2 and {k: len(v) for k, v in task.splits.items()} == {"train": 2, "val": 2, "test": 2}
    assert task.splits["test"].y.tolist() == [1, 0]  # ClassLabel order: neg, pos
    assert len(task.ood["pics"]) == 2 and task.config["train"] == {"dataset": "reviews", "split": "train"}
    with pytest.raises(ValueError, match="pinned 'revision'"):
        create_task("textcsv", train={"dataset": "someone/reviews", "split": "train"}, test="x.csv")
    from uqbench.bench import suite

    toml = ('[[tasks]]\nname = "reviews"\nkind = "textcsv"\n[tasks.params]\n'
            'train = { dataset = "reviews", split = "train" }\ntest = { dataset = "%s", split = "test" }\n'
            '[methods.single]\n')
    (root / "ok.toml").write_text(toml % "reviews")
    assert suite.load(str(root / "ok.toml")).tasks[0].params["train"] == {"dataset": "reviews", "split": "train"}
    (root / "bad.toml").write_text(toml % "someone/reviews")
    with pytest.raises(ValueError, match="pinned 'revision'"):  # when the suite loads, before any run
        suite.load(str(root / "bad.toml"))
    with pytest.raises(ValueError, match="a table with 'dataset'"):
        create_task("textcsv", train={"name": "reviews"}, test="x.csv")


def test_imagefolder_reads_a_saved_dataset_and_aligns_classes(saved, tmp_path, monkeypatch):
    from uqbench.bench.tasks import create_task

    root, _ = saved
    rng = np.random.default_rng(1)
    # test lists the classes in the other order: labels are mapped to train's classes by name
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["dog", "cat"])})
    pics = lambda n: [Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)) for _ in range(n)]  # noqa: E731
    datasets.Dataset.from_dict({"image": pics(6), "label": [0, 1, 0, 1, 0, 1]},
                               features=datasets.Features({"image": datasets.Image(),
                                                           "label": datasets.ClassLabel(names=["cat", "dog"])})
                               ).save_to_disk(str(tmp_path / "train"))
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"image": pics(2), "label": [0, 1]}, features=features)}
                         ).save_to_disk(str(tmp_path / "test"))
    datasets.Dataset.from_dict({"image": pics(3)}, features=datasets.Features({"image": datasets.Image()})
                               ).save_to_disk(str(tmp_path / "noise"))
    monkeypatch.setenv("UQBENCH_DATA", str(root))
    task = create_task("imagefolder", train={"dataset": str(tmp_path / "train")},
                       test={"dataset": str(tmp_path / "test"), "split": "test"},
                       ood={"noise": {"dataset": str(tmp_path / "noise")}}, val_fraction=0.34,
                       image_size=16, patch=4, dim=24, heads=3, depth=1)
    assert task.num_classes == 2 and task.splits["test"].y.tolist() == [1, 0]  # dog, cat in train's order
    assert task.splits["train"].x.shape[1:] == (16, 16, 3)
    assert len(task.ood["noise"]) == 3
    with pytest.raises(DataError, match="no column 'image'"):  # the OOD set stores its images in 'img'
        create_task("imagefolder", train={"dataset": str(tmp_path / "train")},
                    test={"dataset": str(tmp_path / "test"), "split": "test"},
                    ood={"noise": {"dataset": "pictures"}}, image_size=16, patch=4, dim=24, heads=3, depth=1)
