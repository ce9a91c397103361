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

import numpy as np

from .._atomic import atomic_path
from .._jsonable import jsonable
from .._optional import require
from ..exceptions import DataError
from ..io.h5arrays import H5Array, H5Group, write_arrays
from .fitlog import FitLog
from .posterior_means import FIELD_UNITS, PosteriorMeans

__all__ = ["EXPORT_FORMAT", "EXPORT_FORMAT_VERSION", "export_run", "export_run_nwb"]

EXPORT_FORMAT = "lfads_runs.run_export"
EXPORT_FORMAT_VERSION = 1


def _version() -> str:
    from .._version import __version__

    return __version__


def _scalar_attr(value: Any) -> Any | None:
    """An HDF5-attribute-friendly scalar, or None when the value is not a scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int | float | str):
        return value
    return None


def _array(value: Any, where: str, attrs: Mapping[str, Any] | None = None) -> H5Array:
    """One exported array: strings as text, booleans as uint8, numbers compressed."""
    arr = np.asarray(value)
    if arr.dtype.kind in "US" or arr.dtype.kind == "O":
        arr = np.asarray([str(x) for x in arr.reshape(-1)], dtype=object).reshape(arr.shape)
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind not in "iuf":
        msg = f"cannot export {where}: unsupported dtype {arr.dtype}"
        raise DataError(msg)
    return H5Array(arr, attrs=attrs or {}, compress=True)


def _root_attrs(params_attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "lfads_runs_version": _version(),
        "orientation": "[trials, time, dim]",
    }
    data = jsonable(dict(params_attrs))
    out["run_params_json"] = json.dumps(data, sort_keys=True, allow_nan=True)
    for key, value in data.items():
        scalar = _scalar_attr(value)
        if scalar is not None and key not in out:
            out[key] = scalar
    return out


def _posterior_means_group(pm: PosteriorMeans) -> H5Group:
    attrs: dict[str, Any] = {}
    for key, value in pm.metadata().items():
        if value is None:
            continue
        scalar = _scalar_attr(value)
        attrs[key] = scalar if scalar is not None else json.dumps(jsonable(value))
    attrs["counts_to_hz"] = pm.counts_to_hz
    members = {
        name: _array(
            value,
            f"posterior means {pm.dataset}/{name}",
            {"units": FIELD_UNITS[name]} if name in FIELD_UNITS else None,
        )
        for name, value in pm.as_dict().items()
    }
    return H5Group(attrs, members)


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


def _model_params_group(params: Mapping[str, Any]) -> H5Group:
    attrs: dict[str, Any] = {}
    members: dict[str, H5Array | H5Group] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, Mapping):  # per-dataset values
            members[str(name)] = H5Group(
                members={
                    str(ds): _array(v, f"model_params {name}/{ds}")
                    for ds, v in value.items()
                    if v is not None
                }
            )
        elif isinstance(value, str | int | float | bool | np.generic):
            attrs[str(name)] = _scalar_attr(value)
        else:
            members[str(name)] = _array(value, f"model_params {name}")
    return H5Group(attrs, members)


def _fit_log_group(fit_log: FitLog) -> H5Group:
    members = {name: _array(v, f"fitlog {name}") for name, v in fit_log.as_dict().items()}
    attrs: dict[str, Any] = {"n_epochs": fit_log.n_epochs}
    if fit_log.lve_index is not None:
        attrs["lve_index"] = fit_log.lve_index
        attrs["step_lve"] = fit_log.step_lve
    if fit_log.path is not None:
        attrs["source_file"] = os.fspath(fit_log.path)
    return H5Group(attrs, members)


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
    members: dict[str, H5Group] = {}
    if posterior_means:
        members["posterior_means"] = H5Group(
            members={str(ds): _posterior_means_group(pm) for ds, pm in posterior_means.items()}
        )
    if trained_params is not None:
        members["model_params"] = _model_params_group(_trained_params_dict(trained_params))
    if fit_log is not None:
        members["fitlog"] = _fit_log_group(fit_log)
    write_arrays(path, H5Group(_root_attrs(params_attrs or {}), members))
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
    params_json = json.dumps(jsonable(dict(params_attrs or {})), sort_keys=True)
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
