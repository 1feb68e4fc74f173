"""Where data lives, how it is downloaded, and how a local copy is checked.

Every loader in ``bench.data`` looks for its files under a data root, falls back to
the official download when the network allows, and otherwise raises ``MissingData``
with one line that says what is missing and where it was looked for.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

DOWNLOAD_TIMEOUT_S = 20
_NETWORK_SCHEMES = {"http", "https", "ftp"}


class MissingData(Exception):
    """A data set is absent and could not be downloaded."""


class FetchFailed(MissingData):
    """A download could not happen or did not finish; ``reason`` is one short phrase."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"download of {url} failed: {reason}")
        self.url = url
        self.reason = reason


class DataError(ValueError):
    """Data is present but damaged or malformed."""


def check_same_classes(train: list[str], test: list[str], train_where: object, test_where: object) -> None:
    """Raise ``DataError`` naming the first class that only one of the two splits has."""
    only_train = [c for c in train if c not in set(test)]
    if only_train:
        raise DataError(f"class {only_train[0]!r} is in {train_where} but missing from the test split {test_where}")
    only_test = [c for c in test if c not in set(train)]
    if only_test:
        raise DataError(f"class {only_test[0]!r} is in the test split {test_where} but missing from {train_where}")


def data_root() -> Path:
    """Returns the data root: env ``UQBENCH_DATA``, default ``./data``."""
    return Path(os.environ.get("UQBENCH_DATA") or "data")


def offline() -> bool:
    """Returns True when env ``UQBENCH_OFFLINE`` forbids network access."""
    return os.environ.get("UQBENCH_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def file_digest(path: Path, algorithm: str) -> str:
    """Returns the hex digest of a file's bytes (``algorithm`` as in hashlib)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_digests(path: Path, md5: str | None, sha256: str | None, label: str) -> None:
    """Raises ``DataError`` naming ``label`` when a file's digest differs from the expected one."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is not None:
            actual = file_digest(path, algorithm)
            if actual != expected.lower():
                raise DataError(
                    f"{label}: {algorithm} mismatch (expected {expected}, got {actual})"
                )


def fetch(url: str, dest: Path, md5: str | None = None, sha256: str | None = None) -> Path:
    """Downloads ``url`` to ``dest`` unless a copy with the right checksum is there.

    The bytes go to a temporary file next to ``dest`` that is renamed only after the
    checksum matched, so an interrupted download never looks like a finished one.

    Args:
        url: Source address; ``file://`` works too and is never blocked as network.
        dest: Final path of the file.
        md5: Expected md5 hex digest, if known.
        sha256: Expected sha256 hex digest, if known.

    Returns:
        ``dest``.

    Raises:
        FetchFailed: (a ``MissingData``) offline, or any network or I/O failure.
        DataError: the downloaded bytes do not match the checksum.
    """
    dest = Path(dest)
    if dest.is_file():
        try:
            check_digests(dest, md5, sha256, str(dest))
            return dest
        except DataError:
            pass  # a stale or partial copy: download again
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme in _NETWORK_SCHEMES and offline():
        raise FetchFailed(url, "offline (UQBENCH_OFFLINE=1)")
    from ..results import atomic_file

    try:
        with atomic_file(dest) as out:  # renamed to dest only once the checksum matched
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                shutil.copyfileobj(response, out, length=1 << 20)
            out.flush()
            check_digests(Path(out.name), md5, sha256, f"download of {url}")
    except DataError:
        raise
    except urllib.error.HTTPError as e:
        raise FetchFailed(url, f"HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise FetchFailed(url, str(e.reason)) from e
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise FetchFailed(url, str(e) or type(e).__name__) from e
    return dest


def extract(archive: Path, into: Path) -> Path:
    """Unpacks a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive into a folder.

    Members that would land outside ``into`` (absolute paths, ``..``, links out) are
    refused.

    Raises:
        DataError: the archive is damaged, of an unknown kind, or unsafe.
    """
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                target = into.resolve()
                for member in z.namelist():
                    if not (into / member).resolve().is_relative_to(target):
                        raise DataError(f"{archive}: unsafe member path {member!r}")
                z.extractall(into)
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
        else:
            raise DataError(f"{archive}: unknown archive type (want .tar.gz, .tgz, .tar, .zip)")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"{archive}: cannot extract: {e}") from e
    return into


def fetch_and_extract(url: str, archive: Path, into: Path, md5: str | None = None,
                      sha256: str | None = None) -> Path:
    """Downloads an archive with ``fetch`` and unpacks it into ``into``; returns ``into``."""
    return extract(fetch(url, archive, md5=md5, sha256=sha256), into)


# --- manifest -------------------------------------------------------------------------


def _regular_files(root: Path, name: str) -> list[bytes]:
    """Paths of every regular file below ``root/name`` as ``./name/...`` bytes, like
    ``find ./NAME -type f`` run in ``root``: symlinks are neither followed nor listed."""
    found: list[bytes] = []
    stack = [(root / name, b"./" + os.fsencode(name))]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                child = rel + b"/" + os.fsencode(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), child))
                elif entry.is_file(follow_symlinks=False):
                    found.append(child)
    return found


def _sha256sum_line(digest: str, path: bytes) -> bytes:
    # GNU sha256sum escapes backslash, newline and CR in names and then starts the
    # line with a backslash; reproduce that so odd names hash the same.
    if any(c in path for c in (b"\\", b"\n", b"\r")):
        escaped = path.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        return b"\\" + digest.encode() + b"  " + escaped + b"\n"
    return digest.encode() + b"  " + path + b"\n"


def dataset_checksum(root: Path, name: str) -> tuple[int, str]:
    """Returns (file count, sha256) of the output of
    ``find ./NAME -type f -print0 | sort -z | xargs -0 sha256sum`` run inside ``root``.
    """
    root = Path(root)
    paths = sorted(_regular_files(root, name))  # bytewise, like sort -z in the C locale
    listing = hashlib.sha256()
    for rel in paths:
        listing.update(_sha256sum_line(file_digest(root / os.fsdecode(rel[2:]), "sha256"), rel))
    if not paths:
        # xargs without -r still runs sha256sum once, which then hashes empty stdin.
        listing.update(_sha256sum_line(hashlib.sha256(b"").hexdigest(), b"-"))
    return len(paths), listing.hexdigest()


def read_manifest(manifest: Path) -> dict[str, tuple[int, str]]:
    """Parses ``name files sha256`` rows (``#`` lines are comments).

    Raises:
        DataError: a row that is not three fields with an integer count.
    """
    rows: dict[str, tuple[int, str]] = {}
    text = Path(manifest).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[1].isdigit():
            raise DataError(f"{manifest}:{number}: expected 'name files sha256', got {line!r}")
        rows[fields[0]] = (int(fields[1]), fields[2].lower())
    return rows


def verify_manifest(root: Path, manifest: Path) -> dict[str, str]:
    """Checks every data set named in a manifest against the copy under ``root``.

    Returns:
        ``{name: status}`` with status ``"ok"``, ``"missing"``,
        ``"incomplete (N of M files)"`` or ``"damaged (checksum mismatch)"``.
    """
    root = Path(root)
    report: dict[str, str] = {}
    for name, (expected_files, expected_sha) in read_manifest(manifest).items():
        if not (root / name).is_dir():
            report[name] = "missing"
            continue
        n_files, sha = dataset_checksum(root, name)
        if n_files < expected_files:
            report[name] = f"incomplete ({n_files} of {expected_files} files)"
        elif sha != expected_sha:
            report[name] = "damaged (checksum mismatch)"
        else:
            report[name] = "ok"
    return report
