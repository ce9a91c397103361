"""Fingerprints of the source files a data folder was prepared from.

``prepare`` records, beside the prepared inputs (``data_<D>/<spec>/``), each
dataset's source file with its size, modification time (ns) and a SHA-256 of the
arrays that went into the inputs. On the next ``prepare`` a file whose size or
mtime differs is loaded and its arrays hashed: the same content (a ``touch``, a
copy) only refreshes the record; other content re-prepares the inputs, or is
refused when a run has already trained on the old ones. Datasets produced by a
loader function have no file to watch; only ``--regenerate`` re-reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import layout
from .._atomic import atomic_write_json
from .dataset import DatasetData

__all__ = ["content_hash", "source_stat", "read_sources", "write_sources", "changed_sources"]

_FIELDS = ("counts", "time_ms", "condition_id", "true_rates", "external_inputs")


def content_hash(data: DatasetData) -> str:
    """SHA-256 of the arrays prepare uses (dtype, shape and bytes of each) and the bin width."""
    h = hashlib.sha256(repr(float(data.bin_ms)).encode())
    for name in _FIELDS:
        a = getattr(data, name)
        h.update(name.encode())
        if a is None:
            h.update(b"-")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.dtype.kind == "O":
            h.update(repr(a.tolist()).encode())
        else:
            h.update(a.tobytes())
    return h.hexdigest()


def source_stat(path: str | os.PathLike) -> dict[str, Any] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"path": os.fspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_sources(out_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The recorded fingerprints by dataset name ({} when none or unreadable)."""
    try:
        data = json.loads((Path(out_dir) / layout.SOURCES_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_sources(
    out_dir: str | os.PathLike,
    paths: Mapping[str, Path | None],
    datasets: Mapping[str, DatasetData],
) -> None:
    records = read_sources(out_dir)
    for name, data in datasets.items():
        path = paths.get(name)
        stat = source_stat(path) if path is not None else None
        records[name] = {**(stat or {"path": None}), "content": content_hash(data)}
    atomic_write_json(Path(out_dir) / layout.SOURCES_JSON, records)


def changed_sources(
    out_dir: str | os.PathLike, paths: Iterable[tuple[str, Path | None]]
) -> list[str]:
    """Datasets whose source file's size or mtime differs from the record.

    Datasets without a record (prepared by an older version), without a file, or
    whose file is gone count as unchanged: there is nothing to compare with.
    """
    records = read_sources(out_dir)
    changed = []
    for name, path in paths:
        rec = records.get(name)
        if rec is None or path is None or rec.get("path") is None:
            continue
        now = source_stat(path)
        if now is None:
            continue  # moved or deleted after preparing: the prepared inputs stay usable
        if (now["size"], now["mtime_ns"]) != (rec.get("size"), rec.get("mtime_ns")):
            changed.append(name)
    return changed
