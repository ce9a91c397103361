"""Loading one dataset (session) into :class:`~lfads_runs.data.dataset.DatasetData`.

Sources, picked by the file suffix or an explicit ``kind``:

``npz``
    numpy ``.npz`` archive with named arrays.
``hdf5``
    ``.h5``/``.hdf5`` file with named datasets (``group/name`` paths allowed).
``mat``
    MATLAB ``.mat``: v7.3 as HDF5, older versions through scipy. 3-D
    arrays are read in MATLAB's ``generateCountsForDataset`` orientation,
    trials x neurons x time, unless ``orientation`` says otherwise. The
    lfads-run-manager demo files (``spikes``, ``timeMs``, ``conditionId``,
    ``true_rates``) load without any key mapping.
``nwb``
    Neurodata Without Borders through pynwb (extra ``nwb``): the units' spike
    times binned into trials from the trials table.
a user function
    ``loader="package.module:function"``, the no-code counterpart of MATLAB's
    ``generateCountsForDataset`` override (a :class:`~lfads_runs.Run` subclass has
    that very hook).

Each field is looked up under the first present of its default keys
(:data:`DEFAULT_KEYS`); ``keys={"counts": "my_spikes", "true_rates": None}``
overrides a key or switches a field off.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..exceptions import ConfigError, DataError, MissingDependencyError
from ..io.h5arrays import open_arrays
from ..io.matfile import read_mat
from .dataset import DatasetData

__all__ = [
    "DatasetData",
    "FIELDS",
    "DEFAULT_KEYS",
    "LOADERS",
    "LOADER_OPTIONS",
    "SUFFIX_KINDS",
    "ORIENTATIONS",
    "load_dataset",
    "load_npz",
    "load_hdf5",
    "load_mat",
    "load_nwb",
    "load_with_function",
    "load_from_options",
    "KIND_ALIASES",
]

#: Fields of :class:`DatasetData` a file can provide.
FIELDS = ("counts", "time_ms", "condition_id", "true_rates", "external_inputs", "bin_ms")

#: Keys tried, in order, for each field when ``keys`` does not name one.
DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "counts": ("counts", "spikes"),
    "time_ms": ("time_ms", "timeMs", "timeVecMs"),
    "condition_id": ("condition_id", "conditionId"),
    "true_rates": ("true_rates", "truth"),
    "external_inputs": ("external_inputs", "externalInputs"),
    "bin_ms": ("bin_ms", "binMs", "binWidthMs"),
}

#: Axis orders of 3-D arrays in files.
ORIENTATIONS = ("trials_time_neurons", "trials_neurons_time")

SUFFIX_KINDS = {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".mat": "mat", ".nwb": "nwb"}

#: Other spellings accepted for ``kind`` (the YAML ``format`` key).
KIND_ALIASES = {"h5": "hdf5", "hdf": "hdf5", "matlab": "mat"}

_ARRAY_FIELDS_3D = ("counts", "true_rates", "external_inputs")


def _resolve_keys(keys: Mapping[str, str | None] | None) -> dict[str, tuple[str, ...]]:
    out = dict(DEFAULT_KEYS)
    for field, key in (keys or {}).items():
        if field not in FIELDS:
            close = difflib.get_close_matches(field, FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msg = f"keys: unknown field {field!r}{hint}; fields are {', '.join(FIELDS)}"
            raise ConfigError(msg)
        if key is None:
            out[field] = ()
        elif not isinstance(key, str) or not key:
            msg = f"keys.{field}: expected a key name or null, got {key!r}"
            raise ConfigError(msg)
        else:
            out[field] = (key,)
    if not out["counts"]:
        msg = "keys.counts cannot be null: every dataset needs counts"
        raise ConfigError(msg)
    return out


def _pick(
    available: Mapping[str, Any] | Callable[[str], Any],
    keys: dict[str, tuple[str, ...]],
    explicit: Mapping[str, str | None] | None,
    source: str,
    listing: list[str],
) -> dict[str, Any]:
    """Field -> raw value, from the first key present; explicit keys must exist."""
    get = available if callable(available) else available.get
    explicit = explicit or {}
    found: dict[str, Any] = {}
    for field, candidates in keys.items():
        for key in candidates:
            value = get(key)
            if value is not None:
                found[field] = value
                break
        else:
            if field in explicit and explicit[field] is not None:
                close = difflib.get_close_matches(explicit[field], listing, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                msg = f"{source}: key {explicit[field]!r} for {field} not found{hint}; the file holds {', '.join(listing) or 'nothing'}"
                raise DataError(msg)
            if field == "counts":
                msg = (
                    f"{source}: no counts found under {', '.join(repr(k) for k in candidates)}; "
                    f"the file holds {', '.join(listing) or 'nothing'} (map it with keys: {{counts: NAME}})"
                )
                raise DataError(msg)
    return found


def _orient(found: dict[str, Any], orientation: str, source: str) -> dict[str, Any]:
    if orientation not in ORIENTATIONS:
        msg = f"orientation must be one of {ORIENTATIONS}, got {orientation!r}"
        raise ConfigError(msg)
    out = dict(found)
    for field in _ARRAY_FIELDS_3D:
        a = out.get(field)
        if a is None:
            continue
        a = np.asarray(a)
        if a.ndim != 3:
            axes = orientation.replace("_", " x ")
            msg = f"{source}: {field} must be a 3-D array ({axes}), got shape {a.shape}"
            raise DataError(msg)
        if orientation == "trials_neurons_time":
            a = np.transpose(a, (0, 2, 1))
        out[field] = a
    t = out.get("time_ms")
    if t is not None and "counts" in out:
        n_t = np.size(t)
        c = out["counts"]
        if n_t != c.shape[1] and n_t == c.shape[2]:
            other = [o for o in ORIENTATIONS if o != orientation][0]
            msg = (
                f"{source}: the time vector has {n_t} entries but counts read as {orientation} "
                f"have {c.shape[1]} time bins; the file seems to be {other}: set orientation: {other}"
            )
            raise DataError(msg)
    return out


def _scalar(value: Any, what: str, source: str) -> float:
    a = np.asarray(value, dtype=np.float64).ravel()
    if a.size != 1:
        msg = f"{source}: {what} must be a single number, got {a.size} values"
        raise DataError(msg)
    return float(a[0])


def _make(found: dict[str, Any], source: str, bin_ms_option: float | None) -> DatasetData:
    bin_ms = None
    if "bin_ms" in found:
        bin_ms = _scalar(found["bin_ms"], "bin_ms", source)
    if bin_ms_option is not None:
        if bin_ms is not None and not np.isclose(bin_ms, float(bin_ms_option)):
            msg = f"{source}: the file says bin_ms = {bin_ms:g} but the configuration says {bin_ms_option:g}"
            raise DataError(msg)
        bin_ms = float(bin_ms_option)
    return DatasetData(
        found["counts"],
        bin_ms=bin_ms,
        time_ms=found.get("time_ms"),
        condition_id=found.get("condition_id"),
        true_rates=found.get("true_rates"),
        external_inputs=found.get("external_inputs"),
        source=source,
    )


def load_npz(
    path: Path,
    *,
    keys: Mapping[str, str | None] | None = None,
    orientation: str = "trials_time_neurons",
    bin_ms: float | None = None,
) -> DatasetData:
    """Load a numpy ``.npz`` archive (arrays stored without pickling)."""
    resolved = _resolve_keys(keys)
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)

            def get(key: str) -> Any:
                if key not in z.files:
                    return None
                try:
                    return z[key]
                except ValueError as exc:  # object arrays need pickle
                    msg = f"{source}: array {key!r} is an object array; store numbers or strings (dtype str), not Python objects"
                    raise DataError(msg) from exc

            found = _pick(get, resolved, keys, source, names)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        msg = f"cannot read {path} as a numpy .npz archive: {exc}"
        raise DataError(msg) from exc
    return _make(_orient(found, orientation, source), source, bin_ms)


def load_hdf5(
    path: Path,
    *,
    keys: Mapping[str, str | None] | None = None,
    orientation: str = "trials_time_neurons",
    bin_ms: float | None = None,
) -> DatasetData:
    """Load an HDF5 file with named datasets."""
    resolved = _resolve_keys(keys)
    with open_arrays(path) as reader:
        found = _pick(reader.get, resolved, keys, str(path), reader.names)
    return _make(_orient(found, orientation, str(path)), str(path), bin_ms)


def _mat_struct_fallback(
    raw: dict[str, Any], resolved: dict[str, tuple[str, ...]]
) -> dict[str, Any]:
    """A file holding one struct whose fields are the data: look inside it."""
    if any(k in raw for cands in resolved.values() for k in cands):
        return raw
    structs = [v for v in raw.values() if isinstance(v, dict)]
    return structs[0] if len(structs) == 1 else raw


def _mat_get(raw: Mapping[str, Any], key: str) -> Any:
    value: Any = raw
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [("" if isinstance(v, np.ndarray) and v.size == 0 else v) for v in value.ravel()]
    return value


def load_mat(
    path: Path,
    *,
    keys: Mapping[str, str | None] | None = None,
    orientation: str = "trials_neurons_time",
    bin_ms: float | None = None,
) -> DatasetData:
    """Load a MATLAB ``.mat`` file (v7.3 with h5py, older with scipy).

    3-D arrays are taken as trials x neurons x time by default (MATLAB's
    ``generateCountsForDataset`` convention, and the demo's ``spikes``);
    ``struct.field`` keys reach into a struct variable.
    """
    resolved = _resolve_keys(keys)
    source = str(path)
    raw = _mat_struct_fallback(read_mat(path), resolved)
    found = _pick(lambda k: _mat_get(raw, k), resolved, keys, source, sorted(raw))
    return _make(_orient(found, orientation, source), source, bin_ms)


def load_nwb(
    path: Path,
    *,
    keys: Mapping[str, str | None] | None = None,
    align_to: str = "start_time",
    window_ms: tuple[float, float] | None = None,
    bin_ms: float = 1.0,
    condition_column: str | None = None,
) -> DatasetData:
    """Bin the spike times of an NWB file's units into trials.

    Parameters
    ----------
    align_to : str
        Column of the trials table holding each trial's alignment time in
        seconds (``start_time``, or an event such as ``move_onset_time``).
    window_ms : (start, stop)
        Window around the alignment time, in ms; default from 0 to the end
        of the shortest trial.
    bin_ms : float
        Bin width in ms; it must divide the window.
    condition_column : str, optional
        Trials-table column with each trial's condition.

    Bins are left-closed: a spike at exactly a bin edge counts in the later bin.
    """
    if keys:
        msg = "keys: NWB files are read through their units and trials tables, not by key"
        raise ConfigError(msg)
    pynwb = require("pynwb", "reading NWB files")
    source = str(path)
    if not path.is_file():
        msg = f"NWB file {path} does not exist"
        raise DataError(msg)
    try:
        io = pynwb.NWBHDF5IO(str(path), "r")
        nwb = io.read()
    except Exception as exc:  # pynwb/hdmf raise many types for bad files
        msg = f"cannot read {path} as NWB: {exc}"
        raise DataError(msg) from exc
    try:
        if nwb.units is None or len(nwb.units) == 0:
            msg = f"{source}: the file has no units table (sorted spike times)"
            raise DataError(msg)
        if nwb.trials is None or len(nwb.trials) == 0:
            msg = f"{source}: the file has no trials table"
            raise DataError(msg)
        columns = list(nwb.trials.colnames) + ["start_time", "stop_time"]
        if align_to not in nwb.trials.colnames and align_to not in ("start_time", "stop_time"):
            msg = f"{source}: align_to column {align_to!r} is not in the trials table (columns: {', '.join(sorted(set(columns)))})"
            raise DataError(msg)
        align = np.asarray(nwb.trials[align_to].data[:], dtype=np.float64)
        stop = np.asarray(nwb.trials["stop_time"].data[:], dtype=np.float64)
        bad = ~np.isfinite(align)
        if bad.any():
            msg = f"{source}: {int(bad.sum())} trials have no {align_to} (first: trial {int(np.argmax(bad)) + 1})"
            raise DataError(msg)
        if window_ms is None:
            window_ms = (0.0, float(np.min(stop - align)) * 1000.0)
            n_bins = int(np.floor(window_ms[1] / bin_ms + 1e-9))
            window_ms = (0.0, n_bins * bin_ms)
        w0, w1 = (float(w) for w in window_ms)
        n_bins_f = (w1 - w0) / bin_ms
        n_bins = int(round(n_bins_f))
        if n_bins < 1 or abs(n_bins_f - n_bins) > 1e-9 * max(1.0, n_bins_f):
            msg = f"{source}: bin_ms = {bin_ms:g} must divide the window {w0:g} to {w1:g} ms"
            raise DataError(msg)
        edges = align[:, None] + (w0 + np.arange(n_bins + 1) * bin_ms)[None, :] / 1000.0
        spike_col = nwb.units["spike_times"]
        n_units = len(nwb.units)
        counts = np.empty((align.size, n_bins, n_units), dtype=np.int64)
        for u in range(n_units):
            st = np.sort(np.asarray(spike_col[u], dtype=np.float64))
            idx = np.searchsorted(st, edges.ravel(), side="left").reshape(edges.shape)
            counts[:, :, u] = np.diff(idx, axis=1)
        cid = None
        if condition_column is not None:
            if condition_column not in nwb.trials.colnames:
                msg = f"{source}: condition_column {condition_column!r} is not in the trials table (columns: {', '.join(nwb.trials.colnames)})"
                raise DataError(msg)
            cid = list(nwb.trials[condition_column].data[:])
    finally:
        io.close()
    return DatasetData(
        counts,
        bin_ms=bin_ms,
        time_ms=w0 + np.arange(n_bins) * bin_ms,
        condition_id=cid,
        source=source,
    )


def _import_function(spec: str, base_dir: Path | None) -> Callable[..., Any]:
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        msg = f"loader {spec!r} must look like 'package.module:function'"
        raise ConfigError(msg)
    added = False
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
        added = True
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"loader {spec!r}: cannot import module {module_name!r}: {exc}"
        raise ConfigError(msg) from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))
    func = getattr(module, func_name, None)
    if not callable(func):
        msg = f"loader {spec!r}: module {module_name!r} has no function {func_name!r}"
        raise ConfigError(msg)
    return func


def load_with_function(
    loader: str | Callable[..., Any],
    path: Path | None = None,
    *,
    base_dir: Path | None = None,
    **options: Any,
) -> DatasetData:
    """Call a user loader and check what it returns.

    The function is called as ``fn(path, **options)`` (``fn(**options)`` when
    the dataset has no path) and returns a :class:`DatasetData` or a mapping
    with the fields ``counts`` (required, trials x time x neurons), ``time_ms``,
    ``bin_ms``, ``condition_id``, ``true_rates``, ``external_inputs``.
    ``base_dir`` (the datasets' folder, YAML ``datasets.path``) is searched for the module first.
    """
    spec = loader if isinstance(loader, str) else getattr(loader, "__qualname__", repr(loader))
    func = _import_function(loader, base_dir) if isinstance(loader, str) else loader
    try:
        result = func(path, **options) if path is not None else func(**options)
    except (DataError, ConfigError):
        raise
    except Exception as exc:
        where = f" for {path}" if path is not None else ""
        msg = f"loader {spec!r} failed{where}: {type(exc).__name__}: {exc}"
        raise DataError(msg) from exc
    source = f"{spec}({path})" if path is not None else spec
    return check_loader_result(result, f"loader {spec!r}", source)


def check_loader_result(result: Any, who: str, source: str | None = None) -> DatasetData:
    """``result`` of a user function (a loader, a Run's ``generate_counts_for_dataset``)
    as a checked :class:`DatasetData`; ``who`` names the function in errors."""
    if isinstance(result, DatasetData):
        return result
    if not isinstance(result, Mapping):
        msg = f"{who} returned {type(result).__name__}; expected DatasetData or a mapping with 'counts'"
        raise DataError(msg)
    unknown = set(result) - set(FIELDS)
    if unknown:
        msg = f"{who} returned unknown fields {sorted(unknown)}; allowed: {', '.join(FIELDS)}"
        raise DataError(msg)
    if result.get("counts") is None:
        msg = f"{who} returned no 'counts'"
        raise DataError(msg)
    return _make(dict(result), source or who, None)


#: Loader of each source kind. Each takes the path and its options as keywords.
LOADERS: dict[str, Callable[..., DatasetData]] = {
    "npz": load_npz,
    "hdf5": load_hdf5,
    "mat": load_mat,
    "nwb": load_nwb,
}

#: Options (besides ``keys``) each source kind accepts.
LOADER_OPTIONS: dict[str, tuple[str, ...]] = {
    "npz": ("orientation", "bin_ms"),
    "hdf5": ("orientation", "bin_ms"),
    "mat": ("orientation", "bin_ms"),
    "nwb": ("align_to", "window_ms", "bin_ms", "condition_column"),
}


def load_dataset(
    path: str | os.PathLike | None = None,
    *,
    kind: str | None = None,
    keys: Mapping[str, str | None] | None = None,
    loader: str | Callable[..., Any] | None = None,
    base_dir: str | os.PathLike | None = None,
    **options: Any,
) -> DatasetData:
    """Load one dataset from a file or a user function.

    Parameters
    ----------
    path : path, optional
        Data file (relative paths are taken relative to ``base_dir``).
    kind : {'npz', 'hdf5', 'mat', 'nwb'}, optional
        Source kind; default from the file suffix.
    keys : mapping, optional
        Field -> key in the file (``None`` switches a field off).
    loader : str or callable, optional
        ``"package.module:function"`` or a function; replaces the file loaders.
    base_dir : path, optional
        The datasets' folder (YAML ``datasets.path``): relative paths and loader modules are
        looked up there.
    **options
        Source options (:data:`LOADER_OPTIONS`), or the loader function's
        keyword arguments.

    Raises
    ------
    ConfigError
        Unknown kind, unknown option or key field, bad loader spec.
    DataError
        Missing or unreadable file, missing keys, inconsistent arrays.
    MissingDependencyError
        NWB without pynwb, pre-v7.3 MAT-files without scipy.
    """
    base = Path(base_dir) if base_dir is not None else None
    p = None if path is None else Path(path)
    if p is not None and base is not None and not p.is_absolute():
        p = base / p
    if loader is not None:
        if kind is not None or keys:
            msg = "a dataset with a loader function takes neither kind nor keys"
            raise ConfigError(msg)
        return _wrapped(lambda: load_with_function(loader, p, base_dir=base, **options), p)
    if p is None:
        msg = "a dataset needs a path or a loader function"
        raise ConfigError(msg)
    if kind is None:
        kind = SUFFIX_KINDS.get(p.suffix.lower())
        if kind is None:
            msg = f"{p}: cannot tell the file type from the suffix {p.suffix!r}; set kind to one of {', '.join(LOADERS)} (suffixes {', '.join(SUFFIX_KINDS)})"
            raise ConfigError(msg)
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in LOADERS:
        msg = f"unknown dataset kind {kind!r}; known: {', '.join(LOADERS)}"
        raise ConfigError(msg)
    unknown = set(options) - set(LOADER_OPTIONS[kind])
    if unknown:
        msg = f"{p}: unknown option(s) {', '.join(sorted(unknown))} for {kind} files; allowed: {', '.join(LOADER_OPTIONS[kind]) or 'none'}"
        raise ConfigError(msg)
    try:
        p.stat()
    except FileNotFoundError:
        msg = f"dataset file {p} does not exist"
        raise DataError(msg) from None
    except OSError as exc:  # a link loop, a permission problem on the way
        msg = f"dataset file {p} cannot be opened: {exc.strerror or exc}"
        raise DataError(msg) from None
    if p.is_dir():
        msg = f"dataset path {p} is a folder; expected a {kind} file"
        raise DataError(msg)
    return _wrapped(lambda: LOADERS[kind](p, keys=keys, **options), p)


def _wrapped(load: Callable[[], DatasetData], path: Path | None) -> DatasetData:
    """Any failure reading user data becomes one DataError naming the file.

    Libraries raise what they like for damaged files: ``zipfile.BadZipFile`` for a
    truncated ``.npz``, ``OSError: Can't synchronously read data`` (no file name) for
    a corrupt HDF5 chunk, ``ValueError`` for ragged lists from a loader function.
    """
    try:
        return load()
    except (DataError, ConfigError, MissingDependencyError):
        raise
    except Exception as exc:
        where = f"{path}" if path is not None else "the loader's data"
        msg = f"cannot read {where}: {type(exc).__name__}: {exc}"
        raise DataError(msg) from exc


def load_from_options(
    path: str | os.PathLike | None,
    options: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike | None = None,
) -> DatasetData:
    """Load a dataset described by a configuration entry's options.

    ``options`` holds the YAML keys of a dataset entry besides its name and
    file: ``format`` (npz, h5/hdf5, mat, nwb), ``keys``, ``bin_ms``,
    ``orientation``, ``nwb`` (``align_to``, ``window_ms`` or
    ``start_ms``/``stop_ms``, ``bin_ms``, ``condition_column``), ``loader`` and
    ``loader_args`` (keyword arguments of the loader function).

    Raises
    ------
    ConfigError, DataError, MissingDependencyError
        As :func:`load_dataset`.
    """
    opts = dict(options)
    loader = opts.pop("loader", None)
    kind = opts.pop("format", None)
    keys = opts.pop("keys", None)
    loader_args = dict(opts.pop("loader_args", None) or {})
    nwb = dict(opts.pop("nwb", None) or {})
    if loader is not None:
        if opts or nwb:
            msg = (
                f"a dataset with a loader takes loader_args, not {', '.join(sorted({*opts, *nwb}))}"
            )
            raise ConfigError(msg)
        return load_dataset(path, loader=loader, base_dir=base_dir, **loader_args)
    if loader_args:
        msg = "loader_args needs a loader"
        raise ConfigError(msg)
    if nwb:
        if "start_ms" in nwb or "stop_ms" in nwb:
            if "window_ms" in nwb or not ("start_ms" in nwb and "stop_ms" in nwb):
                msg = "nwb: give either window_ms or both start_ms and stop_ms"
                raise ConfigError(msg)
            nwb["window_ms"] = (nwb.pop("start_ms"), nwb.pop("stop_ms"))
        if "bin_ms" in nwb and "bin_ms" in opts and nwb["bin_ms"] != opts["bin_ms"]:
            msg = f"bin_ms ({opts['bin_ms']}) and nwb.bin_ms ({nwb['bin_ms']}) disagree"
            raise ConfigError(msg)
        opts.update(nwb)
        if kind is None:
            kind = "nwb"
    return load_dataset(path, kind=kind, keys=keys, base_dir=base_dir, **opts)
