"""The ``model_params`` HDF5 file of LFADS: every checkpoint tensor, flat (lfads-model.md §6).

Layout: one dataset per TensorFlow global variable at the root, named
``hdf5_key(name)`` (``/`` -> ``_`` plus ``:0``), float32 except the int64
``LFADS_global_step:0``, contiguous, uncompressed, no attributes. The writer
creates datasets exactly as ``run_lfads.py --kind=write_model_params`` does
(``h5py.create_dataset(key, data=value)``), so the files have the same keys,
dtypes, shapes, values and storage properties as TensorFlow's. Byte identity
of the whole file is not attainable: HDF5 places objects in creation order,
which in TensorFlow follows its graph and ``os.listdir``.

The reader opens the file once to learn where each contiguous dataset lives,
then reads the bytes it needs with one ``pread`` and views them with numpy;
this is about twice as fast as reading dataset by dataset through h5py.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from .._atomic import atomic_path
from ..exceptions import MissingOutputError, ModelParamsError
from ..model_spec import hdf5_key
from ._damaged import damaged_file_errors

__all__ = [
    "read_model_params",
    "write_model_params",
    "write_params_export",
    "GLOBAL_STEP_KEY",
    "is_adam_key",
]

#: HDF5 key of the global step, the only integer dataset.
GLOBAL_STEP_KEY = "LFADS_global_step:0"
_GLOBAL_STEP_NAME = "LFADS/global_step"


def is_adam_key(key: str) -> bool:
    """True for Adam slot keys, which lfads-run-manager ignores (any key containing ``Adam``)."""
    return "Adam" in key


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise MissingOutputError(f"model_params file {path} does not exist") from None
    except OSError as exc:
        msg = (
            f"{path}: cannot be opened as HDF5 (truncated, still being copied, or not an "
            f"HDF5 file): {exc}"
        )
        raise ModelParamsError(msg) from None


def read_model_params(
    path: str | os.PathLike,
    names: Iterable[str] | None = None,
    *,
    exclude_adam: bool = False,
) -> dict[str, np.ndarray]:
    """Read a ``model_params`` file.

    Parameters
    ----------
    path
        The file.
    names
        HDF5 keys to read (default: every key). All must exist.
    exclude_adam
        Skip the optimiser slots (keys containing ``Adam``) when ``names`` is None.

    Returns
    -------
    dict
        HDF5 key -> array (file dtype in native byte order, file shape), in the
        order of ``names`` or the file's (alphabetical) key order.

    Raises
    ------
    MissingOutputError
        The file does not exist.
    ModelParamsError
        The file is not readable HDF5, is truncated, is not flat, or lacks a key
        of ``names``.
    """
    path = Path(path)
    layout: list[tuple[str, int | None, np.dtype, tuple[int, ...]]] = []
    out: dict[str, np.ndarray] = {}
    with damaged_file_errors(ModelParamsError, path, "model_params file"), _open(path) as f:
        keys = list(f.keys())
        if names is None:
            wanted = [k for k in keys if not (exclude_adam and is_adam_key(k))]
        else:
            wanted = list(names)
            present = set(keys)
            missing = [k for k in wanted if k not in present]
            if missing:
                raise ModelParamsError(f"{path}: missing key(s) {', '.join(missing)}")
        fid = f.id
        try:
            for key in wanted:
                ds = _open_dataset(fid, key, path)
                offset = _contiguous_offset(ds)
                if offset is None:
                    out[key] = _read_via_h5py(ds, key, path)  # compact, chunked or empty
                else:
                    layout.append((key, offset, ds.dtype, ds.shape))
        except (OSError, TypeError, ValueError) as exc:
            raise ModelParamsError(f"{path}: cannot read key {key!r}: {exc}") from None
    if layout:
        out.update(_read_contiguous(path, layout))
    return {k: out[k] for k in wanted}


def _open_dataset(fid: h5py.h5f.FileID, key: str, path: Path) -> h5py.h5d.DatasetID:
    try:
        return h5py.h5d.open(fid, key.encode("utf-8"))
    except (KeyError, OSError, TypeError):
        msg = f"{path}: {key!r} is not a dataset; model_params must be flat (datasets only)"
        raise ModelParamsError(msg) from None


def _contiguous_offset(ds: h5py.h5d.DatasetID) -> int | None:
    """File offset of a dataset stored as plain contiguous bytes, else None.

    HDF5 reports no offset for chunked (hence any filtered), compact, external
    or unallocated storage, so an offset means the raw bytes are in place.
    """
    dt = ds.dtype
    if dt.kind not in "fiub" or dt.fields is not None or dt.subdtype is not None:
        return None
    return ds.get_offset()


def _read_via_h5py(ds: h5py.h5d.DatasetID, key: str, path: Path) -> np.ndarray:
    arr = np.empty(ds.shape, dtype=ds.dtype.newbyteorder("="))
    if arr.size:
        ds.read(h5py.h5s.ALL, h5py.h5s.ALL, arr)
    return arr


def _read_contiguous(
    path: Path, layout: list[tuple[str, int | None, np.dtype, tuple[int, ...]]]
) -> dict[str, np.ndarray]:
    sizes = [int(np.prod(shape, dtype=np.int64)) * dt.itemsize for _, _, dt, shape in layout]
    starts = [int(off) for _, off, _, _ in layout]
    lo = min(starts)
    hi = max(s + n for s, n in zip(starts, sizes, strict=True))
    needed = sum(sizes)
    with open(path, "rb") as fh:
        fd = fh.fileno()
        if hi - lo <= 2 * needed + (1 << 20):
            # One read of the span holding every wanted dataset.
            buf = bytearray(hi - lo)
            got = os.preadv(fd, [buf], lo)
            base = lo
            chunks = None
        else:
            # Sparse (e.g. only a few keys of a large file): one read per dataset.
            buf, got, base = bytearray(), 0, 0
            chunks = []
            for s, n in zip(starts, sizes, strict=True):
                b = bytearray(n)
                chunks.append((b, os.preadv(fd, [b], s)))
    out = {}
    for i, (key, start, dt, shape) in enumerate(layout):
        n = sizes[i]
        if chunks is None:
            if start - base + n > got:
                raise ModelParamsError(f"{path}: truncated file (key {key!r} runs past its end)")
            a = np.frombuffer(buf, dt, n // dt.itemsize, start - base)
        else:
            b, g = chunks[i]
            if g < n:
                raise ModelParamsError(f"{path}: truncated file (key {key!r} runs past its end)")
            a = np.frombuffer(b, dt)
        if not dt.isnative:
            a = a.astype(dt.newbyteorder("="))
        out[key] = a.reshape(shape)
    return out


def _file_array(name: str, value: object) -> np.ndarray:
    a = np.asarray(value)
    if name == _GLOBAL_STEP_NAME:
        if a.dtype.kind not in "iu" or a.shape != ():
            msg = f"{name} must be an integer scalar, got {a.dtype} {a.shape}"
            raise ModelParamsError(msg)
        return a.astype(np.int64)
    if a.dtype.kind not in "fiu":
        raise ModelParamsError(f"tensor {name!r}: cannot store dtype {a.dtype} in model_params")
    return np.ascontiguousarray(a, dtype=np.float32) if a.ndim else a.astype(np.float32)


def write_model_params(
    path: str | os.PathLike, tensors_by_checkpoint_name: Mapping[str, np.ndarray]
) -> None:
    """Write ``model_params`` like ``run_lfads.py --kind=write_model_params``.

    Parameters
    ----------
    path
        Destination file (replaced atomically).
    tensors_by_checkpoint_name
        Checkpoint name (``LFADS/gen/gen_2_fac/W``) -> array, normally every
        tensor of a checkpoint (weights, Adam slots, scalars). Written in this
        order as float32, ``LFADS/global_step`` as int64.

    Raises
    ------
    ModelParamsError
        Two names map to the same HDF5 key, or a value is not numeric.
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in tensors_by_checkpoint_name.items():
        key = hdf5_key(name)
        if key in arrays:
            raise ModelParamsError(f"two tensors map to the HDF5 key {key!r} (one is {name!r})")
        arrays[key] = _file_array(name, value)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        for key, a in arrays.items():
            hf.create_dataset(key, data=a)


def write_params_export(
    path: str | os.PathLike,
    fields: Mapping[str, np.ndarray],
    per_dataset: Mapping[str, Mapping[str, np.ndarray]],
    dataset_names: Sequence[str],
) -> None:
    """Write a trained-parameters export (MATLAB ``exportToHDF5`` layout), atomically.

    ``fields`` go to ``/<field>``, ``per_dataset[field][ds]`` to ``/<field>/<ds>``
    and ``dataset_names`` to ``/dataset_names`` as variable-length UTF-8 strings.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset(
            "dataset_names",
            data=np.array(list(dataset_names), dtype=object),
            dtype=h5py.string_dtype("utf-8"),
        )
        for key, a in fields.items():
            hf.create_dataset(key, data=np.asarray(a))
        for key, by_ds in per_dataset.items():
            g = hf.create_group(key)
            for ds, a in by_ds.items():
                g.create_dataset(ds, data=np.asarray(a))
