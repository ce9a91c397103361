"""``inputInfo_<ds>.mat``: the split, data hash, time base and raw data of one dataset.

lfads-run-manager writes this MAT-file beside each ``lfads_<ds>.h5``
(run-manager.md §8.6) and reads it back to map LFADS outputs to trials. We
write it as a MATLAB v7.3 MAT-file (HDF5) so MATLAB's ``load`` reads it, with
the original variable names and MATLAB orientations:

=====================  =======================================================
``trainInds``          1 x nTrain double, 1-based
``validInds``          1 x nValid double, 1-based (MATLAB used uint16, which
                       saturates above 65535 trials)
``paramInputDataHash`` char, the data hash
``seq_timeVector``     T_orig x 1 double, start time of each original bin (ms)
``seq_binSizeMs``      double, original bin width (ms)
``conditionId``        nTrials x 1 double or cell of char; [] when unknown
``counts``             nNeurons x T_orig x nTrials double, all trials
``truth``              nNeurons x T_orig x nTrials double, all trials, when
                       known (MATLAB stored only the first trial)
``externalInputs``     nExt x T_orig x nTrials double, when present
=====================  =======================================================

:func:`read_input_info` reads these files and MATLAB-written ones (v7.3 via
h5py, older via scipy) and returns arrays in Python orientation
(trials x time x neurons).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import h5py
import numpy as np

from ..exceptions import DataError
from .matfile import read_mat, write_mat73

__all__ = [
    "InputInfo",
    "read_input_info",
    "read_input_info_hash",
    "validate_input_info",
    "write_input_info",
]

_MATLAB_NAMES = (
    "trainInds",
    "validInds",
    "paramInputDataHash",
    "seq_timeVector",
    "seq_binSizeMs",
    "conditionId",
    "counts",
    "truth",
    "externalInputs",
)


def _opt(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(x)


@attrs.frozen(eq=False)
class InputInfo:
    """Content of one ``inputInfo_<ds>.mat`` in Python orientation.

    Attributes
    ----------
    train_inds, valid_inds : int64 arrays
        1-based trial numbers of the split.
    data_hash : str
        ``paramInputDataHash``: the data hash the files were prepared for.
    time_ms : float64 array
        Start time of each bin at the original resolution.
    bin_ms : float
        Original bin width in milliseconds.
    condition_id : array or None
        One condition per trial (numbers or strings).
    counts, true_rates : arrays or None
        trials x time x neurons at the original resolution.
    external_inputs : array or None
        trials x time x n_ext at the original resolution.
    extras : dict
        Any other variable of the file (for MATLAB files: ``truth`` when it
        holds only the first trial, as the original wrote it).
    """

    train_inds: np.ndarray = attrs.field(converter=lambda x: np.asarray(x, dtype=np.int64).ravel())
    valid_inds: np.ndarray = attrs.field(converter=lambda x: np.asarray(x, dtype=np.int64).ravel())
    data_hash: str
    time_ms: np.ndarray = attrs.field(converter=lambda x: np.asarray(x, dtype=np.float64).ravel())
    bin_ms: float = attrs.field(converter=float)
    condition_id: np.ndarray | None = attrs.field(default=None, converter=_opt)
    counts: np.ndarray | None = attrs.field(default=None, converter=_opt)
    true_rates: np.ndarray | None = attrs.field(default=None, converter=_opt)
    external_inputs: np.ndarray | None = attrs.field(default=None, converter=_opt)
    extras: dict[str, Any] = attrs.field(factory=dict, converter=dict)

    @property
    def n_trials(self) -> int:
        return int(self.train_inds.size + self.valid_inds.size)


def _to_matlab_3d(a: np.ndarray) -> np.ndarray:
    """trials x time x dim -> MATLAB's dim x time x trials, as double."""
    return np.transpose(np.asarray(a, dtype=np.float64), (2, 1, 0))


def validate_input_info(path: str | os.PathLike, info: InputInfo) -> None:
    """Check ``info`` as :func:`write_input_info` would, without writing.

    Raises
    ------
    DataError
        Arrays whose trial or time counts disagree with the split and time vector.
    """
    path = Path(path)
    n = info.n_trials
    T = info.time_ms.size
    for what, arr in (
        ("counts", info.counts),
        ("true_rates", info.true_rates),
        ("external_inputs", info.external_inputs),
    ):
        if arr is not None and (arr.ndim != 3 or arr.shape[:2] != (n, T)):
            msg = f"{path}: {what} has shape {arr.shape}, expected ({n}, {T}, ...) for {n} trials and {T} time bins"
            raise DataError(msg)
    if info.condition_id is not None and info.condition_id.size != n:
        msg = f"{path}: {info.condition_id.size} condition ids for {n} trials"
        raise DataError(msg)
    clash = set(info.extras) & set(_MATLAB_NAMES)
    if clash:
        msg = f"{path}: extra variables {sorted(clash)} collide with standard inputInfo fields"
        raise DataError(msg)


def write_input_info(path: str | os.PathLike, info: InputInfo) -> None:
    """Write ``info`` as a MATLAB v7.3 MAT-file, atomically.

    Raises
    ------
    DataError
        As :func:`validate_input_info`.
    """
    path = Path(path)
    validate_input_info(path, info)
    variables: dict[str, Any] = {
        "trainInds": info.train_inds.astype(np.float64).reshape(1, -1),
        "validInds": info.valid_inds.astype(np.float64).reshape(1, -1),
        "paramInputDataHash": str(info.data_hash),
        "seq_timeVector": info.time_ms.reshape(-1, 1),
        "seq_binSizeMs": float(info.bin_ms),
    }
    cid = info.condition_id
    if cid is None:
        variables["conditionId"] = np.zeros((0, 0))
    elif cid.dtype.kind in "USO":
        variables["conditionId"] = [str(c) for c in cid.ravel()]
    else:
        variables["conditionId"] = cid.astype(np.float64).reshape(-1, 1)
    if info.counts is not None:
        variables["counts"] = _to_matlab_3d(info.counts)
    if info.true_rates is not None:
        variables["truth"] = _to_matlab_3d(info.true_rates)
    if info.external_inputs is not None:
        variables["externalInputs"] = _to_matlab_3d(info.external_inputs)
    variables.update(info.extras)
    write_mat73(path, variables)


def _from_matlab_3d(a: Any, n_trials: int) -> np.ndarray:
    """MATLAB dim x time x trials (trailing singleton trial dropped) -> trials x time x dim."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2 and n_trials == 1:
        a = a[:, :, None]
    return np.transpose(a, (2, 1, 0))


def _condition_ids(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    if isinstance(v, str):
        return np.array([v])
    a = np.asarray(v)
    if a.size == 0:
        return None
    if a.dtype == object:
        return np.array(["" if x is None else str(x) for x in a.ravel()], dtype=str)
    if a.dtype.kind in "US":
        return a.astype(str).ravel()
    a = a.astype(np.float64).ravel()
    if np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    return a


def read_input_info(path: str | os.PathLike) -> InputInfo:
    """Read an ``inputInfo_<ds>.mat`` written by lfads_runs or by MATLAB.

    Raises
    ------
    DataError
        Missing file, unreadable file, or missing ``trainInds``/``validInds``.
    MissingDependencyError
        A pre-v7.3 MATLAB file and no scipy.
    """
    path = Path(path)
    raw = read_mat(path)
    for key in ("trainInds", "validInds"):
        if key not in raw:
            msg = f"{path}: variable {key!r} is missing; is this an inputInfo file? (variables: {sorted(raw)})"
            raise DataError(msg)
    train = np.asarray(raw.pop("trainInds")).ravel()
    valid = np.asarray(raw.pop("validInds")).ravel()
    n = train.size + valid.size
    data_hash = raw.pop("paramInputDataHash", "")
    if not isinstance(data_hash, str):
        data_hash = "" if np.size(data_hash) == 0 else str(data_hash)
    time_ms = np.asarray(raw.pop("seq_timeVector", np.zeros(0)), dtype=np.float64).ravel()
    bin_raw = np.asarray(raw.pop("seq_binSizeMs", np.nan), dtype=np.float64).ravel()
    bin_ms = float(bin_raw[0]) if bin_raw.size else float("nan")
    cid = _condition_ids(raw.pop("conditionId", None))
    counts = raw.pop("counts", None)
    counts = None if counts is None or np.size(counts) == 0 else _from_matlab_3d(counts, n)
    truth = raw.pop("truth", None)
    true_rates = None
    if truth is not None and np.size(truth) > 0:
        t = np.asarray(truth)
        if t.ndim == 3 or n == 1:
            true_rates = _from_matlab_3d(t, n)
        else:
            raw["truth"] = t  # MATLAB's defect: only the first trial (neurons x time)
    ext = raw.pop("externalInputs", None)
    ext = None if ext is None or np.size(ext) == 0 else _from_matlab_3d(ext, n)
    return InputInfo(
        train_inds=train,
        valid_inds=valid,
        data_hash=data_hash,
        time_ms=time_ms,
        bin_ms=bin_ms,
        condition_id=cid,
        counts=counts,
        true_rates=true_rates,
        external_inputs=ext,
        extras=raw,
    )


def read_input_info_hash(path: str | os.PathLike) -> str | None:
    """``paramInputDataHash`` of an inputInfo file, cheaply; ``None`` when it cannot be read."""
    path = Path(path)
    try:
        if h5py.is_hdf5(path):
            raw = read_mat(path, names=["paramInputDataHash"])
        else:
            return None if not path.is_file() else read_input_info(path).data_hash or None
    except (DataError, ImportError):
        return None
    v = raw.get("paramInputDataHash")
    return v if isinstance(v, str) and v else None
