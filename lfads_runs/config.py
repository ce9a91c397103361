"""Run collection configurations from YAML files.

:func:`read_config` checks a file into a plain :class:`CollectionConfig` record (the
arguments of a :class:`~lfads_runs.RunCollection`); :func:`lfads_runs.load_config`
builds the collection from it. Reading never touches the disk beyond the YAML file.
Every mistake raises one :class:`~lfads_runs.ConfigError` naming the file, the
key path and the line. The format::

    name: lorenz_example        # collection folder: <root>/<name>
    root: ./runs                # relative to this file (default: this file's folder)
    version: 20171107           # optional layout version
    comment: free text          # optional
    datasets:
      path: ./data              # optional base folder of the dataset files
      items:
        - {name: dataset001, file: dataset001.h5}
        - {name: dataset002, file: dataset002.h5, keys: {counts: spikes}}
    run_specs:
      - {name: all, datasets: [dataset001, dataset002]}     # or datasets: all
      - {name: single_dataset001, datasets: [dataset001]}
    params:                     # each entry: only what differs from the defaults
      - {c_factors_dim: 8, c_co_dim: 0, useAlignmentMatrix: true}
    sweep:                      # optional (or a list of them): appended after params
      base: {c_co_dim: 0}
      grid: {c_factors_dim: [2, 4, 6, 8]}   # first key varies fastest
"""

from __future__ import annotations

import difflib
import importlib
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._yaml import Marks, YamlError, load_yaml
from .command_template import split_template
from .datasets import Dataset, DatasetCollection
from .exceptions import ConfigError
from .layout import CURRENT_VERSION
from .params import RunParams
from .runspec import RunSpec

__all__ = ["CollectionConfig", "read_config", "CONFIG_KEYS", "SECTION_KEYS", "DATASET_KEYS"]

CONFIG_KEYS = {
    "name": "collection name: the folder <root>/<name>",
    "root": "folder holding the collection, relative to the YAML file (default: its folder)",
    "version": "layout version YYYYMMDD (default 20171107; older = legacy flat data_ layout)",
    "comment": "free text shown in summary.txt",
    "datasets": "the datasets: {path: base folder, items: [...]} or a list of items",
    "run_specs": "list of {name, datasets: [names] | all}",
    "params": "list of parameter sets, each only what differs from the defaults",
    "sweep": "{base: {...}, grid: {property: [values]}} or a list of them",
    "params_class": "'package.module:Class', a RunParams subclass with extra properties",
    "run_class": "'package.module:Class', a Run subclass supplying the data (generate_counts_for_dataset)",
    "train": "how runs are trained (engine, device, executor, gpus, ...)",
    "slurm": "Slurm options for the slurm executor",
    "ray": "Ray options for the ray executor",
    "scripts": "options of the shell scripts for the original TensorFlow LFADS",
    "dump_command": "external command that writes lfadsOutput/model_params",
    "tune": "population-based training (AutoLFADS) on Ray Tune: population, search, ...",
}

SECTION_KEYS: dict[str, dict[str, str]] = {
    "train": {
        "engine": "torch (our engine, default) or external (the original run_lfads.py scripts)",
        "device": "cpu, cuda or cuda:N (default: cuda when available, else cpu)",
        "seed": "random seed of the engine",
        "executor": "local (default), slurm or ray",
        "gpus": "GPU ids to use, e.g. [0, 1]",
        "runs_per_gpu": "runs sharing one GPU (default 1)",
        "max_parallel": "runs at once on a CPU-only machine",
        "threads": "torch threads per run",
        "posterior_samples": "samples per trial for posterior_sample_and_average",
    },
    "slurm": {
        "partition": "Slurm partition",
        "time": "time limit in minutes",
        "gpus_per_node": "GPUs per job",
        "mem_gb": "memory per job in GB",
        "cpus_per_task": "CPUs per job",
        "account": "Slurm account",
        "qos": "quality of service",
        "constraint": "node constraint",
        "folder": "submitit log folder (default <collection>/slurm_logs)",
        "additional": "extra sbatch parameters (mapping)",
        "cluster": "submitit cluster: slurm (default), local or debug (to try without a cluster)",
        "wait": "wait for the jobs and report their outcomes (default true)",
        "requeue": "requeue jobs that time out or are preempted (default true)",
    },
    "ray": {
        "address": "Ray cluster address (default: start a local instance)",
        "num_gpus": "GPUs per run (fractions allowed)",
        "num_cpus": "CPUs per run",
        "init": "extra ray.init arguments for a local instance (mapping)",
    },
    "scripts": {
        "run_lfads_py": "path of run_lfads.py (default $(which run_lfads.py))",
        "python": "python executable in the scripts (default python)",
        "virtualenv": "environment activated by the scripts",
        "prepend_path": "add run_lfads.py's folder to PATH in the scripts",
    },
}

#: Numeric section options checked at load: (section, key) -> (integer?, smallest allowed).
#: Everything else in the sections is checked where it is used (executor, device, ...).
SECTION_NUMBERS: dict[tuple[str, str], tuple[bool, float]] = {
    ("train", "seed"): (True, 0),
    ("train", "runs_per_gpu"): (True, 1),
    ("train", "max_parallel"): (True, 1),
    ("train", "threads"): (True, 1),
    ("train", "posterior_samples"): (True, 1),
    ("slurm", "time"): (True, 1),
    ("slurm", "gpus_per_node"): (True, 0),
    ("slurm", "mem_gb"): (False, 0),
    ("slurm", "cpus_per_task"): (True, 1),
    ("ray", "num_gpus"): (False, 0),
    ("ray", "num_cpus"): (False, 0),
}

DATASET_KEYS = {
    "name": "dataset name (default: the file stem)",
    "file": "data file, relative to datasets.path",
    "loader": "'package.module:function' returning the data",
    "loader_args": "keyword arguments of the loader function",
    "orientation": "axis order of the stored counts, e.g. trials_neurons_time (default trials_time_neurons)",
    "format": "npz, h5, mat or nwb (default: from the file extension)",
    "keys": "names of the arrays in the file, e.g. {counts: spikes}",
    "bin_ms": "bin width of the stored counts in ms",
    "nwb": "NWB binning options {align_to, start_ms, stop_ms, bin_ms, ...}",
    "metadata": "free-form information",
    "heldout_neurons": "co-smoothing: 0-based neuron indices, or {fraction: f, seed: s}",
}


class _Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, file: Path, marks: Marks):
        self.file = file
        self.marks = marks

    def error(self, path: tuple, message: str) -> ConfigError:
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in self.marks:
                line = self.marks[path[:n]]
                break
        where = _path_text(path) or "top level"
        at = f" (line {line})" if line else ""
        return ConfigError(f"{self.file}: {where}{at}: {message}")

    def resolve(self, p: Path, path: tuple) -> Path:
        """``p`` made absolute with links resolved; a link loop is an error at ``path``."""
        try:
            return p.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop before Python 3.13
            raise self.error(path, f"cannot resolve {p}: {exc}") from None

    def mapping(self, value: Any, path: tuple, allowed: Mapping[str, str] | None) -> dict:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {_kind(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.error(
                        path + (key,),
                        f"unknown key {key!r}"
                        + _suggest(str(key), allowed)
                        + f"; valid keys: {', '.join(sorted(allowed))}",
                    )
        return value

    def seq(self, value: Any, path: tuple) -> list:
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {_kind(value)}")
        return value

    def string(self, value: Any, path: tuple) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def integer(self, value: Any, path: tuple, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.error(path, f"must be >= {minimum}, got {value}")
        return value


def _path_text(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _check_numbers(ctx: _Ctx, section: str, values: Mapping[str, Any]) -> None:
    """Numeric options of a section: finite, of the right kind, not below their minimum."""
    for key, value in values.items():
        rule = SECTION_NUMBERS.get((section, key))
        if rule is None or value is None:
            continue
        integer, minimum = rule
        path = (section, key)
        if integer:
            ctx.integer(value, path, minimum=int(minimum))
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ctx.error(path, f"expected a finite number, got {_kind(value)}")
        if value < minimum:
            raise ctx.error(path, f"expected a number >= {minimum:g}, got {value!r}")


def _kind(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    return f"{type(v).__name__} {v!r}" if not isinstance(v, dict | list) else type(v).__name__


def _suggest(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


@attrs.frozen(kw_only=True)
class CollectionConfig:
    """A checked YAML configuration: the arguments of a :class:`~lfads_runs.RunCollection`."""

    source: Path  #: the YAML file, absolute
    root: Path
    name: str
    version: int
    comment: str
    datasets: DatasetCollection
    run_specs: tuple[RunSpec, ...]
    params: tuple[RunParams, ...]
    options: dict[str, Any]
    run_class: type | None  #: the YAML's ``run_class`` (None: it names none)


def read_config(path: str | Path, *, run_base: type = object) -> CollectionConfig:
    """Read and check a YAML configuration (nothing is written).

    ``run_base``: the class a ``run_class:`` must subclass (``lfads_runs.load_config``
    passes :class:`~lfads_runs.Run`; this module sits below the collection).
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(f"{file}: configuration file not found")
    try:
        data, marks = load_yaml(file)
    except YamlError as exc:
        at = f" (line {exc.line})" if exc.line else ""
        raise ConfigError(f"{file}{at}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    ctx = _Ctx(file, marks)
    if not isinstance(data, dict):
        raise ctx.error((), f"the top level must be a mapping of keys, got {_kind(data)}")
    ctx.mapping(data, (), CONFIG_KEYS)
    for key in ("name", "datasets", "run_specs"):
        if key not in data:
            raise ctx.error((), f"missing required key {key!r} ({CONFIG_KEYS[key]})")
    name = ctx.string(data["name"], ("name",))
    root = ctx.resolve(file.parent / ctx.string(data.get("root", "."), ("root",)), ("root",))
    version = ctx.integer(data.get("version", CURRENT_VERSION), ("version",), minimum=1)
    comment = data.get("comment", "")
    if not isinstance(comment, str):
        raise ctx.error(("comment",), f"expected a string, got {_kind(comment)}")
    datasets = _datasets(ctx, data["datasets"], file.parent)
    run_specs = _run_specs(ctx, data["run_specs"], datasets)
    params_cls = _params_class(ctx, data.get("params_class"))
    run_cls = (
        None
        if data.get("run_class") is None
        else _user_class(ctx, data["run_class"], "run_class", run_base, file.parent)
    )
    params = _params(ctx, data, params_cls)
    options: dict[str, Any] = {}
    for section, keys in SECTION_KEYS.items():
        if section in data and data[section] is not None:
            options[section] = dict(ctx.mapping(data[section], (section,), keys))
            _check_numbers(ctx, section, options[section])
    if "dump_command" in data:
        dc = data["dump_command"]
        if not (
            isinstance(dc, str) or (isinstance(dc, list) and all(isinstance(x, str) for x in dc))
        ):
            raise ctx.error(("dump_command",), "expected a command string or a list of strings")
        try:
            split_template(dc)
        except ConfigError as exc:
            raise ctx.error(("dump_command",), str(exc)) from None
        options["dump_command"] = dc
    if data.get("tune") is not None:
        options["tune"] = _tune(ctx, data["tune"], params_cls, run_specs, len(params))
    return CollectionConfig(
        source=file,
        root=root,
        name=name,
        version=version,
        comment=comment,
        datasets=datasets,
        run_specs=tuple(run_specs),
        params=tuple(p for _, p in params),
        options=options,
        run_class=run_cls,
    )


def _tune(
    ctx: _Ctx, value: Any, params_cls: type[RunParams], run_specs: list[RunSpec], n_params: int
) -> Any:
    from .tuning.spec import parse_tune_section

    spec = parse_tune_section(value, params_cls, ctx.error)
    names = [s.name for s in run_specs]
    for i, name in enumerate(spec.run_specs or ()):
        if name not in names:
            raise ctx.error(
                ("tune", "run_specs", i),
                f"unknown run spec {name!r}; run specs are: {', '.join(names)}",
            )
    for i, idx in enumerate(spec.params or ()):
        if idx > n_params:
            raise ctx.error(
                ("tune", "params", i), f"parameter set {idx} is out of range 1..{n_params}"
            )
    return spec


def _datasets(ctx: _Ctx, value: Any, base: Path) -> DatasetCollection:
    path: tuple = ("datasets",)
    folder = base
    if isinstance(value, dict):
        ctx.mapping(value, path, {"path": "base folder", "items": "list of datasets"})
        if "path" in value:
            folder = ctx.resolve(
                base / ctx.string(value["path"], path + ("path",)), path + ("path",)
            )
        if "items" not in value:
            raise ctx.error(path, "missing key 'items' (the list of datasets)")
        items = value["items"]
        path = path + ("items",)
    else:
        items = value
    items = ctx.seq(items, path)
    if not items:
        raise ctx.error(path, "no datasets given")
    out: list[Dataset] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        ipath = path + (i,)
        if isinstance(item, str):
            item = {"file": item}
        ctx.mapping(item, ipath, DATASET_KEYS)
        if "file" not in item and "loader" not in item:
            raise ctx.error(ipath, "a dataset needs 'file' or 'loader'")
        file = None
        if "file" in item:
            file = ctx.resolve(
                folder / ctx.string(item["file"], ipath + ("file",)), ipath + ("file",)
            )
        name = item.get("name")
        if name is None:
            if file is None:
                raise ctx.error(ipath, "a dataset with only a 'loader' needs a 'name'")
            name = file.stem.replace(",", "_")
        options = {
            k: item[k]
            for k in ("loader", "loader_args", "format", "keys", "bin_ms", "nwb", "orientation")
            if k in item
        }
        for k in ("keys", "nwb", "loader_args"):
            if k in options:
                ctx.mapping(options[k], ipath + (k,), None)
        heldout = None
        if "heldout_neurons" in item:
            heldout = _heldout(ctx, item["heldout_neurons"], ipath)
        metadata = item.get("metadata") or {}
        ctx.mapping(metadata, ipath + ("metadata",), None)
        try:
            ds = Dataset(
                name=name, path=file, options=options, metadata=metadata, heldout_neurons=heldout
            )
        except ConfigError as exc:
            raise ctx.error(ipath + ("name",), str(exc)) from None
        if ds.name in seen:
            raise ctx.error(ipath, f"duplicate dataset {ds.name!r} (also item {seen[ds.name]})")
        seen[ds.name] = i
        out.append(ds)
    return DatasetCollection(folder, tuple(out))


def _heldout(ctx: _Ctx, value: Any, ipath: tuple) -> Any:
    """A dataset's ``heldout_neurons``: checked for form here, against the data at prepare."""
    where = ipath + ("heldout_neurons",)
    if isinstance(value, dict):
        ctx.mapping(value, where, {"fraction": "fraction held out, in (0, 1)", "seed": "seed"})
        f = value.get("fraction")
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1:
            raise ctx.error(where + ("fraction",), f"expected a number in (0, 1), got {f!r}")
        seed = value.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ctx.error(where + ("seed",), f"expected a non-negative integer, got {seed!r}")
        return {"fraction": float(f), "seed": seed}
    items = ctx.seq(value, where)
    bad = [i for i in items if isinstance(i, bool) or not isinstance(i, int) or i < 0]
    if bad or not items:
        raise ctx.error(
            where, f"expected non-negative 0-based neuron indices, got {bad[0] if bad else '[]'!r}"
        )
    if len(set(items)) != len(items):
        raise ctx.error(where, "a neuron is listed more than once")
    return list(items)


def _run_specs(ctx: _Ctx, value: Any, datasets: DatasetCollection) -> list[RunSpec]:
    path = ("run_specs",)
    items = ctx.seq(value, path)
    if not items:
        raise ctx.error(path, "no run specs given")
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        ipath = path + (i,)
        ctx.mapping(
            item,
            ipath,
            {"name": "run spec name", "datasets": "dataset names, 1-based indices or 'all'"},
        )
        for key in ("name", "datasets"):
            if key not in item:
                raise ctx.error(ipath, f"missing key {key!r}")
        names = item["datasets"]
        if names == "all":
            names = list(datasets.names)
        names = ctx.seq(names, ipath + ("datasets",))
        for j, ds in enumerate(names):
            if isinstance(ds, int) and not isinstance(ds, bool):  # 1-based, as MATLAB's RunSpec
                if not 1 <= ds <= len(datasets):
                    raise ctx.error(
                        ipath + ("datasets", j),
                        f"dataset index {ds} is out of range 1..{len(datasets)} (1-based)",
                    )
                continue
            if ds not in datasets:
                raise ctx.error(
                    ipath + ("datasets", j),
                    f"unknown dataset {ds!r}"
                    + _suggest(str(ds), datasets.names)
                    + f"; datasets are: {', '.join(datasets.names)}",
                )
        try:
            spec = RunSpec(item["name"], names)
        except ConfigError as exc:
            raise ctx.error(ipath, str(exc)) from None
        if spec.name in seen:
            raise ctx.error(
                ipath + ("name",), f"duplicate run spec {spec.name!r} (also item {seen[spec.name]})"
            )
        seen[spec.name] = i
        out.append(spec)
    return out


def _params_class(ctx: _Ctx, value: Any) -> type[RunParams]:
    if value is None:
        return RunParams
    spec = ctx.string(value, ("params_class",))
    module, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ctx.error(("params_class",), f"cannot import {spec!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, RunParams)):
        raise ctx.error(("params_class",), f"{spec!r} is not a RunParams subclass")
    return cls


def _user_class(ctx: _Ctx, value: Any, key: str, base: type, folder: Path) -> Any:
    """The class ``'module:Class'`` named by ``key`` (None: ``base``); the YAML file's
    folder is searched first, so a module next to the file is found in every worker."""
    if value is None:
        return base
    spec = ctx.string(value, (key,))
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ctx.error((key,), f"expected 'package.module:Class', got {spec!r}")
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        cls = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # an import runs user code: any error is the user's module
        raise ctx.error((key,), f"cannot import {spec!r}: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(folder))
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ctx.error((key,), f"{spec!r} is not a subclass of lfads_runs.{base.__name__}")
    return cls


def _one_params(ctx: _Ctx, cls: type[RunParams], value: Any, path: tuple) -> RunParams:
    if value is None:
        value = {}
    ctx.mapping(value, path, None)
    for key in value:
        try:
            cls.resolve_name(str(key))
        except ConfigError as exc:
            raise ctx.error(path + (key,), str(exc)) from None
    try:
        return cls.from_mapping(value)
    except ConfigError as exc:
        key = _key_in_message(str(exc), value, cls)
        raise ctx.error(path + ((key,) if key else ()), str(exc)) from None


def _key_in_message(msg: str, value: Mapping, cls: type[RunParams]) -> str | None:
    for key in value:
        if cls.resolve_name(str(key)) in msg:
            return key
    return None


def _params(ctx: _Ctx, data: dict, cls: type[RunParams]) -> list[tuple[tuple, RunParams]]:
    out: list[tuple[tuple, RunParams]] = []
    if "params" in data:
        items = ctx.seq(data["params"], ("params",))
        for i, item in enumerate(items):
            out.append((("params", i), _one_params(ctx, cls, item, ("params", i))))
    if "sweep" in data:
        sweeps = data["sweep"]
        multi = isinstance(sweeps, list)
        for k, sw in enumerate(sweeps if multi else [sweeps]):
            spath = ("sweep", k) if multi else ("sweep",)
            ctx.mapping(
                sw,
                spath,
                {
                    "base": "parameters shared by the sweep",
                    "grid": "property: [values], first varies fastest",
                },
            )
            base = _one_params(ctx, cls, sw.get("base"), spath + ("base",))
            if "grid" not in sw:
                raise ctx.error(spath, "missing key 'grid'")
            grid = ctx.mapping(sw["grid"], spath + ("grid",), None)
            if not grid:
                raise ctx.error(spath + ("grid",), "empty grid")
            for key, values in grid.items():
                try:
                    cls.resolve_name(str(key))
                except ConfigError as exc:
                    raise ctx.error(spath + ("grid", key), str(exc)) from None
                ctx.seq(values, spath + ("grid", key))
                if not values:
                    raise ctx.error(spath + ("grid", key), "no values")
            try:
                swept = cls.sweep(base, **{str(k): v for k, v in grid.items()})
            except ConfigError as exc:
                raise ctx.error(spath + ("grid",), str(exc)) from None
            out.extend((spath + ("grid",), p) for p in swept)
    if not out:
        raise ctx.error(
            ("params",) if "params" in data else (),
            "no parameter sets: give 'params' (a list) and/or a 'sweep'",
        )
    seen: dict[str, tuple] = {}
    for path, p in out:
        if p.param_hash in seen:
            raise ctx.error(
                path,
                f"duplicate parameter set {p.param_hash} "
                f"({p.short_differences()}), same as {_path_text(seen[p.param_hash])}",
            )
        seen[p.param_hash] = path
    return out
