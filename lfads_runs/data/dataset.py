"""One recording session in memory: :class:`DatasetData`.

Every loader returns this record; the preparation step rebins, validates,
splits and exports it. It is the Python counterpart of what MATLAB's
``generateCountsForDataset`` returns (run-manager.md §1.2), with the array
orientation of the LFADS files: trials x time x neurons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from ..exceptions import DataError
from .cosmoothing import choose_heldout

__all__ = ["DatasetData", "normalize_condition_ids", "stack_trials"]


def stack_trials(value: Any, what: str, source: str) -> np.ndarray:
    """A 3-D trials x time x dim array from an array or a list of per-trial 2-D arrays.

    Raises
    ------
    DataError
        Trials of unequal length or width (the message names the first odd trial).
    """
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, Sequence) and len(value) and all(np.ndim(v) == 2 for v in value):
        shapes = [np.shape(v) for v in value]
        for i, s in enumerate(shapes):
            if s != shapes[0]:
                dims = "time steps" if s[0] != shapes[0][0] else "columns (neurons/inputs)"
                msg = (
                    f"{source}: {what} trials differ in their number of {dims}: "
                    f"trial 1 has shape {shapes[0]} (time x {what} dim), trial {i + 1} has {s}"
                )
                raise DataError(msg)
        arr = np.stack([np.asarray(v) for v in value])
    else:
        arr = np.asarray(value)
    if arr.dtype == object:
        msg = f"{source}: {what} is not a numeric array (ragged or mixed trials?)"
        raise DataError(msg)
    if arr.ndim != 3:
        msg = f"{source}: {what} must be trials x time x {'neurons' if what in ('counts', 'true_rates') else 'inputs'}, got an array of shape {arr.shape}"
        raise DataError(msg)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        msg = f"{source}: {what} must be numeric, got dtype {arr.dtype}"
        raise DataError(msg)
    if np.issubdtype(arr.dtype, np.complexfloating):
        msg = f"{source}: {what} must be real, got dtype {arr.dtype}"
        raise DataError(msg)
    return arr


def normalize_condition_ids(value: Any, n_trials: int, source: str) -> np.ndarray:
    """Condition ids as a 1-D numeric (int64/float64) or str array of length ``n_trials``.

    Numbers and strings may not be mixed. Missing conditions are NaN (numbers)
    or ``""`` (strings); ``None`` entries of a string list become ``""``.

    Raises
    ------
    DataError
        Wrong length, mixed types, or values that are neither numbers nor text.
    """
    if isinstance(value, np.ndarray) and value.dtype != object:
        arr = value
    else:
        items = (
            list(np.asarray(value, dtype=object).ravel()) if not isinstance(value, list) else value
        )
        kinds = set()
        for v in items:
            if v is None:
                continue
            if isinstance(v, str | bytes | np.bytes_):
                kinds.add("str")
            elif isinstance(v, int | float | np.number | bool | np.bool_):
                kinds.add("num")
            else:
                msg = f"{source}: condition id {v!r} is neither a number nor text"
                raise DataError(msg)
        if kinds == {"str", "num"}:
            msg = f"{source}: condition ids mix numbers and text; use one kind for all trials"
            raise DataError(msg)
        if kinds == {"str"}:
            arr = np.array(
                [
                    ""
                    if v is None
                    else (v.decode() if isinstance(v, bytes | np.bytes_) else str(v))
                    for v in items
                ],
                dtype=str,
            )
        else:
            arr = np.array([np.nan if v is None else v for v in items], dtype=np.float64)
    if arr.ndim > 1:
        if sum(s != 1 for s in arr.shape) > 1:
            msg = f"{source}: condition ids must be a vector, got shape {arr.shape}"
            raise DataError(msg)
        arr = arr.ravel()
    elif arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8")
    if arr.dtype.kind == "U":
        pass
    elif arr.dtype.kind in "iub":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
        whole = np.isfinite(arr)
        if whole.all() and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2**53):
            arr = arr.astype(np.int64)  # 1.0, 2.0, ... from MATLAB doubles
    else:
        msg = f"{source}: condition ids must be numbers or text, got dtype {arr.dtype}"
        raise DataError(msg)
    if arr.shape != (n_trials,):
        msg = f"{source}: {arr.size} condition ids for {n_trials} trials"
        raise DataError(msg)
    return arr


def _time_and_bin(
    time_ms: Any, bin_ms: Any, n_time: int, source: str
) -> tuple[np.ndarray | None, float]:
    t = None
    if time_ms is not None:
        t = np.asarray(time_ms, dtype=np.float64)
        if t.ndim > 1 and sum(s != 1 for s in t.shape) <= 1:
            t = t.ravel()
        if t.shape != (n_time,):
            msg = f"{source}: time vector has shape {t.shape}, expected ({n_time},) to match the counts' {n_time} time bins"
            raise DataError(msg)
        if not np.all(np.isfinite(t)):
            msg = f"{source}: time vector contains NaN or infinite values"
            raise DataError(msg)
    if bin_ms is None:
        if t is not None and n_time >= 2:
            bin_ms = t[1] - t[0]  # MATLAB: binWidthMs = timeVecMs(2) - timeVecMs(1)
        else:
            bin_ms = 1.0
    try:
        b = float(np.asarray(bin_ms, dtype=np.float64).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        msg = f"{source}: bin size {bin_ms!r} is not a number"
        raise DataError(msg) from None
    if not (np.isfinite(b) and b > 0):
        msg = f"{source}: bin size must be a positive number of milliseconds, got {b}"
        raise DataError(msg)
    if t is not None and n_time >= 2:
        d = np.diff(t)
        if not np.allclose(d, b, rtol=1e-6, atol=1e-9 * max(1.0, b)):
            msg = (
                f"{source}: time vector must be evenly spaced by the bin size {b:g} ms, "
                f"but its steps range from {d.min():g} to {d.max():g} ms"
            )
            raise DataError(msg)
    return t, b


@attrs.frozen(eq=False, init=False)
class DatasetData:
    """Binned data of one dataset (session), trials x time x neurons.

    Parameters
    ----------
    counts : array or list of 2-D arrays
        Spike counts per bin (Poisson) or real values (Gaussian), trials x time x
        neurons; a list of time x neurons arrays (one per trial) is stacked.
    bin_ms : float, optional
        Bin width in milliseconds. Default: the step of ``time_ms``, else 1.
    time_ms : array, optional
        Start time of each bin in milliseconds (evenly spaced by ``bin_ms``).
    condition_id : array or list, optional
        One condition per trial, numbers or strings (not mixed). NaN or ``""``
        marks a trial without condition.
    true_rates : array, optional
        Ground-truth rates per bin (same shape as counts), for synthetic data.
    external_inputs : array, optional
        trials x time x n_ext inputs fed to LFADS.
    heldout_neurons : array, optional
        0-based neurons the encoders never read (co-smoothing), e.g. from NLB
        tensors; a dataset's ``heldout_neurons`` in the YAML takes precedence.
    source : str
        Where the data came from (file path), used in error messages.

    Raises
    ------
    DataError
        Shapes do not agree (the message names the field and the source).
    """

    counts: np.ndarray
    bin_ms: float
    time_ms: np.ndarray | None
    condition_id: np.ndarray | None
    true_rates: np.ndarray | None
    external_inputs: np.ndarray | None
    source: str
    heldout_neurons: np.ndarray | None

    def __init__(
        self,
        counts: Any,
        *,
        bin_ms: float | None = None,
        time_ms: Any = None,
        condition_id: Any = None,
        true_rates: Any = None,
        external_inputs: Any = None,
        source: str = "dataset",
        heldout_neurons: Any = None,
    ) -> None:
        c = stack_trials(counts, "counts", source)
        n, T, _ = c.shape
        t, b = _time_and_bin(time_ms, bin_ms, T, source)
        cid = None if condition_id is None else normalize_condition_ids(condition_id, n, source)
        truth = None
        if true_rates is not None:
            truth = stack_trials(true_rates, "true_rates", source)
            if truth.shape != c.shape:
                msg = f"{source}: true_rates has shape {truth.shape}, expected the counts' shape {c.shape}"
                raise DataError(msg)
        ext = None
        if external_inputs is not None:
            ext = stack_trials(external_inputs, "external_inputs", source)
            if ext.shape[:2] != (n, T):
                msg = f"{source}: external_inputs has shape {ext.shape}, expected ({n}, {T}, n_inputs) to match the counts"
                raise DataError(msg)
        self.__attrs_init__(
            counts=c,
            bin_ms=b,
            time_ms=t,
            condition_id=cid,
            true_rates=truth,
            external_inputs=ext,
            source=str(source),
            heldout_neurons=None
            if heldout_neurons is None
            else choose_heldout(
                c.shape[2], indices=list(np.asarray(heldout_neurons).reshape(-1)), where=source
            ),
        )

    @property
    def n_trials(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_time(self) -> int:
        return int(self.counts.shape[1])

    @property
    def n_neurons(self) -> int:
        return int(self.counts.shape[2])

    @property
    def n_ext_inputs(self) -> int:
        return 0 if self.external_inputs is None else int(self.external_inputs.shape[2])

    @property
    def time_vector_ms(self) -> np.ndarray:
        """``time_ms``, or ``0, bin, 2·bin, …`` when the data came without one."""
        if self.time_ms is not None:
            return self.time_ms
        return np.arange(self.n_time, dtype=np.float64) * self.bin_ms

    def __repr__(self) -> str:
        parts = [
            f"{self.n_trials} trials x {self.n_time} bins x {self.n_neurons} neurons",
            f"bin {self.bin_ms:g} ms",
        ]
        if self.condition_id is not None:
            parts.append(f"{len(np.unique(self.condition_id))} conditions")
        if self.true_rates is not None:
            parts.append("true rates")
        if self.external_inputs is not None:
            parts.append(f"{self.n_ext_inputs} external inputs")
        return f"DatasetData({', '.join(parts)}; from {self.source})"
