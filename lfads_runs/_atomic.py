"""Atomic file writes and short inter-process locks.

Every file lfads_runs writes goes through :func:`atomic_path`: the content is
written to a temporary file in the destination folder, flushed to disk, then
renamed over the destination, so readers never see a half-written file and a
crash leaves at most a ``.tmp`` file behind, which the next writer of the same
destination removes once its owner is dead (:mod:`lfads_runs._tempfiles`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

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
    # Windows' fsync (_commit) needs a descriptor open for writing.
    fd = os.open(path, os.O_RDWR)
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


@functools.cache
def _os_lock_options() -> dict[str, Any]:
    """Options that keep filelock on the OS lock (released when the holder dies).

    filelock 4 may otherwise fall back to a marker file that outlives a killed
    holder, and removes the lock file on release; filelock 3 does neither.
    """
    accepted = inspect.signature(filelock.BaseFileLock.__init__).parameters
    wanted = {"fallback_to_soft": False, "preserve_lock_file": True}
    return {k: v for k, v in wanted.items() if k in accepted}


def _os_lock_class() -> type[filelock.BaseFileLock]:
    # flock(2) on POSIX, msvcrt.locking on Windows: both die with the process.
    return filelock.WindowsFileLock if sys.platform == "win32" else filelock.UnixFileLock


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike, timeout: float | None = None, poll: float = 0.05
) -> Iterator[None]:
    """Hold an exclusive OS lock on ``path`` (created if needed) for the block.

    Keep the block short. ``timeout=None`` waits forever, ``0`` tries once. The
    OS releases the lock when the holding process dies (even by SIGKILL). Two
    threads of one process exclude each other like two processes do; a thread
    must not take a lock it already holds (filelock 4 raises ``RuntimeError``
    when it would wait forever, older versions wait).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _os_lock_class()(str(path), mode=0o644, **_os_lock_options())
    try:
        lock.acquire(timeout=-1 if timeout is None else max(timeout, 0), poll_interval=poll)
    except filelock.Timeout:
        raise LockTimeout(f"could not lock {path} within {timeout} s") from None
    try:
        yield
    finally:
        lock.release()
