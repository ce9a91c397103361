"""In-memory caches of loaded files that notice when a file changes on disk.

A loaded result stays valid only while every file it was read from keeps its
identity: inode, size and modification time (ns). A file deleted, re-dumped,
rewritten by a new training or replaced with ``os.replace`` changes at least one
of them, so the next access reads it again (and, for ``model_params``, re-runs
the documented auto-dump) instead of returning stale data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["file_identity", "FileCache"]

T = TypeVar("T")

Identity = tuple[tuple[str, int, int, int] | tuple[str], ...]


def file_identity(paths: Iterable[str | os.PathLike]) -> Identity:
    """(path, inode, size, mtime_ns) of each file (links followed); (path,) when missing."""
    out: list = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append((os.fspath(p),))
            continue
        out.append((os.fspath(p), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class FileCache:
    """Values by key, each valid while the files it came from are unchanged."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Identity, Any]] = {}

    def get(
        self,
        key: str,
        paths: Callable[[], Iterable[Path]],
        load: Callable[[], T],
        reload: bool = False,
    ) -> T:
        """The cached value of ``key`` if its files are unchanged, else ``load()``.

        ``paths`` is called after ``load`` too: a loader may create the file
        (the auto-dump of ``model_params``), and the identity recorded is the one
        read.
        """
        hit = self._entries.get(key)
        if not reload and hit is not None and hit[0] == file_identity(paths()):
            return hit[1]
        value = load()
        self._entries[key] = (file_identity(paths()), value)
        return value

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
