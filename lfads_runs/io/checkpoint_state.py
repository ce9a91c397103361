"""Checkpoint pointer files (``checkpoint``, ``checkpoint_lve``): TF ``CheckpointState`` text.

Format (lfads-model.md §7.6)::

    model_checkpoint_path: "/abs/or/relative/lfads_vae_lve.ckpt-320"
    all_model_checkpoint_paths: "/abs/or/relative/lfads_vae_lve.ckpt-230"
    ...

Newer TensorFlow versions add timestamp fields; unknown fields are ignored.
TensorFlow writes the paths as given, so pointer files of runs trained elsewhere
hold absolute paths from another machine: a path whose checkpoint is not there
falls back to the same file name inside the pointer file's folder. Relative
paths are relative to that folder. We write file names only, so a run folder
can be moved.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import attrs

from .._atomic import atomic_write_text
from ..exceptions import CheckpointError

__all__ = ["CheckpointState", "read_checkpoint_state", "write_checkpoint_state"]

# field: "double-quoted" | 'single-quoted' | bare token
_FIELD_RE = re.compile(
    r"""([A-Za-z_][A-Za-z0-9_]*)\s*:\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s"']+)"""
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "a": "\a"}
_ESCAPES.update({"b": "\b", "f": "\f", "v": "\v", "?": "?"})
_ESC_RE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)", re.S)


@attrs.frozen
class CheckpointState:
    """Content of one pointer file, with paths resolved on this machine.

    Attributes
    ----------
    model_checkpoint_path
        Prefix of the checkpoint the pointer names (the latest, or the LVE one).
    all_model_checkpoint_paths
        Prefixes of every kept checkpoint, oldest first, as listed.
    pointer_file
        The file that was read.
    """

    model_checkpoint_path: Path
    all_model_checkpoint_paths: tuple[Path, ...]
    pointer_file: Path | None = None


def _unquote(token: str, path: Path) -> str:
    if token[:1] not in ("'", '"'):
        return token
    body = token[1:-1]

    def repl(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] == "x":
            return chr(int(s[1:], 16))
        if s[0] in "01234567":
            return chr(int(s, 8))
        if s in _ESCAPES:
            return _ESCAPES[s]
        raise CheckpointError(f"{path}: invalid escape \\{s} in {token}")

    # Octal/hex escapes are bytes; re-decode them as UTF-8 like protobuf does.
    text = _ESC_RE.sub(repl, body)
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _resolve(value: str, directory: Path) -> Path:
    p = Path(value)
    if not p.is_absolute():
        return directory / p
    local = directory / p.name
    # Prefer the copy beside the pointer file: the run folder may have been moved or
    # copied from another machine, and the recorded location may not exist here.
    if Path(f"{local}.index").exists() or not Path(f"{p}.index").exists():
        return local
    return p


def read_checkpoint_state(
    directory: str | os.PathLike, pointer: str = "checkpoint"
) -> CheckpointState | None:
    """Read the pointer file ``directory/pointer``.

    Returns
    -------
    CheckpointState or None
        None when the pointer file does not exist.

    Raises
    ------
    CheckpointError
        The file exists but names no checkpoint or cannot be parsed.
    """
    directory = Path(directory)
    path = directory / pointer
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    latest: str | None = None
    all_paths: list[str] = []
    for m in _FIELD_RE.finditer(text):
        field, token = m.group(1), m.group(2)
        if field == "model_checkpoint_path":
            latest = _unquote(token, path)
        elif field == "all_model_checkpoint_paths":
            all_paths.append(_unquote(token, path))
    if not latest:
        raise CheckpointError(f"{path}: no model_checkpoint_path; the pointer file is damaged")
    return CheckpointState(
        model_checkpoint_path=_resolve(latest, directory),
        all_model_checkpoint_paths=tuple(_resolve(p, directory) for p in all_paths),
        pointer_file=path,
    )


def _quote(s: str) -> str:
    out = []
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_checkpoint_state(
    directory: str | os.PathLike, pointer: str, latest: str, all_paths: Sequence[str]
) -> None:
    """Write ``directory/pointer`` atomically, naming checkpoints by file name only.

    ``latest`` is appended to ``all_paths`` when missing, as TensorFlow does.
    """
    latest_name = Path(latest).name
    names = [Path(p).name for p in all_paths]
    if latest_name not in names:
        names.append(latest_name)
    lines = [f"model_checkpoint_path: {_quote(latest_name)}"]
    lines += [f"all_model_checkpoint_paths: {_quote(n)}" for n in names]
    atomic_write_text(Path(directory) / pointer, "\n".join(lines) + "\n")
