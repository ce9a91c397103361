"""MATLAB ``.mat`` files: a v7.3 (HDF5) writer and a reader for v7.3 and older files.

A v7.3 MAT-file is an HDF5 file with a 512-byte user block holding MATLAB's
text header. MATLAB stores arrays column-major, so an array MATLAB sees as
m x n appears in HDF5 (and h5py) as n x m; every variable carries a
``MATLAB_class`` attribute; ``char`` is uint16; cell arrays are arrays of
object references into the ``#refs#`` group; empty arrays store their size
with ``MATLAB_empty = 1``.

Values returned by :func:`read_mat` are in MATLAB orientation (at least 2-D
for arrays): numeric and logical arrays as numpy arrays, a char row as
``str``, a char matrix as an array of row strings, a cell array as an object
array, a scalar struct as a ``dict``. Files older than v7.3 are read with
``scipy.io.loadmat`` when scipy is installed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._atomic import atomic_path
from .._optional import require
from ..exceptions import DataError

__all__ = ["read_mat", "write_mat73", "is_mat73", "mat_header_text"]

_USERBLOCK = 512
_VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_CLASS_OF_DTYPE = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int16): "int16",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.int32): "int32",
    np.dtype(np.uint32): "uint32",
    np.dtype(np.int64): "int64",
    np.dtype(np.uint64): "uint64",
}
_NUMERIC_CLASSES = frozenset(_CLASS_OF_DTYPE.values())
_COMPRESS_ABOVE_BYTES = 4096


def mat_header_text() -> str:
    """The 116-character text MATLAB puts at the start of a v7.3 file."""
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime())
    return f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {stamp} HDF5 schema 1.00 ."


def _header_bytes() -> bytes:
    text = mat_header_text().encode("ascii")[:116]
    # text padded with spaces to 124 bytes, version 0x0200 (little endian), endian tag "IM"
    head = text.ljust(124, b" ") + b"\x00\x02IM"
    return head.ljust(_USERBLOCK, b"\x00")


def is_mat73(path: str | os.PathLike) -> bool:
    """True when ``path`` is an HDF5-based (v7.3) MAT-file."""
    return h5py.is_hdf5(path)


# ----------------------------------------------------------------------------- writing


def _str_attr(obj: h5py.HLObject, name: str, value: str) -> None:
    """A fixed-length, null-terminated ASCII string attribute, as MATLAB writes them."""
    raw = value.encode("ascii")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(raw))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    sid = h5py.h5s.create(h5py.h5s.SCALAR)
    aid = h5py.h5a.create(obj.id, name.encode("ascii"), tid, sid)
    aid.write(np.array(raw, dtype=f"S{len(raw)}"), mtype=tid)


def _matlab_shape(a: np.ndarray) -> np.ndarray:
    """Scalars become 1 x 1, vectors become columns (n x 1)."""
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(-1, 1)
    return a


class _Writer:
    def __init__(self, f: h5py.File) -> None:
        self.f = f
        self.refs: h5py.Group | None = None
        self.n_refs = 0

    def _ref_group(self) -> h5py.Group:
        if self.refs is None:
            self.refs = self.f.create_group("#refs#")
            # MATLAB keeps a canonical empty at #refs#/a and names elements b, c, ...
            ds = self.refs.create_dataset("a", data=np.zeros(2, dtype=np.uint64))
            _str_attr(ds, "MATLAB_class", "canonical empty")
            ds.attrs.create("MATLAB_empty", np.uint8(1))
        return self.refs

    def _ref_name(self) -> str:
        self.n_refs += 1
        n, name = self.n_refs, ""
        while True:  # b, c, ..., z, ba, bb, ... (base 26 after the canonical "a")
            n, r = divmod(n, 26)
            name = chr(ord("a") + r) + name
            if n == 0:
                return name

    def _empty(self, parent: h5py.Group, name: str, cls: str, shape: Sequence[int]) -> None:
        ds = parent.create_dataset(name, data=np.array(shape, dtype=np.uint64))
        _str_attr(ds, "MATLAB_class", cls)
        ds.attrs.create("MATLAB_empty", np.uint8(1))

    def _data(self, parent: h5py.Group, name: str, a: np.ndarray) -> h5py.Dataset:
        stored = np.ascontiguousarray(a.T)  # MATLAB is column-major
        if stored.nbytes > _COMPRESS_ABOVE_BYTES:
            return parent.create_dataset(
                name, data=stored, compression="gzip", compression_opts=3, chunks=True
            )
        return parent.create_dataset(name, data=stored)

    def write(self, parent: h5py.Group, name: str, value: Any) -> None:
        if isinstance(value, str):
            self._char(parent, name, value)
            return
        if isinstance(value, Mapping):
            msg = f"variable {name!r}: structs are not supported by this writer"
            raise TypeError(msg)
        if isinstance(value, list | tuple) and (
            len(value) == 0 or all(isinstance(v, str) for v in value)
        ):
            self._cell(parent, name, np.array(list(value), dtype=object).reshape(-1, 1))
            return
        a = np.asarray(value)
        if a.dtype.kind in "US":
            self._cell(parent, name, _matlab_shape(a.astype(str).astype(object)))
            return
        if a.dtype == object:
            self._cell(parent, name, _matlab_shape(a))
            return
        if isinstance(value, int | float) and not isinstance(value, bool):
            a = np.asarray(value, dtype=np.float64)  # MATLAB numbers are double
        a = _matlab_shape(a)
        if a.dtype == np.bool_:
            cls = "logical"
            a = a.astype(np.uint8)
        else:
            cls = _CLASS_OF_DTYPE.get(a.dtype.newbyteorder("="))
            if cls is None:
                msg = f"variable {name!r}: dtype {a.dtype} has no MATLAB class here"
                raise TypeError(msg)
        if a.size == 0:
            self._empty(parent, name, cls, a.shape)
            return
        ds = self._data(parent, name, a)
        _str_attr(ds, "MATLAB_class", cls)
        if cls == "logical":
            ds.attrs.create("MATLAB_int_decode", np.int32(1))

    def _char(self, parent: h5py.Group, name: str, text: str) -> None:
        if text == "":
            self._empty(parent, name, "char", (0, 0))
            return
        codes = np.frombuffer(text.encode("utf-16-le"), dtype=np.uint16)
        ds = self._data(parent, name, codes.reshape(1, -1))
        _str_attr(ds, "MATLAB_class", "char")
        ds.attrs.create("MATLAB_int_decode", np.int32(2))

    def _cell(self, parent: h5py.Group, name: str, cells: np.ndarray) -> None:
        if cells.size == 0:
            self._empty(parent, name, "cell", cells.shape)
            return
        group = self._ref_group()
        refs = np.empty(cells.shape, dtype=h5py.ref_dtype)
        for idx in np.ndindex(cells.shape):
            elem_name = self._ref_name()
            self.write(group, elem_name, cells[idx])
            refs[idx] = group[elem_name].ref
        ds = parent.create_dataset(name, data=np.ascontiguousarray(refs.T), dtype=h5py.ref_dtype)
        _str_attr(ds, "MATLAB_class", "cell")


def write_mat73(path: str | os.PathLike, variables: Mapping[str, Any]) -> None:
    """Write ``variables`` to a MATLAB v7.3 MAT-file, atomically.

    Conversions: ``str`` -> char row; a list/tuple of ``str`` or a numpy string
    array -> cell array of char (a 1-D sequence becomes an n x 1 column); a
    numpy array keeps its MATLAB class (bool -> logical) and shape, except
    that 0-D arrays become 1 x 1 and 1-D arrays n x 1 columns; Python ``int``
    and ``float`` become double.

    Raises
    ------
    TypeError
        A value MATLAB cannot hold here (structs, complex, object arrays of
        non-strings).
    ValueError
        A name that is not a valid MATLAB variable name.
    """
    for name in variables:
        if not _VALID_NAME.match(name):
            msg = f"{name!r} is not a valid MATLAB variable name"
            raise ValueError(msg)
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=_USERBLOCK) as f:
            w = _Writer(f)
            for name, value in variables.items():
                w.write(f, name, value)
        with open(tmp, "r+b") as fh:
            fh.write(_header_bytes())


# ----------------------------------------------------------------------------- reading


def _attr_str(obj: h5py.HLObject, name: str) -> str | None:
    v = obj.attrs.get(name)
    if v is None:
        return None
    if isinstance(v, bytes | np.bytes_):
        return v.decode("ascii", "replace")
    return str(v)


def _decode_char(a: np.ndarray) -> str | np.ndarray:
    m = a.T  # MATLAB rows x cols
    if m.ndim != 2:
        msg = "char arrays with more than two dimensions are not supported"
        raise DataError(msg)
    rows = [
        np.ascontiguousarray(row, dtype="<u2").tobytes().decode("utf-16-le", "replace")
        for row in np.atleast_2d(m)
    ]
    if len(rows) == 1:
        return rows[0]
    return np.array(rows, dtype=str)


def _read_h5(f: h5py.File, obj: h5py.HLObject, where: str) -> Any:
    cls = _attr_str(obj, "MATLAB_class")
    if isinstance(obj, h5py.Group):
        if cls not in (None, "struct"):
            msg = f"{where}: MATLAB class {cls!r} (an object) cannot be read"
            raise DataError(msg)
        return {k: _read_h5(f, obj[k], f"{where}.{k}") for k in obj if not k.startswith("#")}
    if obj.attrs.get("MATLAB_empty", 0):
        dims = tuple(int(d) for d in np.ravel(obj[()]))
        if cls == "char":
            return ""
        if cls == "cell":
            return np.empty(dims, dtype=object)
        if cls == "logical":
            return np.zeros(dims, dtype=bool)
        return np.zeros(dims, dtype=np.dtype(cls) if cls in _NUMERIC_CLASSES else np.float64)
    data = obj[()]
    if cls == "char":
        return _decode_char(np.asarray(data))
    if cls == "cell" or obj.dtype == h5py.ref_dtype:
        refs = np.asarray(data).T
        out = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            out[idx] = _read_h5(f, f[refs[idx]], f"{where}{{{','.join(str(i + 1) for i in idx)}}}")
        return out
    if cls == "logical":
        return np.asarray(data).T.astype(bool)
    if cls is not None and cls not in _NUMERIC_CLASSES:
        msg = f"{where}: MATLAB class {cls!r} cannot be read"
        raise DataError(msg)
    arr = np.asarray(data)
    if arr.dtype.names and set(arr.dtype.names) == {"real", "imag"}:
        arr = arr["real"] + 1j * arr["imag"]
    return arr.T


def _from_scipy(v: Any) -> Any:
    """scipy.io.loadmat values -> the same kinds :func:`read_mat` returns for v7.3."""
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "U":
            if v.size == 1:
                return str(v.ravel()[0])
            if v.size == 0:
                return ""
            return v.astype(str)
        if v.dtype == object:
            out = np.empty(v.shape, dtype=object)
            for idx in np.ndindex(v.shape):
                out[idx] = _from_scipy(v[idx])
            return out
        if v.dtype.names:  # struct array (struct_as_record=True)
            if v.size == 1:
                return {k: _from_scipy(v[k].ravel()[0]) for k in v.dtype.names}
            msg = "struct arrays are not supported"
            raise DataError(msg)
        return v
    return v


def read_mat(path: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Read variables of a MATLAB MAT-file (v7.3 with h5py, older with scipy).

    Parameters
    ----------
    path : path
    names : iterable of str, optional
        Variables to read; all when ``None``. Missing names are not an error
        (the caller decides which are required).

    Raises
    ------
    DataError
        Missing or unreadable file, or a variable of an unsupported class.
    MissingDependencyError
        The file predates v7.3 and scipy is not installed.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"MATLAB file {path} does not exist"
        raise DataError(msg)
    wanted = None if names is None else set(names)
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                out = {}
                for key in f:
                    if key.startswith("#") or (wanted is not None and key not in wanted):
                        continue
                    try:
                        out[key] = _read_h5(f, f[key], key)
                    except DataError as exc:
                        raise DataError(f"{path}: {exc}") from None
                return out
        except OSError as exc:
            msg = f"cannot read MATLAB file {path}: {exc}"
            raise DataError(msg) from exc
    with open(path, "rb") as fh:
        head = fh.read(128)
    if not head.startswith(b"MATLAB") and path.suffix.lower() != ".mat":
        msg = f"{path} is neither an HDF5 (v7.3) nor an older MATLAB MAT-file"
        raise DataError(msg)
    sio = require(
        "scipy.io",
        f"reading the MATLAB file {path} (saved before v7.3; or re-save it with save(..., '-v7.3'))",
    )
    try:
        raw = sio.loadmat(
            str(path),
            variable_names=None if wanted is None else sorted(wanted),
            squeeze_me=False,
            chars_as_strings=True,
        )
    except Exception as exc:  # scipy raises several unrelated types for corrupt files
        msg = f"cannot read MATLAB file {path}: {exc}"
        raise DataError(msg) from exc
    return {k: _from_scipy(v) for k, v in raw.items() if not k.startswith("__")}
