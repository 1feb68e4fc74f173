"""Tests of bench.data on tiny files written, in each real format, under tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uqbench.bench.data import images as images_module
from uqbench.bench.data import (
    DataError,
    FetchFailed,
    MissingData,
    data_root,
    extract,
    fetch,
    load_ag_news,
    load_cifar,
    load_clinc150,
    load_custrev,
    load_image_folder,
    load_imagenet,
    load_sst2,
    load_svhn,
    load_text_csv,
    load_textures,
    load_trec,
    verify_manifest,
)
from uqbench.bench.data.root import dataset_checksum

REAL_ROOT = os.environ.get("UQBENCH_DATA")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("UQBENCH_OFFLINE", "1")
    monkeypatch.setenv("UQBENCH_CACHE", str(tmp_path / "cache"))


def write_image(path: Path, color: tuple[int, int, int], size=(8, 8), fmt="JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt, quality=95)


def make_folder(root: Path, classes: dict[str, int], size=(8, 8)) -> Path:
    """Writes ``root/<class>/<i>.jpg``; class k's images are a flat colour."""
    for k, (name, n) in enumerate(classes.items()):
        for i in range(n):
            write_image(root / name / f"{i:03d}.jpg", (40 * k, 100, 200 - 40 * k), size)
    return root


# --- root ---------------------------------------------------------------------------------


def test_data_root_from_env_or_default(monkeypatch, tmp_path):
    monkeypatch.setenv("UQBENCH_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("UQBENCH_DATA")
    assert data_root() == Path("data")


def test_fetch_file_url_with_checksums(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"hello data")
    dest = tmp_path / "out" / "copy.bin"
    got = fetch(source.as_uri(), dest, md5=hashlib.md5(b"hello data").hexdigest(),
                sha256=hashlib.sha256(b"hello data").hexdigest())
    assert got == dest and dest.read_bytes() == b"hello data"
    assert [p.name for p in dest.parent.iterdir()] == ["copy.bin"]  # no temp file left


def test_fetch_checksum_mismatch_raises_and_leaves_nothing(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"hello data")
    dest = tmp_path / "out" / "copy.bin"
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch(source.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_fetch_offline_and_failures_are_missing_data(tmp_path):
    with pytest.raises(MissingData, match="offline"):
        fetch("https://example.invalid/x.bin", tmp_path / "x.bin")
    with pytest.raises(FetchFailed):
        fetch((tmp_path / "absent.bin").as_uri(), tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_fetch_keeps_a_good_existing_copy(tmp_path):
    dest = tmp_path / "x.bin"
    dest.write_bytes(b"abc")
    # Offline and the URL is unreachable: only the local copy can satisfy this.
    assert fetch("https://example.invalid/x.bin", dest,
                 md5=hashlib.md5(b"abc").hexdigest()) == dest


def test_extract_tar_and_zip(tmp_path):
    payload = tmp_path / "payload"
    (payload / "inner").mkdir(parents=True)
    (payload / "inner" / "a.txt").write_text("a")
    with tarfile.open(tmp_path / "p.tar.gz", "w:gz") as t:
        t.add(payload / "inner", arcname="inner")
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as z:
        z.write(payload / "inner" / "a.txt", "inner/a.txt")
    assert (extract(tmp_path / "p.tar.gz", tmp_path / "t") / "inner" / "a.txt").read_text() == "a"
    assert (extract(tmp_path / "p.zip", tmp_path / "z") / "inner" / "a.txt").read_text() == "a"

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../escape.txt", "x")
    with pytest.raises(DataError, match="unsafe"):
        extract(tmp_path / "evil.zip", tmp_path / "e")
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="bad.tar.gz"):
        extract(tmp_path / "bad.tar.gz", tmp_path / "b")


def _write_text_tree(root: Path) -> None:
    (root / "alpha" / "sub").mkdir(parents=True)
    (root / "alpha" / "b.txt").write_text("bee\n")
    (root / "alpha" / "sub" / "a.txt").write_text("ay\n")
    (root / "alpha" / "A.txt").write_text("upper\n")
    (root / "beta").mkdir()
    (root / "beta" / "one.txt").write_text("1\n")


def test_dataset_checksum_matches_the_manifest_recipe(tmp_path):
    _write_text_tree(tmp_path)
    # Built by hand: sha256sum lines of the bytewise-sorted ./alpha/... paths.
    lines = ""
    for rel in sorted(["./alpha/A.txt", "./alpha/b.txt", "./alpha/sub/a.txt"]):
        lines += f"{hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest()}  {rel}\n"
    expected = hashlib.sha256(lines.encode()).hexdigest()
    assert dataset_checksum(tmp_path, "alpha") == (3, expected)


@pytest.mark.skipif(not all(map(shutil.which, ["find", "sort", "xargs", "sha256sum", "bash"])),
                    reason="needs GNU find, sort, xargs and sha256sum")
def test_dataset_checksum_matches_the_shell_command(tmp_path):
    _write_text_tree(tmp_path)
    out = subprocess.run(
        ["bash", "-c", "find ./alpha -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"],
        cwd=tmp_path, capture_output=True, check=True, env={**os.environ, "LC_ALL": "C"},
    ).stdout.split()[0].decode()
    assert dataset_checksum(tmp_path, "alpha")[1] == out


def test_verify_manifest_reports_each_state(tmp_path):
    root = tmp_path / "root"
    _write_text_tree(root)
    (root / "gamma").mkdir()
    (root / "gamma" / "g.txt").write_text("g\n")
    rows = {name: dataset_checksum(root, name) for name in ("alpha", "beta", "gamma")}
    manifest = tmp_path / "MANIFEST"
    manifest.write_text(
        "# dataset  files  sha256 of: find ./DATASET -type f -print0 | sort -z | xargs -0 sha256sum\n"
        + "".join(f"{n}  {c}  {s}\n" for n, (c, s) in rows.items())
        + f"delta  2  {'0' * 64}\n"
    )
    (root / "alpha" / "sub" / "a.txt").unlink()      # alpha: one file gone
    (root / "beta" / "one.txt").write_text("2\n")    # beta: same count, other bytes
    assert verify_manifest(root, manifest) == {
        "alpha": "incomplete (2 of 3 files)",
        "beta": "damaged (checksum mismatch)",
        "gamma": "ok",
        "delta": "missing",
    }


def test_verify_manifest_rejects_a_malformed_row(tmp_path):
    manifest = tmp_path / "MANIFEST"
    manifest.write_text("# header\nalpha three abc\n")
    with pytest.raises(DataError, match="MANIFEST:2"):
        verify_manifest(tmp_path, manifest)


# --- image folders ------------------------------------------------------------------------


def test_load_image_folder_sorted_classes_and_files(tmp_path):
    folder = make_folder(tmp_path / "imgs", {"zebra": 2, "ant": 3})
    write_image(folder / "ant" / "extra.png", (1, 2, 3), fmt="PNG")
    (folder / "ant" / "notes.txt").write_text("not an image")
    s = load_image_folder(folder, None)
    assert s.classes == ["ant", "zebra"]
    assert s.images.shape == (6, 8, 8, 3) and s.images.dtype == np.uint8
    assert s.labels.dtype == np.int64 and s.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert tuple(s.images[3, 0, 0]) == (1, 2, 3)  # extra.png sorts after 002.jpg
    assert len(s) == 6


def test_load_image_folder_resize_classes_and_limit(tmp_path):
    folder = make_folder(tmp_path / "imgs", {"a": 3, "b": 3, "c": 1}, size=(40, 20))
    s = load_image_folder(folder, 16, classes=["b", "a"], max_per_class=2)
    assert s.images.shape == (4, 16, 16, 3)
    assert s.classes == ["b", "a"] and s.labels.tolist() == [0, 0, 1, 1]


def test_load_image_folder_crops_to_the_centre(tmp_path):
    image = np.zeros((10, 30, 3), dtype=np.uint8)
    image[:, 10:20] = 255  # the centre square is white, the sides black
    (tmp_path / "imgs" / "x").mkdir(parents=True)
    Image.fromarray(image).save(tmp_path / "imgs" / "x" / "0.png")
    s = load_image_folder(tmp_path / "imgs", 5)
    assert s.images.min() == 255


def test_load_image_folder_uneven_sizes_need_size(tmp_path):
    folder = make_folder(tmp_path / "imgs", {"a": 1})
    write_image(folder / "a" / "big.jpg", (0, 0, 0), size=(9, 9))
    with pytest.raises(DataError, match="big.jpg.*pass size="):
        load_image_folder(folder, None)
    assert load_image_folder(folder, 4).images.shape == (2, 4, 4, 3)


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(MissingData, match=str(tmp_path / "nowhere")):
        load_image_folder(tmp_path / "nowhere", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_image_folder(tmp_path / "empty", 8)
    (tmp_path / "hollow" / "cls").mkdir(parents=True)
    (tmp_path / "hollow" / "cls" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no images in .*cls"):
        load_image_folder(tmp_path / "hollow", 8)
    folder = make_folder(tmp_path / "imgs", {"a": 1})
    with pytest.raises(DataError, match="class 'b' missing"):
        load_image_folder(folder, 8, classes=["a", "b"])


def test_truncated_jpeg_is_a_data_error_naming_the_file(tmp_path):
    folder = make_folder(tmp_path / "imgs", {"a": 2}, size=(32, 32))
    bad = folder / "a" / "001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match="001.jpg"):
        load_image_folder(folder, 32)


def test_image_folder_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "CACHE_MIN_FILES", 1)
    folder = make_folder(tmp_path / "imgs", {"a": 2, "b": 1})
    first = load_image_folder(folder, 8)
    cached = list((tmp_path / "cache").glob("images-*.npz"))
    assert len(cached) == 1
    second = load_image_folder(folder, 8)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    write_image(folder / "b" / "009.jpg", (9, 9, 9))  # a changed folder gets a new entry
    assert len(load_image_folder(folder, 8)) == 4
    assert len(list((tmp_path / "cache").glob("images-*.npz"))) == 2


# --- CIFAR --------------------------------------------------------------------------------


def test_load_cifar_image_folder_layout(tmp_path):
    for split in ("train", "test"):
        make_folder(tmp_path / "cifar10" / split, {"cat": 2, "airplane": 1}, size=(32, 32))
    s = load_cifar(tmp_path, "cifar10", "test")
    assert s.classes == ["airplane", "cat"] and s.images.shape == (3, 32, 32, 3)


def test_load_cifar_class_missing_from_test(tmp_path):
    make_folder(tmp_path / "cifar10" / "train", {"cat": 1, "dog": 1}, size=(32, 32))
    make_folder(tmp_path / "cifar10" / "test", {"cat": 1}, size=(32, 32))
    with pytest.raises(DataError, match="'dog' is in .*train but missing from .*test"):
        load_cifar(tmp_path, "cifar10", "test")


def _cifar_batch(n: int, seed: int, labels_key: bytes) -> tuple[dict, np.ndarray]:
    images = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(n, -1)  # the official channel-major rows
    return {b"data": rows, labels_key: list(range(n)), b"filenames": [b"x"] * n}, images


def _dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def make_cifar10_archive(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump({b"label_names": names}, folder / "batches.meta")
    truth = {"train": [], "test": []}
    for i in range(1, 6):
        batch, imgs = _cifar_batch(2, i, b"labels")
        _dump(batch, folder / f"data_batch_{i}")
        truth["train"].append(imgs)
    batch, imgs = _cifar_batch(3, 9, b"labels")
    _dump(batch, folder / "test_batch")
    truth["test"].append(imgs)
    return {k: np.concatenate(v) for k, v in truth.items()}


def test_load_cifar10_python_archive(tmp_path):
    truth = make_cifar10_archive(tmp_path / "cifar-10-batches-py")
    train = load_cifar(tmp_path, "cifar10", "train")
    np.testing.assert_array_equal(train.images, truth["train"])
    assert train.labels.tolist() == [0, 1] * 5 and train.classes[0] == "airplane"
    test = load_cifar(tmp_path, "cifar10", "test")
    np.testing.assert_array_equal(test.images, truth["test"])


def test_load_cifar100_python_archive_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _dump({b"fine_label_names": [f"c{i:02d}".encode() for i in range(100)],
           b"coarse_label_names": [b"x"] * 20}, folder / "meta")
    batch, imgs = _cifar_batch(4, 0, b"fine_labels")
    batch[b"coarse_labels"] = [0] * 4
    _dump(batch, folder / "test")
    _dump(batch, folder / "train")
    s = load_cifar(tmp_path, "cifar100", "test")
    np.testing.assert_array_equal(s.images, imgs)
    assert s.labels.tolist() == [0, 1, 2, 3] and len(s.classes) == 100


def test_load_cifar_damaged_archive(tmp_path):
    make_cifar10_archive(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar(tmp_path, "cifar10", "train")
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch"):
        load_cifar(tmp_path, "cifar10", "test")


def test_load_cifar_missing_names_every_place(tmp_path):
    with pytest.raises(MissingData) as info:
        load_cifar(tmp_path, "cifar100", "train")
    message = str(info.value)
    assert "\n" not in message and message.startswith("CIFAR-100 not found")
    assert f"{tmp_path}/cifar100/{{train,test}}" in message
    assert str(tmp_path / "cifar-100-python") in message and "offline" in message


def test_load_cifar_downloads_and_extracts_the_tarball(tmp_path, monkeypatch):
    source = tmp_path / "source"
    make_cifar10_archive(source / "cifar-10-batches-py")
    tarball = source / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as t:
        t.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    spec = dict(images_module._CIFAR["cifar10"], url=tarball.as_uri(),
                md5=hashlib.md5(tarball.read_bytes()).hexdigest())
    monkeypatch.setitem(images_module._CIFAR, "cifar10", spec)
    root = tmp_path / "root"
    assert len(load_cifar(root, "cifar10", "test")) == 3
    assert (root / "cifar-10-batches-py" / "test_batch").is_file()


def test_load_cifar_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        load_cifar(tmp_path, "cifar5", "train")
    with pytest.raises(ValueError, match="train, test"):
        load_cifar(tmp_path, "cifar10", "val")


# --- SVHN, Textures, ImageNet -------------------------------------------------------------


def test_load_svhn_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    (tmp_path / "svhn").mkdir()
    scipy_io.savemat(tmp_path / "svhn" / "test_32x32.mat",
                     {"X": x, "y": np.array([[10], [1], [9], [10]], dtype=np.uint8)})
    s = load_svhn(tmp_path)
    assert s.images.shape == (4, 32, 32, 3) and s.images.dtype == np.uint8
    np.testing.assert_array_equal(s.images[1], x[:, :, :, 1])
    assert s.labels.tolist() == [0, 1, 9, 0] and s.classes == [str(d) for d in range(10)]


def test_load_svhn_missing_and_damaged(tmp_path):
    with pytest.raises(MissingData, match=r"SVHN not found: looked for .*svhn/test_32x32\.mat"):
        load_svhn(tmp_path)
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_svhn(tmp_path)


def test_load_textures_both_layouts(tmp_path):
    make_folder(tmp_path / "a" / "dtd" / "images", {"banded": 2, "bumpy": 1}, size=(20, 30))
    s = load_textures(tmp_path / "a", 12)
    assert s.images.shape == (3, 12, 12, 3) and s.classes == ["banded", "bumpy"]
    make_folder(tmp_path / "b" / "textures", {"cracked": 1}, size=(24, 24))
    assert load_textures(tmp_path / "b", 8).classes == ["cracked"]
    with pytest.raises(MissingData, match="textures/<class>.*dtd/images/<class>.*offline"):
        load_textures(tmp_path / "c", 8)


def test_load_imagenet_wnids(tmp_path):
    for wnid in ("n01443537", "n01440764"):
        write_image(tmp_path / "imagenet-sample" / wnid / f"{wnid}_1.JPEG", (5, 5, 5), (30, 20))
    s = load_imagenet(tmp_path, 16)
    assert s.classes == ["n01440764", "n01443537"] and s.images.shape == (2, 16, 16, 3)
    with pytest.raises(MissingData, match="login"):
        load_imagenet(tmp_path, 16, folder="imagenet-val")


# --- text ---------------------------------------------------------------------------------


def write_clinc(root: Path, data) -> Path:
    file = root / "clinc150" / "data_full.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(data if isinstance(data, str) else json.dumps(data))
    return file


CLINC = {
    "train": [["play a song", "play_music"], ["what's the weather", "weather"],
              ["rain today?", "weather"]],
    "val": [["forecast please", "weather"]],
    "test": [["put on jazz", "play_music"], ["is it sunny", "weather"]],
    "oos_train": [["how old is the moon", "oos"]],
    "oos_val": [["buy a boat", "oos"]],
    "oos_test": [["who won", "oos"], ["paint my house", "oos"]],
}


def test_load_clinc150(tmp_path):
    write_clinc(tmp_path, CLINC)
    sets = load_clinc150(tmp_path)
    assert set(sets) == {"train", "val", "test", "oos_val", "oos_test"}
    assert sets["train"].classes == ["play_music", "weather"]
    assert sets["test"].texts == ["put on jazz", "is it sunny"]
    assert sets["test"].labels.tolist() == [0, 1] and sets["test"].labels.dtype == np.int64
    assert sets["oos_test"].labels.tolist() == [-1, -1]


def test_load_clinc150_errors(tmp_path):
    with pytest.raises(MissingData, match="clinc150/data_full.json.*offline"):
        load_clinc150(tmp_path)
    file = write_clinc(tmp_path, '{"train": [["a", "b"]')
    with pytest.raises(DataError, match=f"{file}: broken JSON"):
        load_clinc150(tmp_path)
    write_clinc(tmp_path, {k: v for k, v in CLINC.items() if k != "oos_test"})
    with pytest.raises(DataError, match="missing key.*oos_test"):
        load_clinc150(tmp_path)
    write_clinc(tmp_path, {**CLINC, "test": [["book a flight", "book_flight"]]})
    with pytest.raises(DataError, match="'book_flight' is in 'test' but missing from 'train'"):
        load_clinc150(tmp_path)
    write_clinc(tmp_path, {**CLINC, "val": [["no intent"]]})
    with pytest.raises(DataError, match="'val'"):
        load_clinc150(tmp_path)


def test_load_sst2(tmp_path):
    folder = tmp_path / "sst2"
    folder.mkdir()
    for split, n in (("train", 3), ("dev", 2), ("test", 1)):
        lines = [f"{i % 2} sentence {i} of {split} , b\u00e9art ." for i in range(n)]
        (folder / f"stsa.binary.{split}").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    sets = load_sst2(tmp_path)
    assert {k: len(v) for k, v in sets.items()} == {"train": 3, "dev": 2, "test": 1}
    assert sets["train"].labels.tolist() == [0, 1, 0]
    assert sets["dev"].texts[1] == "sentence 1 of dev , b\u00e9art ."
    assert sets["test"].classes == ["negative", "positive"]


def test_load_trec_latin1_and_bad_lines(tmp_path):
    folder = tmp_path / "trec"
    folder.mkdir()
    (folder / "TREC.train.all").write_bytes(b"0 What is a sister\xf0city ?\n5 How far ?\n")
    (folder / "TREC.test.all").write_bytes(b"3 Who was Galileo ?\n")
    sets = load_trec(tmp_path)
    assert sets["train"].texts[0] == "What is a sister\u00f0city ?"
    assert sets["train"].labels.tolist() == [0, 5] and sets["test"].classes[3] == "HUM"
    (folder / "TREC.test.all").write_bytes(b"3 Who was Galileo ?\nHUM Who else ?\n")
    with pytest.raises(DataError, match="TREC.test.all:2"):
        load_trec(tmp_path)
    (folder / "TREC.test.all").write_bytes(b"7 Out of range ?\n")
    with pytest.raises(DataError, match="TREC.test.all:1"):
        load_trec(tmp_path)


def test_load_custrev(tmp_path):
    (tmp_path / "custrev").mkdir()
    (tmp_path / "custrev" / "custrev.all").write_text("1 a handy camera .\n0 \n0 the lid broke .\n")
    sets = load_custrev(tmp_path)
    assert sets["all"].texts == ["a handy camera .", "the lid broke ."]
    assert sets["all"].labels.tolist() == [1, 0] and sets["all"].classes == ["negative", "positive"]


@pytest.mark.skipif(not (REAL_ROOT and (Path(REAL_ROOT) / "custrev").is_dir()),
                    reason="set UQBENCH_DATA to a data root that holds custrev/")
def test_real_custrev_counts():
    labels = load_custrev(REAL_ROOT)["all"].labels
    assert len(labels) == 3771 and set(labels.tolist()) == {0, 1}


def test_text_lines_missing(tmp_path):
    with pytest.raises(MissingData, match=r"TREC not found: .*TREC\.train\.all.*offline"):
        load_trec(tmp_path)
    with pytest.raises(MissingData, match=r"SST-2 not found: .*stsa\.binary\.dev"):
        load_sst2(tmp_path)


def test_load_ag_news(tmp_path):
    folder = tmp_path / "ag_news"
    folder.mkdir()
    (folder / "test.csv").write_text(
        '"3","Fears for pension","Unions say, they are ""disappointed""."\n'
        '"1","Title","Desc"\n'
    )
    sets = load_ag_news(tmp_path)
    assert list(sets) == ["test"]
    assert sets["test"].texts[0] == 'Fears for pension Unions say, they are "disappointed".'
    assert sets["test"].labels.tolist() == [2, 0] and sets["test"].classes[3] == "Sci/Tech"
    (folder / "test.csv").write_text('"5","t","d"\n')
    with pytest.raises(DataError, match="test.csv:1"):
        load_ag_news(tmp_path)


def test_load_ag_news_missing_says_where(tmp_path):
    with pytest.raises(MissingData, match=f"{tmp_path / 'ag_news' / 'test.csv'}.*put"):
        load_ag_news(tmp_path)


def test_load_text_csv(tmp_path):
    file = tmp_path / "reviews.csv"
    file.write_text("id,review,stars\n1,great,10\n2,\"bad, really\",2\n3,fine,2\n")
    s = load_text_csv(file, "review", "stars")
    assert s.texts == ["great", "bad, really", "fine"]
    assert s.classes == ["2", "10"] and s.labels.tolist() == [1, 0, 0]
    s = load_text_csv(file, "review", "stars", classes=["10", "2"])
    assert s.labels.tolist() == [0, 1, 1]
    with pytest.raises(DataError, match="label '2'.*not one of"):
        load_text_csv(file, "review", "stars", classes=["10"])


def test_load_text_csv_string_labels_and_errors(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("text,label\nhi,pos\nho,neg\n")
    assert load_text_csv(file, "text", "label").classes == ["neg", "pos"]
    with pytest.raises(DataError, match="no column.*'sentence'.*columns present: 'text', 'label'"):
        load_text_csv(file, "sentence", "label")
    with pytest.raises(MissingData, match="absent.csv"):
        load_text_csv(tmp_path / "absent.csv", "text", "label")


# --- optional: the real TREC files --------------------------------------------------------


@pytest.mark.skipif(not (REAL_ROOT and (Path(REAL_ROOT) / "trec").is_dir()),
                    reason="set UQBENCH_DATA to a data root that holds trec/")
def test_real_trec_counts():
    sets = load_trec(REAL_ROOT)
    assert (len(sets["train"]), len(sets["test"])) == (5452, 500)
    assert set(sets["train"].labels.tolist()) == set(range(6))


# --- compact copy of a data root (scripts/compact_data.py) -----------------------------------


def test_compact_data_root_keeps_the_pixels_the_tasks_see(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src / "cifar10" / "train", {"cat": 5, "dog": 5}, size=(32, 32))
    make_folder(src / "cifar10" / "test", {"cat": 3, "dog": 3}, size=(32, 32))
    rng = np.random.default_rng(0)
    for k, cls in enumerate(["banded", "dotted"]):  # non-square, larger than 32 px: cropped and resized
        for i in range(3):
            (src / "textures" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (50 + 7 * i, 41 + k, 3), dtype=np.uint8)).save(
                src / "textures" / cls / f"{i}.jpg", quality=90)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, str(repo / "scripts" / "compact_data.py"), *map(str, args)],
        capture_output=True, text=True, env=env)

    done = run(src, dst, "--train", 2, "--test", 3)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (dst / "cifar10" / "train" / "cat").iterdir()) == ["000.jpg", "001.jpg"]
    assert (dst / "cifar10" / "test" / "dog" / "002.jpg").read_bytes() == (src / "cifar10" / "test" / "dog" / "002.jpg").read_bytes()
    full, small = load_image_folder(src / "textures", 32, cache=False), load_image_folder(dst / "textures", 32, cache=False)
    assert small.classes == full.classes
    np.testing.assert_array_equal(small.images, full.images)
    np.testing.assert_array_equal(small.labels, full.labels)

    bad = run(tmp_path / "nowhere", dst)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "cifar10/train" in bad.stderr
