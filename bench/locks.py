"""File locks that no killed process can leave held.

``file_lock`` takes ``fcntl.flock`` on a lock file that holds the owner's pid and host (for
people; the lock is the kernel's). The kernel releases it when its holder exits, however it
exits, SIGKILL included, so a stale lock file is simply locked again by the next runner. The
holder removes the file when it is done; a process that was waiting on the removed file sees
that the path no longer names the file it locked and tries again.

``measuring`` and ``wait_for_measurement`` keep cost timings clean on a shared machine: a
runner measuring cost holds the measurement lock, and every other runner waits for it before
its next training or evaluation batch.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` for the block and yield True; when another process
    holds it, wait for it (``wait``) or yield False at once. Folders made for the lock file
    are removed again when the lock is released and they are empty."""
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield from _locked(path, wait)
    finally:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (or made by someone else meanwhile): keep it
                break


def _locked(path: Path, wait: bool) -> Iterator[bool]:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # another holder removed the folder it had made: make it again
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # locked a file its last holder had removed: take the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield True
    finally:
        path.unlink(missing_ok=True)  # removed while still held, then released
        os.close(fd)


_measuring_here = False


@contextlib.contextmanager
def measuring(path: Path) -> Iterator[None]:
    """Hold the measurement lock ``path`` for the block (waiting for another holder first)."""
    global _measuring_here
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # the file stays: waiters only open it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _measuring_here = True
        yield
    finally:
        _measuring_here = False
        os.close(fd)  # releases the lock


def wait_for_measurement(path: Path) -> None:
    """Return once no other process holds the measurement lock ``path`` (at once when none does)."""
    if _measuring_here:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)
