"""Atomic file writes and short inter-process locks.

Every file lfads_runs writes goes through :func:`atomic_path`: the content is
written to a temporary file in the destination folder, flushed to disk, then
renamed over the destination, so readers never see a half-written file and a
crash leaves at most a ``.tmp`` file behind, which the next writer of the same
destination removes once its owner is dead (:mod:`lfads_runs._tempfiles`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._tempfiles import make_temp, sweep_stale_temps

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "file_lock",
    "LockTimeout",
    "fsync_dir",
]


class LockTimeout(TimeoutError):
    """A lock could not be taken within its timeout."""


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory entry (after a rename) where the OS supports it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success it replaces ``dst``.

    The caller writes (and closes) the file at the yielded path. On an
    exception the temporary file is removed and ``dst`` is left untouched.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(dst)  # what a killed earlier writer of dst left behind
    tmp = make_temp(dst, suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(dst: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dst: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(dst, text.encode("utf-8"))


def atomic_write_json(dst: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(dst, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike, timeout: float | None = None, poll: float = 0.05
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block.

    Keep the block short. ``timeout=None`` waits forever.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if deadline is not None and time.monotonic() > deadline:
                    raise LockTimeout(f"could not lock {path} within {timeout} s") from None
                time.sleep(poll)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
