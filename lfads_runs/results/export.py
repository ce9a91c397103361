"""Export of one run's results to a single self-describing HDF5 file (and optionally NWB).

HDF5 layout (arrays in ``[trials, time, dim]`` orientation, as in the LFADS files)::

    /                         attrs: format, format_version, lfads_runs_version,
                                     run_params_json (all parameters as JSON) and
                                     every scalar parameter as its own attribute
    /posterior_means/<ds>/    one dataset per field (attr ``units``); group attrs
                              dataset, kind, output_dist, bin_width_ms, counts_to_hz, ...
    /model_params/<name>      trained weights; per-dataset ones as <name>/<ds>
    /fitlog/<field>           one value per epoch; attrs lve_index, step_lve when known
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._atomic import atomic_path
from .._optional import require
from ..exceptions import DataError
from .fitlog import FitLog
from .posterior_means import FIELD_UNITS, PosteriorMeans

__all__ = ["EXPORT_FORMAT", "EXPORT_FORMAT_VERSION", "export_run", "export_run_nwb"]

EXPORT_FORMAT = "lfads_runs.run_export"
EXPORT_FORMAT_VERSION = 1
_STR = h5py.string_dtype()


def _version() -> str:
    from .._version import __version__

    return __version__


def _jsonable(value: Any) -> Any:
    """Parameters as plain JSON (numpy scalars/arrays, paths, tuples, sets converted)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _scalar_attr(value: Any) -> Any | None:
    """An HDF5-attribute-friendly scalar, or None when the value is not a scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int | float | str):
        return value
    return None


def _array_for_hdf5(value: Any, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in "US" or arr.dtype.kind == "O":
        return np.asarray([str(x) for x in arr.reshape(-1)], dtype=object).reshape(arr.shape)
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "iuf":
        msg = f"cannot export {where}: unsupported dtype {arr.dtype}"
        raise DataError(msg)
    return arr


def _write_array(group: h5py.Group, name: str, value: Any, where: str) -> h5py.Dataset:
    arr = _array_for_hdf5(value, where)
    if arr.dtype == object:
        return group.create_dataset(name, data=arr, dtype=_STR)
    if arr.ndim == 0 or arr.size == 0:
        return group.create_dataset(name, data=arr)
    return group.create_dataset(name, data=arr, compression="gzip", shuffle=True)


def _write_params_attrs(f: h5py.File, params_attrs: Mapping[str, Any]) -> None:
    data = _jsonable(dict(params_attrs))
    f.attrs["run_params_json"] = json.dumps(data, sort_keys=True, allow_nan=True)
    for key, value in data.items():
        scalar = _scalar_attr(value)
        if scalar is not None and key not in f.attrs:
            f.attrs[key] = scalar


def _write_posterior_means(group: h5py.Group, pm: PosteriorMeans) -> None:
    for key, value in pm.metadata().items():
        if value is None:
            continue
        scalar = _scalar_attr(value)
        group.attrs[key] = scalar if scalar is not None else json.dumps(_jsonable(value))
    group.attrs["counts_to_hz"] = pm.counts_to_hz
    for name, value in pm.as_dict().items():
        ds = _write_array(group, name, value, f"posterior means {pm.dataset}/{name}")
        if name in FIELD_UNITS:
            ds.attrs["units"] = FIELD_UNITS[name]


def _trained_params_dict(trained_params: Any) -> Mapping[str, Any]:
    if isinstance(trained_params, Mapping):
        return trained_params
    as_dict = getattr(trained_params, "as_dict", None)
    if as_dict is None:
        msg = (
            "trained_params must be a mapping or have an as_dict() method "
            f"(ModelTrainedParameters); got {type(trained_params).__name__}"
        )
        raise DataError(msg)
    return as_dict()


def _write_model_params(group: h5py.Group, params: Mapping[str, Any]) -> None:
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, Mapping):  # per-dataset values
            sub = group.create_group(str(name))
            for ds, v in value.items():
                if v is not None:
                    _write_array(sub, str(ds), v, f"model_params {name}/{ds}")
        elif isinstance(value, str | int | float | bool | np.generic):
            group.attrs[str(name)] = _scalar_attr(value)
        else:
            _write_array(group, str(name), value, f"model_params {name}")


def _write_fit_log(group: h5py.Group, fit_log: FitLog) -> None:
    for name, value in fit_log.as_dict().items():
        _write_array(group, name, value, f"fitlog {name}")
    group.attrs["n_epochs"] = fit_log.n_epochs
    if fit_log.lve_index is not None:
        group.attrs["lve_index"] = fit_log.lve_index
        group.attrs["step_lve"] = fit_log.step_lve
    if fit_log.path is not None:
        group.attrs["source_file"] = os.fspath(fit_log.path)


def export_run(
    path: str | os.PathLike,
    *,
    posterior_means: Mapping[str, PosteriorMeans] | None,
    trained_params: Any = None,
    fit_log: FitLog | None = None,
    params_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write one run's results to a single HDF5 file (atomically).

    Parameters
    ----------
    path
        Output file (replaced if it exists).
    posterior_means
        Dataset name -> :class:`PosteriorMeans`, written under ``/posterior_means/<ds>``.
    trained_params
        Trained weights: an object with ``as_dict()`` (``ModelTrainedParameters``)
        or a mapping name -> array, or name -> {dataset: array} for per-dataset
        weights; written under ``/model_params``. ``None`` skips them.
    fit_log
        Written under ``/fitlog`` when given.
    params_attrs
        Run parameters (and any run metadata such as the run name and hashes):
        stored as JSON in the root attribute ``run_params_json`` and, for scalar
        values, one root attribute each.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    DataError
        A value cannot be stored (e.g. an unsupported dtype); nothing is written.
    """
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = EXPORT_FORMAT
        f.attrs["format_version"] = EXPORT_FORMAT_VERSION
        f.attrs["lfads_runs_version"] = _version()
        f.attrs["orientation"] = "[trials, time, dim]"
        _write_params_attrs(f, params_attrs or {})
        if posterior_means:
            group = f.create_group("posterior_means")
            for ds, pm in posterior_means.items():
                _write_posterior_means(group.create_group(str(ds)), pm)
        if trained_params is not None:
            _write_model_params(
                f.create_group("model_params"), _trained_params_dict(trained_params)
            )
        if fit_log is not None:
            _write_fit_log(f.create_group("fitlog"), fit_log)
    return path


_NWB_COLUMNS = (
    "factors",
    "rates",
    "means",
    "variances",
    "generator_states",
    "generator_ics",
    "controller_outputs",
    "post_g0_mean",
    "post_g0_logvar",
    "costs",
    "nll_bound_vaes",
    "nll_bound_iwaes",
    "truth",
)


def export_run_nwb(
    path: str | os.PathLike,
    *,
    posterior_means: Mapping[str, PosteriorMeans],
    params_attrs: Mapping[str, Any] | None = None,
    identifier: str | None = None,
    session_description: str = "LFADS posterior means exported by lfads_runs",
    session_start_time: _dt.datetime | None = None,
) -> Path:
    """Write posterior means to an NWB file (needs the ``nwb`` extra, pynwb).

    Each dataset becomes a ``DynamicTable`` named ``posterior_means_<ds>`` in the
    processing module ``lfads``, one row per trial (original order) with columns
    ``trial_number`` (1-based), ``split``, ``condition_id`` when known, and one
    array column per field (``[T, dim]`` per row; units in each column's
    description). The run parameters are stored as JSON in the module description.

    Raises
    ------
    MissingDependencyError
        pynwb is not installed.
    """
    pynwb = require("pynwb", "NWB export")
    from hdmf.common import DynamicTable, VectorData

    start = session_start_time or _dt.datetime.now(_dt.timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=_dt.timezone.utc)
    nwb = pynwb.NWBFile(
        session_description=session_description,
        identifier=identifier or f"lfads_runs-{start.isoformat()}",
        session_start_time=start,
    )
    params_json = json.dumps(_jsonable(dict(params_attrs or {})), sort_keys=True)
    module = nwb.create_processing_module(
        name="lfads", description=f"LFADS results; run parameters: {params_json}"
    )
    for ds, pm in posterior_means.items():
        n = pm.n_trials
        split = np.where(pm.is_valid_trial, "valid", "train").astype(object)
        columns = [
            VectorData(name="trial_number", description="1-based original trial number",
                       data=np.arange(1, n + 1)),
            VectorData(name="split", description="train or valid", data=split),
        ]  # fmt: skip
        if pm.condition_ids is not None:
            ids = pm.condition_ids
            data = ids.astype(object).astype(str) if ids.dtype.kind in "OUS" else ids
            columns.append(VectorData(name="condition_id", description="condition", data=data))
        for name in _NWB_COLUMNS:
            value = getattr(pm, name)
            if value is None:
                continue
            unit = FIELD_UNITS.get(name, "")
            columns.append(VectorData(name=name, description=f"{name} ({unit})", data=value))
        table = DynamicTable(
            name=f"posterior_means_{ds}",
            description=(
                f"{pm.kind} of dataset {ds}; bin width {pm.bin_width_ms} ms; time of each bin "
                f"start (ms): {pm.time_ms.tolist()}; output_dist {pm.output_dist}"
            ),
            columns=columns,
        )
        module.add(table)
    path = Path(path)
    with atomic_path(path, suffix=".tmp.nwb") as tmp, pynwb.NWBHDF5IO(os.fspath(tmp), "w") as io:
        io.write(nwb)
    return path
