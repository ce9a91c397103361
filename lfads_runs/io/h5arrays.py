"""Plain HDF5 files of named arrays: users' recordings, synthetic datasets, run exports.

The LFADS files have readers of their own (:mod:`lfads_input`, :mod:`posterior_files`,
...); this module reads and writes HDF5 files whose content is just arrays and
attributes in groups, so that no module outside :mod:`lfads_runs.io` opens an
HDF5 file itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import h5py
import numpy as np

from .._atomic import atomic_path
from ..exceptions import DataError
from ._damaged import damaged_file_errors

__all__ = ["ArrayReader", "H5Array", "H5Group", "open_arrays", "read_arrays", "write_arrays"]

_GZIP = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_field = attrs.field  # the records below have a field named ``attrs``


class ArrayReader:
    """The arrays of one open HDF5 file, read one at a time (see :func:`open_arrays`)."""

    def __init__(self, f: h5py.File, path: str) -> None:
        self._f = f
        self.path = path
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        #: Path of every array in the file (``group/name`` inside groups).
        self.names = names

    def get(self, key: str) -> Any:
        """The array at ``key`` (a ``group/name`` path), or None when there is none.

        Byte strings in object arrays come back decoded to ``str``.

        Raises
        ------
        DataError
            ``key`` is a group, or the file is damaged.
        """
        obj = self._f.get(key)
        if obj is None:
            return None
        if not isinstance(obj, h5py.Dataset):
            raise DataError(f"{self.path}: {key!r} is a group, not an array")
        with damaged_file_errors(DataError, self.path, "HDF5 file"):
            value = obj[()]
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            value = np.array(
                [v.decode() if isinstance(v, bytes) else v for v in value.ravel()], dtype=object
            ).reshape(value.shape)
        return value


@contextlib.contextmanager
def open_arrays(path: str | os.PathLike) -> Iterator[ArrayReader]:
    """Open an HDF5 file for reading its arrays inside a ``with`` block (closed after it).

    The file stays open only for the block, so a caller reads the arrays it needs
    and leaves large ones it does not need on disk.

    Raises
    ------
    DataError
        The file is missing or is not HDF5.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"cannot read {path} as HDF5: {exc}") from exc
    with f:
        yield ArrayReader(f, str(path))


def read_arrays(path: str | os.PathLike, keys: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The arrays at ``keys`` of an HDF5 file.

    Raises
    ------
    DataError
        The file cannot be read or lacks one of ``keys`` (the message lists what it holds).
    """
    with open_arrays(path) as reader:
        out = {}
        for key in keys:
            value = reader.get(key)
            if value is None:
                holds = ", ".join(reader.names) or "nothing"
                raise DataError(f"{path}: no array {key!r}; the file holds {holds}")
            out[key] = value
        return out


@attrs.frozen(eq=False)
class H5Array:
    """One array to write, with its attributes.

    ``compress``: gzip level 4 with the shuffle filter (never applied to scalars,
    empty arrays or strings, which HDF5 cannot or need not compress). Object
    arrays are stored as variable-length UTF-8 strings.
    """

    data: Any
    attrs: Mapping[str, Any] = _field(factory=dict)
    compress: bool = False


@attrs.frozen(eq=False)
class H5Group:
    """A group to write: attributes, then members (arrays or groups) in order."""

    attrs: Mapping[str, Any] = _field(factory=dict)
    members: Mapping[str, H5Array | H5Group] = _field(factory=dict)


def _write_group(group: h5py.Group, node: H5Group) -> None:
    for key, value in node.attrs.items():
        group.attrs[key] = value
    for name, member in node.members.items():
        if isinstance(member, H5Group):
            _write_group(group.create_group(name), member)
            continue
        data = np.asarray(member.data)
        if data.dtype == object:
            ds = group.create_dataset(name, data=data, dtype=h5py.string_dtype())
        elif member.compress and data.ndim > 0 and data.size > 0:
            ds = group.create_dataset(name, data=data, **_GZIP)
        else:
            ds = group.create_dataset(name, data=data)
        for key, value in member.attrs.items():
            ds.attrs[key] = value


def write_arrays(path: str | os.PathLike, root: H5Group) -> None:
    """Write ``root`` as a whole HDF5 file, atomically (a failure leaves ``path`` as it was)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_group(f, root)
