"""LFADS input files ``lfads_<ds>.h5``: one flat HDF5 file per dataset.

The layout is the one lfads-run-manager's ``export_spikes`` writes and the
TensorFlow LFADS ``read_datasets`` reads (run-manager.md §8.5, lfads-model.md
§10): trials x time x neurons arrays, 1-based float64 trial indices, an
optional alignment matrix and bias. Three-dimensional arrays are stored like
the reference files: chunked by up to 20 trials, shuffle filter, gzip level 9.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import h5py
import numpy as np

from .._atomic import atomic_path
from ..exceptions import DataError
from ._damaged import damaged_file_errors

__all__ = [
    "LfadsInput",
    "InputSummary",
    "find_input_files",
    "read_lfads_input",
    "read_input_summary",
    "write_lfads_input",
    "validate_lfads_input",
    "input_from_mapping",
    "KNOWN_KEYS",
]

#: Keys with a field of their own in :class:`LfadsInput`; any other key is an extra.
KNOWN_KEYS = (
    "train_data",
    "valid_data",
    "train_ext_input",
    "valid_ext_input",
    "train_truth",
    "valid_truth",
    "alignment_matrix_cxf",
    "alignment_bias_c",
    "train_inds",
    "valid_inds",
    "conversion_factor",
)

_GZIP_LEVEL = 9
_CHUNK_TRIALS = 20  # the reference files use chunks of 20 trials x whole trial
_MAX_CHUNK_BYTES = 8 * 2**20  # keep chunks reasonable for very long/wide trials


def _arr(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(x)


@attrs.frozen(eq=False)
class LfadsInput:
    """Content of one LFADS input file (arrays in the file's dtype; ``None`` when absent).

    Attributes
    ----------
    train_data, valid_data : ndarray
        Counts (integer, Poisson) or values (float, Gaussian), trials x time x neurons.
    train_ext_input, valid_ext_input : ndarray or None
        External inputs, trials x time x n_ext.
    train_truth, valid_truth : ndarray or None
        True rates per bin (for plotting), same shape as the data.
    alignment_matrix_cxf : ndarray or None
        Read-in initialisation, neurons x factors.
    alignment_bias_c : ndarray or None
        Per-neuron mean that LFADS subtracts before the read-in, (neurons,).
    train_inds, valid_inds : ndarray or None
        1-based positions of the trials in the original trial list (float64).
    conversion_factor : ndarray or None
        ``1/rebin``, shape (1,).
    extras : dict
        Any other key of the file.
    """

    train_data: np.ndarray = attrs.field(converter=np.asarray)
    valid_data: np.ndarray = attrs.field(converter=np.asarray)
    train_ext_input: np.ndarray | None = attrs.field(default=None, converter=_arr)
    valid_ext_input: np.ndarray | None = attrs.field(default=None, converter=_arr)
    train_truth: np.ndarray | None = attrs.field(default=None, converter=_arr)
    valid_truth: np.ndarray | None = attrs.field(default=None, converter=_arr)
    alignment_matrix_cxf: np.ndarray | None = attrs.field(default=None, converter=_arr)
    alignment_bias_c: np.ndarray | None = attrs.field(default=None, converter=_arr)
    train_inds: np.ndarray | None = attrs.field(default=None, converter=_arr)
    valid_inds: np.ndarray | None = attrs.field(default=None, converter=_arr)
    conversion_factor: np.ndarray | None = attrs.field(default=None, converter=_arr)
    extras: dict[str, np.ndarray] = attrs.field(factory=dict, converter=dict)

    def as_dict(self) -> dict[str, np.ndarray]:
        """All present arrays by file key (extras included)."""
        out = {k: getattr(self, k) for k in KNOWN_KEYS if getattr(self, k) is not None}
        out.update(self.extras)
        return out


@attrs.frozen
class InputSummary:
    """Shapes of one input file, read without loading the data."""

    n_train: int
    n_valid: int
    num_steps: int
    n_neurons: int
    dtype: np.dtype
    has_alignment_matrix: bool
    has_alignment_bias: bool
    ext_input_dim: int  #: 0 when the file holds no external inputs


def find_input_files(data_dir: str | os.PathLike, stem: str = "lfads") -> dict[str, Path]:
    """Input files of a data folder, as LFADS finds them.

    LFADS loads every file whose name starts with ``stem`` and names the dataset
    by dropping ``len(stem) + 1`` characters: ``lfads_dataset001.h5`` is the
    dataset ``dataset001.h5``.

    Returns
    -------
    dict
        LFADS dataset name -> path, sorted by name.

    Raises
    ------
    DataError
        ``data_dir`` is not a folder.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        msg = f"LFADS input folder {data_dir} does not exist or is not a folder"
        raise DataError(msg)
    found = {}
    for entry in data_dir.iterdir():
        if entry.name.startswith(stem) and entry.is_file():
            found[entry.name[len(stem) + 1 :]] = entry
    return dict(sorted(found.items()))


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        msg = f"LFADS input file {path} does not exist"
        raise DataError(msg) from None
    except OSError as exc:
        msg = f"cannot read LFADS input file {path} as HDF5: {exc}"
        raise DataError(msg) from exc


def read_lfads_input(path: str | os.PathLike) -> LfadsInput:
    """Read a whole ``lfads_<ds>.h5`` file.

    Raises
    ------
    DataError
        The file is missing, not HDF5, lacks ``train_data``/``valid_data`` or
        holds a group instead of an array.
    """
    path = Path(path)
    with damaged_file_errors(DataError, path, "LFADS input file"), _open(path) as f:
        arrays = {}
        for key, obj in f.items():
            if not isinstance(obj, h5py.Dataset):
                msg = f"{path}: key {key!r} is a group; LFADS input files are flat"
                raise DataError(msg)
            arrays[key] = obj[()]
    for key in ("train_data", "valid_data"):
        if key not in arrays:
            msg = f"{path}: required key {key!r} is missing (keys: {sorted(arrays)})"
            raise DataError(msg)
    return input_from_mapping(arrays)


def read_input_summary(path: str | os.PathLike) -> InputSummary:
    """Shapes, dtype and optional keys of an input file, without reading the data.

    Raises
    ------
    DataError
        As :func:`read_lfads_input`, or when ``train_data`` is not 3-D.
    """
    path = Path(path)
    with damaged_file_errors(DataError, path, "LFADS input file"), _open(path) as f:
        for key in ("train_data", "valid_data"):
            if key not in f:
                msg = f"{path}: required key {key!r} is missing (keys: {sorted(f)})"
                raise DataError(msg)
        tr, va = f["train_data"], f["valid_data"]
        if tr.ndim != 3 or va.ndim != 3:
            msg = f"{path}: train_data and valid_data must be trials x time x neurons, got shapes {tr.shape} and {va.shape}"
            raise DataError(msg)
        ext = f["train_ext_input"].shape[2] if "train_ext_input" in f else 0
        return InputSummary(
            n_train=int(tr.shape[0]),
            n_valid=int(va.shape[0]),
            num_steps=int(tr.shape[1]),
            n_neurons=int(tr.shape[2]),
            dtype=tr.dtype,
            has_alignment_matrix="alignment_matrix_cxf" in f,
            has_alignment_bias="alignment_bias_c" in f,
            ext_input_dim=int(ext),
        )


def _file_dtype(key: str, a: np.ndarray) -> np.dtype:
    """The dtype lfads-run-manager stores: int64 counts, uint8 logicals, float64 else."""
    if a.dtype == np.bool_:
        return np.dtype(np.uint8)
    if key in ("train_data", "valid_data") and np.issubdtype(a.dtype, np.integer):
        return np.dtype(np.int64)
    if not (np.issubdtype(a.dtype, np.number)):
        msg = f"key {key!r}: cannot store arrays of dtype {a.dtype} (numbers or logicals only)"
        raise DataError(msg)
    if np.issubdtype(a.dtype, np.complexfloating):
        msg = f"key {key!r}: complex values cannot be stored"
        raise DataError(msg)
    return np.dtype(np.float64)


def validate_lfads_input(path: str | os.PathLike, inp: LfadsInput) -> dict[str, np.ndarray]:
    """Check ``inp`` as :func:`write_lfads_input` would, without writing.

    Returns
    -------
    dict
        Key -> array converted to the dtype and shape stored in the file.

    Raises
    ------
    DataError
        Inconsistent shapes or unsupported dtypes (``path`` and the key are named).
    """
    path = Path(path)
    arrays = inp.as_dict()
    clash = set(inp.extras) & set(KNOWN_KEYS)
    if clash:
        msg = f"{path}: extra keys {sorted(clash)} collide with standard LFADS input keys"
        raise DataError(msg)

    def bad(msg: str) -> DataError:
        return DataError(f"{path}: {msg}")

    tr, va = arrays["train_data"], arrays["valid_data"]
    if tr.ndim != 3 or va.ndim != 3:
        raise bad(
            f"train_data and valid_data must be trials x time x neurons, got {tr.shape} and {va.shape}"
        )
    if tr.shape[1:] != va.shape[1:]:
        raise bad(f"train_data {tr.shape} and valid_data {va.shape} differ in time or neurons")
    if np.issubdtype(tr.dtype, np.integer) != np.issubdtype(va.dtype, np.integer):
        raise bad(
            f"train_data ({tr.dtype}) and valid_data ({va.dtype}) must both be integer or both float"
        )
    T, N = tr.shape[1:]
    for split, data in (("train", tr), ("valid", va)):
        n = data.shape[0]
        truth = arrays.get(f"{split}_truth")
        if truth is not None and truth.shape != data.shape:
            raise bad(f"{split}_truth has shape {truth.shape}, expected {data.shape}")
        ext = arrays.get(f"{split}_ext_input")
        if ext is not None and (ext.ndim != 3 or ext.shape[:2] != (n, T)):
            raise bad(f"{split}_ext_input has shape {ext.shape}, expected ({n}, {T}, n_ext)")
        inds = arrays.get(f"{split}_inds")
        if inds is not None and inds.shape != (n,):
            raise bad(f"{split}_inds has shape {inds.shape}, expected ({n},)")
    if ("train_ext_input" in arrays) != ("valid_ext_input" in arrays):
        raise bad("train_ext_input and valid_ext_input must be given together")
    if "train_ext_input" in arrays and (
        arrays["train_ext_input"].shape[2] != arrays["valid_ext_input"].shape[2]
    ):
        raise bad("train_ext_input and valid_ext_input differ in their number of inputs")
    mat = arrays.get("alignment_matrix_cxf")
    if mat is not None and (mat.ndim != 2 or mat.shape[0] != N):
        raise bad(f"alignment_matrix_cxf has shape {mat.shape}, expected ({N}, factors)")
    bias = arrays.get("alignment_bias_c")
    if bias is not None and bias.shape != (N,):
        raise bad(f"alignment_bias_c has shape {bias.shape}, expected ({N},)")
    cf = arrays.get("conversion_factor")
    if cf is not None and cf.size != 1:
        raise bad(f"conversion_factor must hold one value, got shape {cf.shape}")
    out = {}
    for key, a in arrays.items():
        try:
            dt = _file_dtype(key, a)
        except DataError as exc:
            raise bad(str(exc)) from None
        if key == "conversion_factor" or a.ndim == 0:
            a = a.reshape(1)
        out[key] = np.ascontiguousarray(a, dtype=dt)
    return out


def _chunks(a: np.ndarray) -> tuple[int, ...]:
    row_bytes = max(1, int(np.prod(a.shape[1:])) * a.itemsize)
    rows = min(_CHUNK_TRIALS, a.shape[0], max(1, _MAX_CHUNK_BYTES // row_bytes))
    return (max(rows, 1), *a.shape[1:])


def write_lfads_input(path: str | os.PathLike, inp: LfadsInput) -> None:
    """Write ``inp`` to ``path`` atomically, with lfads-run-manager's keys and dtypes.

    Integer data are stored as int64 (Poisson), float data as float64
    (Gaussian); every other array as float64 except logicals (uint8). Arrays
    with three or more dimensions are gzip-compressed like the reference files.

    Raises
    ------
    DataError
        Inconsistent shapes (the message names the key) or unsupported dtypes.
    """
    path = Path(path)
    arrays = validate_lfads_input(path, inp)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key in sorted(arrays):
            a = arrays[key]
            if a.ndim >= 3 and a.size > 0:
                f.create_dataset(
                    key,
                    data=a,
                    chunks=_chunks(a),
                    compression="gzip",
                    compression_opts=_GZIP_LEVEL,
                    shuffle=True,
                )
            else:
                f.create_dataset(key, data=a)


def input_from_mapping(arrays: Mapping[str, np.ndarray]) -> LfadsInput:
    """Build an :class:`LfadsInput` from a key -> array mapping (unknown keys become extras)."""
    arrays = dict(arrays)
    known = {k: arrays.pop(k) for k in KNOWN_KEYS if k in arrays}
    return LfadsInput(**known, extras=arrays)
