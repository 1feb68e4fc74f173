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
