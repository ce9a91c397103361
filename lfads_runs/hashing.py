"""MATLAB DataHash, bit for bit, as lfads-run-manager uses it for folder names.

lfads-run-manager names folders ``param_<P>`` and ``data_<D>`` after an MD5 of
a MATLAB struct serialised by Jan Simon's DataHash (version 4, "array" mode,
with the run manager's ``AutoDownsizeIntegers`` change). To open folders made by
MATLAB we must produce the same bytes: see shared/spec/run-manager.md §4.

Values are described with :class:`MValue` (a MATLAB class name plus a value) so
that the class, which changes the hash, is always explicit.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

__all__ = ["MValue", "datahash_bytes", "datahash_md5", "short_hash", "NUMERIC_CLASSES"]

NUMERIC_CLASSES = {
    "double": "<f8",
    "single": "<f4",
    "uint8": "<u1",
    "int8": "<i1",
    "uint16": "<u2",
    "int16": "<i2",
    "uint32": "<u4",
    "int32": "<i4",
    "uint64": "<u8",
    "int64": "<i8",
}


@attrs.frozen
class MValue:
    """A MATLAB value: ``cls`` is its class name, ``value`` its content.

    - numeric classes and ``logical``: a scalar, a sequence or an ndarray (``None`` = ``[]``)
    - ``char``: a ``str`` (a row; ``''`` has size 0x0)
    - ``cell``: a sequence of :class:`MValue` (a row; empty = ``{}`` of size 0x0)
    - ``struct``: a mapping field name -> :class:`MValue` (a 1x1 struct)
    """

    cls: str
    value: Any


def _header(cls: str, shape: Sequence[int]) -> bytes:
    shape = tuple(shape)
    if len(shape) < 2:
        shape = (1,) * (2 - len(shape)) + shape if shape else (1, 1)
    return cls.encode("ascii") + struct.pack(f"<{len(shape) + 1}Q", len(shape), *shape)


def _downsize(cls: str, arr: np.ndarray) -> str:
    """AutoDownsizeIntegers: the class an integer array is hashed as (spec §4.4)."""
    if arr.size == 0:
        return cls
    lo, hi = int(arr.min()), int(arr.max())
    if cls in ("uint32", "uint64") and hi <= 65535:
        return "uint16"
    if cls == "uint64" and hi <= 4294967295:
        return "uint32"
    if cls in ("int32", "int64") and lo >= -32768 and hi <= 32767:
        return "int16"
    if cls == "int64" and lo >= -2147483648 and hi < 2147483647:
        return "int32"
    return cls


def _matlab_shape(arr: np.ndarray) -> tuple[int, ...]:
    if arr.ndim == 0:
        return (1, 1)
    if arr.ndim == 1:
        return (1, arr.shape[0]) if arr.size else (0, 0)
    return arr.shape


def _serialise(v: MValue, out: list[bytes]) -> None:
    cls = v.cls
    if cls == "struct":
        fields: Mapping[str, MValue] = v.value
        out.append(_header("struct", (1, 1)))
        for name in sorted(fields):  # code-point order, as MATLAB's sort of char arrays
            out.append(name.encode("ascii"))
            _serialise(fields[name], out)
        return
    if cls == "cell":
        items = list(v.value or ())
        out.append(_header("cell", (1, len(items)) if items else (0, 0)))
        for item in items:
            _serialise(item, out)
        return
    if cls == "char":
        text: str = v.value or ""
        units = text.encode("utf-16-le")
        n = len(units) // 2
        out.append(_header("char", (1, n) if n else (0, 0)))
        out.append(units)
        return
    if cls == "logical":
        arr = np.asarray([] if v.value is None else v.value, dtype=bool)
        out.append(_header("logical", _matlab_shape(arr)))
        out.append(np.asfortranarray(arr).astype(np.uint8).tobytes(order="F"))
        return
    if cls in NUMERIC_CLASSES:
        arr = np.asarray([] if v.value is None else v.value)
        cls = _downsize(cls, arr) if cls.startswith(("uint", "int")) else cls
        arr = arr.astype(NUMERIC_CLASSES[cls])
        out.append(_header(cls, _matlab_shape(arr)))
        if arr.size:
            out.append(arr.tobytes(order="F"))
        return
    raise TypeError(f"cannot hash a MATLAB value of class {cls!r}")


def datahash_bytes(value: MValue) -> bytes:
    """The byte stream DataHash feeds into MD5 for ``value``."""
    out: list[bytes] = []
    _serialise(value, out)
    return b"".join(out)


def datahash_md5(value: MValue) -> bytes:
    return hashlib.md5(datahash_bytes(value)).digest()


def short_hash(value: MValue) -> str:
    """The 6-character hash lfads-run-manager puts in folder names."""
    return base64.urlsafe_b64encode(datahash_md5(value)).decode("ascii")[:6]
