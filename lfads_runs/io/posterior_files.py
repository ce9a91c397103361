"""Posterior output files ``model_runs_<ds>.h5_<split>_<kind>`` (lfads-model.md §9.3).

LFADS writes them with ``utils.write_data(..., compression="gzip")``: one flat HDF5
file, one dataset per key, no attributes, every array float64, gzip at h5py's
default level (4) with h5py's automatic chunking and no shuffle filter. This
module reads and writes exactly that, so files written by our engine and by
TensorFlow LFADS are interchangeable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from .._atomic import atomic_path
from ..exceptions import DataError, MissingOutputError
from ._damaged import damaged_file_errors

__all__ = ["read_posterior_file", "write_posterior_file"]

PathLike = str | os.PathLike


def write_posterior_file(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a posterior output file the way LFADS ``utils.write_data`` does.

    Parameters
    ----------
    path
        Destination file; replaced atomically (readers never see a partial file).
    arrays
        Key -> array. Every value is stored as float64 with gzip (level 4) and
        h5py's automatic chunks; scalars and empty arrays, which HDF5 cannot
        chunk, are stored uncompressed.

    Raises
    ------
    DataError
        A key is empty or contains ``/`` (the file is flat), or a value is not
        numeric.
    """
    path = Path(path)
    converted: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key or "/" in key:
            msg = f"posterior file {path}: key {key!r} must be a non-empty name without '/'"
            raise DataError(msg)
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            msg = (
                f"posterior file {path}: key {key!r} has dtype {arr.dtype}; "
                "expected a real numeric array (stored as float64)"
            )
            raise DataError(msg)
        converted[key] = arr.astype(np.float64, copy=False)

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, arr in converted.items():
            if arr.ndim == 0 or arr.size == 0:
                f.create_dataset(key, data=arr)
            else:
                f.create_dataset(key, data=arr, compression="gzip")


def read_posterior_file(path: PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read a posterior output file (any of LFADS's or ours).

    Parameters
    ----------
    path
        The ``model_runs_...`` file.
    keys
        Keys to read; ``None`` reads every top-level dataset.

    Returns
    -------
    dict
        Key -> array with the dtype stored in the file (float64 for LFADS), in
        the file's key order.

    Raises
    ------
    MissingOutputError
        The file does not exist.
    DataError
        The file is not readable HDF5, holds groups (it should be flat), or lacks
        a requested key.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"posterior file not found: {path}"
        raise MissingOutputError(msg)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        msg = f"posterior file {path} is not a readable HDF5 file: {exc}"
        raise DataError(msg) from exc
    with damaged_file_errors(DataError, path, "posterior file"), f:
        if keys is None:
            wanted = list(f.keys())
        else:
            wanted = list(keys)
            missing = [k for k in wanted if k not in f]
            if missing:
                msg = f"posterior file {path} lacks key(s) {missing}; it holds {sorted(f.keys())}"
                raise DataError(msg)
        out: dict[str, np.ndarray] = {}
        for key in wanted:
            obj = f[key]
            if not isinstance(obj, h5py.Dataset):
                msg = f"posterior file {path}: {key!r} is a group; expected a flat file of arrays"
                raise DataError(msg)
            out[key] = np.asarray(obj[()])
        return out
