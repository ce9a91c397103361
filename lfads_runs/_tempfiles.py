"""Temporary files of atomic writes: named after their owner, swept when the owner is dead.

Every writer writes ``.<name>.<host>-<pid>.<random>.tmp`` beside its destination
``<name>`` and renames it into place. A process killed mid-write (``kill -9``, OOM,
power loss) leaves its temporary file behind, possibly hundreds of MB; the next
writer of the same destination removes the ones whose owner process is gone
(same host, pid no longer alive), and ``lfads-runs status`` lists what is left.
Files of other hosts (shared file systems) are never removed: their owner cannot
be checked from here.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs

from ._procs import pid_alive

__all__ = ["TempFile", "make_temp", "temp_link_name", "temp_files", "sweep_stale_temps"]

_HOST_CHARS = re.compile(r"[^A-Za-z0-9-]")
_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # those of tempfile.mkstemp
# .<name>.<host>-<pid>.<8 random chars of mkstemp>.tmp[.<ext>]
_TEMP = re.compile(
    r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(\..*)?$"
)
# Temporary files named before owners were recorded: .<name>.<8 random chars>.tmp
_LEGACY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\..*)?$")


def _host() -> str:
    return _HOST_CHARS.sub("", socket.gethostname())[:32]


def make_temp(dst: Path, suffix: str = ".tmp") -> Path:
    """Create an empty temporary file beside ``dst`` whose name records this process."""
    fd, name = tempfile.mkstemp(
        prefix=f".{dst.name}.{_host()}-{os.getpid()}.", suffix=suffix, dir=dst.parent
    )
    os.close(fd)
    return Path(name)


def temp_link_name(dst: Path) -> Path:
    """A fresh name beside ``dst`` for a symbolic link to be renamed over ``dst``.

    Unique per process and call (two processes linking the same inputs do not
    remove each other's link), and swept like the temporary files.
    """
    token = "".join(secrets.choice(_TOKEN_CHARS) for _ in range(8))
    return dst.parent / f".{dst.name}.{_host()}-{os.getpid()}.{token}.tmp"


@attrs.frozen
class TempFile:
    """A temporary file found on disk."""

    path: Path
    target: str  #: the file it was going to become
    host: str | None  #: None: written before owners were recorded
    pid: int | None
    owner_alive: bool | None  #: None: cannot be known (other host or unknown owner)
    size: int

    def as_dict(self) -> dict:
        return {**attrs.asdict(self), "path": str(self.path)}


def _owner_alive(host: str, pid: int) -> bool | None:
    return pid_alive(pid) if host == _host() else None


def _scan(folder: Path) -> Iterator[TempFile]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        if not e.name.startswith(".") or ".tmp" not in e.name:
            continue
        m = _TEMP.match(e.name)
        legacy = None if m else _LEGACY.match(e.name)
        if not (m or legacy):
            continue
        try:
            size = e.stat(follow_symlinks=False).st_size  # a link's own size
        except OSError:
            continue  # removed meanwhile
        if m:
            host, pid = m.group("host"), int(m.group("pid"))
            yield TempFile(Path(e.path), m.group("name"), host, pid, _owner_alive(host, pid), size)
        else:
            yield TempFile(Path(e.path), legacy.group("name"), None, None, None, size)


def temp_files(folder: str | os.PathLike, recursive: bool = True) -> list[TempFile]:
    """Temporary files of atomic writes under ``folder`` (not following links)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = list(_scan(folder))
    if recursive:
        for root, dirs, _ in os.walk(folder):
            found.extend(t for d in dirs for t in _scan(Path(root) / d))
    return sorted(found, key=lambda t: str(t.path))


def sweep_stale_temps(dst: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``dst`` whose owner process on this host is dead."""
    dst = Path(dst)
    removed = []
    for t in _scan(dst.parent):
        if t.target == dst.name and t.owner_alive is False:
            with contextlib.suppress(FileNotFoundError):
                t.path.unlink()
                removed.append(t.path)
    return removed
