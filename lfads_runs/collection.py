"""Run collections: run specs x parameter sets, with MATLAB lfads-run-manager semantics.

A :class:`RunCollection` is the folder ``<root>/<name>``; its runs form a matrix
of run specs (rows) by parameter sets (columns). :meth:`RunCollection.find_runs`
follows MATLAB ``findRuns`` (1-based indices, column-major order).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import layout as L
from ._atomic import atomic_write_json, atomic_write_text
from ._filecache import FileCache
from ._rollback import undo_created
from .datasets import Dataset, DatasetCollection
from .exceptions import (
    ConfigError,
    DataError,
    LfadsRunsWarning,
    MissingOutputError,
    OutputError,
    RunNotFoundError,
)
from .names import check_name
from .params import RunParams

if TYPE_CHECKING:
    from .status import CollectionStatus

__all__ = ["RunSpec", "Run", "RunCollection"]


@attrs.frozen
class RunSpec:
    """A named subset of the collection's datasets (MATLAB ``LFADS.RunSpec``)."""

    name: str = attrs.field(converter=lambda n: check_name(n, "run spec name"))
    datasets: tuple[str, ...] = attrs.field(
        converter=lambda ds: tuple(d.name if isinstance(d, Dataset) else d for d in ds)
    )

    def __attrs_post_init__(self) -> None:
        if not self.datasets:
            raise ConfigError(f"run spec {self.name!r} has no datasets")
        if len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"run spec {self.name!r} lists a dataset twice: {self.datasets}")


def _load_dataset(d: Dataset, base: Path | None) -> Any:
    """Load one dataset of a run; a data problem names the dataset as well as the file."""
    from .data import load_from_options

    try:
        return load_from_options(d.path, d.options, base_dir=base)
    except (DataError, ConfigError) as exc:  # options of the YAML item, or the file
        raise type(exc)(f"dataset {d.name!r}: {exc}") from exc


class Run:
    """One run spec x one parameter set (MATLAB ``LFADS.Run``).

    Owns every path of the run (through :class:`~lfads_runs.layout.RunPaths`) and
    the actions on it: preparing inputs, training, loading results.
    """

    def __init__(
        self, collection: RunCollection, run_spec: RunSpec, params: RunParams, param_index: int
    ):
        self.collection = collection
        self.run_spec = run_spec
        self.params = params
        self.param_index = param_index  #: 1-based column in ``collection.runs``
        self.paths: L.RunPaths = collection.layout.run_paths(
            run_spec.name, params.param_hash, params.data_hash
        )
        self._cache = FileCache()  # loaded files, reread when they change on disk

    # ------------------------------------------------------------ identity
    @property
    def name(self) -> str:
        return self.run_spec.name

    @property
    def datasets(self) -> tuple[Dataset, ...]:
        return self.collection.datasets.select(self.run_spec.datasets)

    @property
    def dataset_names(self) -> tuple[str, ...]:
        return self.run_spec.datasets

    @property
    def n_datasets(self) -> int:
        return len(self.run_spec.datasets)

    @property
    def param_hash(self) -> str:
        return self.params.param_hash

    @property
    def data_hash(self) -> str:
        return self.params.data_hash

    @property
    def run_spec_index(self) -> int:
        """1-based row in ``collection.runs``."""
        return self.collection.run_specs.index(self.run_spec) + 1

    @property
    def linear_index(self) -> int:
        """1-based column-major index into ``collection.runs`` (MATLAB linear index)."""
        n_specs = len(self.collection.run_specs)
        return (self.param_index - 1) * n_specs + self.run_spec_index

    def __repr__(self) -> str:
        return (
            f"Run({self.name!r}, {self.param_hash}, param_index={self.param_index}, "
            f"datasets={list(self.dataset_names)})"
        )

    # ------------------------------------------------------------ paths
    @property
    def path(self) -> Path:
        return self.paths.path

    @property
    def path_common_data(self) -> Path:
        return self.paths.path_common_data

    @property
    def path_lfads_input(self) -> Path:
        return self.paths.path_lfads_input

    @property
    def path_lfads_output(self) -> Path:
        return self.paths.path_lfads_output

    @property
    def file_model_params(self) -> Path:
        return self.paths.file_model_params

    @property
    def file_fitlog(self) -> Path:
        return self.paths.file_fitlog

    @property
    def file_log(self) -> Path:
        """``lfads.out``: the run's combined stdout/stderr."""
        return self.paths.log_file

    @property
    def file_done(self) -> Path:
        return self.paths.done_marker

    @property
    def file_train_script(self) -> Path:
        return self.paths.train_script

    @property
    def file_posterior_script(self) -> Path:
        return self.paths.posterior_script

    @property
    def file_write_params_script(self) -> Path:
        return self.paths.write_params_script

    @property
    def input_files(self) -> dict[str, Path]:
        """``lfadsInput/lfads_<ds>.h5`` for each dataset."""
        return {ds: self.paths.input_file(ds) for ds in self.dataset_names}

    @property
    def input_info_files(self) -> dict[str, Path]:
        return {ds: self.paths.input_info_file(ds) for ds in self.dataset_names}

    def posterior_files(self, kind: str | None = None) -> dict[str, dict[str, Path]]:
        """``{dataset: {"train": path, "valid": path}}`` of the posterior-mean files."""
        kind = kind or self.params.posterior_mean_kind
        return {
            ds: {split: self.paths.posterior_file(ds, split, kind) for split in L.SPLITS}
            for ds in self.dataset_names
        }

    @property
    def is_done(self) -> bool:
        return self.paths.done_marker.exists()

    # ------------------------------------------------------------ preparation
    def prepare(self, regenerate: bool = False) -> Any:
        """Write this run's LFADS input files and link them into ``lfadsInput/``.

        The files live in the shared ``data_<D>/<runSpec>/`` folder (legacy layout:
        ``data_<D>/``); up-to-date files (same data hash) are kept unless
        ``regenerate``. Returns the :class:`~lfads_runs.data.PreparedData`, or
        ``None`` when every file was already up to date.
        """
        from .data import input_file_names

        names = [n for ds in self.dataset_names for n in input_file_names(ds)]
        with undo_created(self._prepare_writes(names)):
            try:
                result = self._prepare(regenerate, names)
            except OutputError:
                raise
            except OSError as exc:  # root is a file, a read-only folder, a full disk
                raise OutputError(
                    f"cannot write the inputs of run {self.name!r} under {self.collection.path}: "
                    f"{exc.strerror or exc}: {exc.filename or ''}"
                ) from exc
        self._cache.clear()
        return result

    def _prepare_writes(self, names: list[str]) -> list[Path]:
        """Every path a first ``prepare`` of this run creates (removed again if it fails)."""
        common = self.path_common_data
        param_folder = self.collection.layout.param_folder(self.params.param_hash)
        return [
            self.collection.path.parent,  # the configured root
            self.collection.path,
            param_folder,
            param_folder / L.PARAMS_JSON,
            self.path,
            self.path_lfads_input,
            *(self.path_lfads_input / n for n in names),
            common.parent,  # data_<D> (the collection folder in the legacy layout)
            common,
            common / L.PREPARE_LOCK,
            *(common / n for n in names),
            common / L.SOURCES_JSON,
        ]

    def _prepare(self, regenerate: bool, names: list[str]) -> Any:
        from .data import link_inputs, prepared_status
        from .data.fingerprint import changed_sources, content_hash, read_sources, write_sources

        p = self.params
        common = self.path_common_data
        if regenerate:
            self._refuse_rewrite(running_only=True, why="--regenerate")
        self.collection.require_param_folder(p)
        status = prepared_status(common, self.dataset_names, self.data_hash)
        sources = {d.name: d.path for d in self.datasets}
        recorded = read_sources(common)
        touched = [] if regenerate else changed_sources(common, sources.items())
        incomplete = any(s.state != "ok" for s in status.values())
        result = None
        if regenerate or incomplete or touched or any(n not in recorded for n in sources):
            base = self.collection.datasets.path
            loaded = {d.name: _load_dataset(d, base) for d in self.datasets}
            changed = [n for n in touched if recorded[n].get("content") != content_hash(loaded[n])]
            if changed:
                files = ", ".join(f"{n} ({sources[n]})" for n in changed)
                self._refuse_rewrite(
                    running_only=False,
                    why=f"dataset file(s) {files} changed since {common} was prepared",
                )
            redo = regenerate or bool(changed)
            if redo or incomplete:
                result = self._write_inputs(list(loaded.items()), redo)
            write_sources(common, sources, loaded)
        link_inputs(common, self.path_lfads_input, names, regenerate=regenerate)
        return result

    def _refuse_rewrite(self, *, running_only: bool, why: str) -> None:
        """Refuse to rewrite the shared inputs while a run uses them (or trained on them)."""
        from .input_users import input_users

        users = input_users(self.collection.layout, self.name, self.path_common_data)
        busy = [u for u in users if u.live_claim or (u.trained and not running_only)]
        if not busy:
            return
        listing = "; ".join(u.describe() for u in busy)
        if running_only:
            raise DataError(
                f"{why}: refused, run(s) {listing} are training on the inputs in "
                f"{self.path_common_data} now; wait for them or stop them first"
            )
        raise DataError(
            f"{why}, but run(s) {listing} already trained on the old inputs; rewriting them "
            "would leave those results without their inputs. Restore the file, or re-prepare "
            "on purpose with lfads-runs prepare --regenerate (and retrain those runs)"
        )

    def _write_inputs(self, data: list, regenerate: bool) -> Any:
        from .data import prepare_datasets

        p = self.params
        return prepare_datasets(
            data,
            spike_bin_ms=p.spike_bin_ms,
            train_to_test_ratio=p.train_to_test_ratio,
            batch_size=p.c_batch_size,
            output_dist=p.c_output_dist,
            factors_dim=p.c_factors_dim,
            use_alignment_matrix=p.use_alignment_matrix and self.n_datasets > 1,
            # MATLAB disables single-dataset alignment in the legacy layout.
            use_single_dataset_alignment_matrix=(
                p.use_single_dataset_alignment_matrix
                and self.n_datasets == 1
                and not self.collection.layout.legacy
            ),
            alignment_approach=p.alignment_approach,
            alignment_extra_args=p.alignment_extra_args,
            data_hash=self.data_hash,
            out_dir=self.path_common_data,
            regenerate=regenerate,
            ext_input_dim=p.c_ext_input_dim,
        )

    @property
    def is_prepared(self) -> bool:
        """Every input file and inputInfo of the run exists (through its links)."""
        return all(f.is_file() for f in self.input_files.values()) and all(
            f.is_file() for f in self.input_info_files.values()
        )

    # ------------------------------------------------------------ results
    def load_input_info(self, reload: bool = False) -> dict[str, Any]:
        """``inputInfo_<ds>.mat`` of every dataset: split, data hash, time base, raw counts.

        Returns ``{dataset: InputInfo}`` (:class:`lfads_runs.io.input_info.InputInfo`).
        """
        from .io.input_info import read_input_info

        def load() -> dict[str, Any]:
            infos = {}
            for ds, path in self.input_info_files.items():
                if not path.exists():
                    raise MissingOutputError(
                        f"{path} does not exist: prepare the run first (run.prepare() or "
                        f"lfads-runs prepare)"
                    )
                infos[ds] = read_input_info(path)
                if infos[ds].data_hash and infos[ds].data_hash != self.data_hash.removeprefix(
                    L.DATA_PREFIX
                ):
                    warnings.warn(
                        f"{path} was prepared for data hash {infos[ds].data_hash}, but this run's "
                        f"is {self.data_hash}",
                        LfadsRunsWarning,
                        stacklevel=2,
                    )
            return infos

        return self._cache.get(
            "input_info", lambda: self.input_info_files.values(), load, reload=reload
        )

    def load_posterior_means(self, kind: str | None = None, reload: bool = False) -> dict[str, Any]:
        """Posterior means of every dataset, trials in original order.

        Returns ``{dataset: PosteriorMeans}``; ``rates`` are expected counts per
        bin and ``rates_hz`` spikes per second. ``kind`` defaults to the params'
        ``posterior_mean_kind``. Raises MissingOutputError naming the files looked for.
        """
        from .io.lfads_input import read_lfads_input
        from .results.posterior_means import read_posterior_means

        kind = kind or self.params.posterior_mean_kind
        key = f"posterior_means/{kind}"

        def load() -> dict[str, Any]:
            infos = self.load_input_info(reload=reload)
            out = {}
            for ds, files in self.posterior_files(kind).items():
                out[ds] = read_posterior_means(
                    files["train"],
                    files["valid"],
                    dataset=ds,
                    kind=kind,
                    spike_bin_ms=self.params.spike_bin_ms,
                    output_dist=self.params.c_output_dist,
                    input_info=infos[ds],
                    lfads_input=read_lfads_input(self.paths.input_file(ds)),
                    strict=True,  # every trial of the run's inputs, finite rates
                )
            return out

        def files() -> list[Path]:
            return [
                *(f for split in self.posterior_files(kind).values() for f in split.values()),
                *self.input_info_files.values(),
                *self.input_files.values(),
            ]

        return self._cache.get(key, files, load, reload=reload)

    def hparams(self, **overrides: Any) -> Any:
        """The LFADS :class:`~lfads_runs.Hyperparameters` this run trains with."""
        return self.params.to_hparams(self.n_datasets, **overrides)

    def model_spec(self) -> Any:
        """The run's :class:`~lfads_runs.ModelSpec`: variables and shapes of its LFADS model.

        Derived from the parameters and the prepared input files (neuron counts,
        alignment matrices); for runs made elsewhere without inputs, from the
        ``hyperparameters-<step>.txt`` file LFADS wrote.
        """
        from .dump import spec_from_inputs, spec_from_output_dir

        def load() -> Any:
            if self.is_prepared:
                return spec_from_inputs(
                    self.hparams(),
                    {L.lfads_dataset_name(ds): f for ds, f in self.input_files.items()},
                )
            return spec_from_output_dir(
                self.path_lfads_output, self.hparams(), input_dir=self.path_lfads_input
            )

        def files() -> list[Path]:
            hps = sorted(self.path_lfads_output.glob(L.HYPERPARAMETERS_GLOB))
            return [*self.input_files.values(), *hps]

        return self._cache.get("model_spec", files, load)

    def dump_command(self) -> list[str] | None:
        """The collection's external ``dump_command`` as an argument list with ``{input_dir}``,
        ``{output_dir}``, ``{run_dir}`` and ``{flags}`` filled in for this run, or ``None``.

        Run without a shell (:mod:`lfads_runs.command_template`), so names and paths
        are never interpreted as shell code."""
        from .command_template import fill_template

        cmd = self.collection.options.get("dump_command")
        if cmd is None:
            return None
        fill = {
            "input_dir": str(self.path_lfads_input),
            "output_dir": str(self.path_lfads_output),
            "run_dir": str(self.path),
            "flags": list(
                self.params.lfads_flags(self.n_datasets, omit=["c_temporal_spike_jitter_width"])
            ),
        }
        return fill_template(cmd, fill)

    def load_model_trained_params(
        self, dump: str = "auto", checkpoint: str = "lve", reload: bool = False
    ) -> Any:
        """The trained weights as a validated :class:`~lfads_runs.ModelTrainedParameters`.

        Reads ``lfadsOutput/model_params``; when it is missing (or ``dump="force"``)
        it is first written from the best source present: a checkpoint of our
        engine or of TensorFlow LFADS (``checkpoint="lve"``, ``"latest"`` or a
        prefix path), else the collection's ``dump_command``. ``dump="never"``
        only reads. Raises :class:`~lfads_runs.ModelParamsUnavailable` when there
        is nothing to read or dump from, :class:`~lfads_runs.ModelParamsError`
        when the file does not match the run's model.
        """
        from .dump import load_trained_params

        def load() -> Any:
            try:
                spec = self.model_spec()
            except MissingOutputError:
                # Neither inputs nor LFADS's hyperparameters file: if there is also nothing to
                # read or dump, the listing of what was looked for says more than the spec.
                if self.file_model_params.exists() or any(
                    self.path_lfads_output.glob("*.ckpt-*.index")
                ):
                    raise
                spec = None
            return load_trained_params(
                self.path_lfads_output,
                self.dataset_names,
                spec,
                dump=dump,
                checkpoint=checkpoint,
                dump_command=self.dump_command(),
                log_path=self.paths.log_file if self.path.is_dir() else None,
            )

        # Keyed by the checkpoint asked for; reread when model_params changes on disk
        # (deleted: the auto-dump runs again; re-dumped or retrained: the new weights).
        return self._cache.get(
            f"trained_params/{checkpoint}",
            lambda: [self.file_model_params],
            load,
            reload=reload or dump == "force",
        )

    def load_fit_log(self) -> Any:
        """The training log ``lfadsOutput/fitlog.csv`` as a :class:`~lfads_runs.results.fitlog.FitLog`."""
        from .results.fitlog import read_fit_log

        return read_fit_log(self.file_fitlog)

    def infer(self, counts: Any, dataset: str | None = None, **options: Any) -> Any:
        """Posterior means of NEW trials of ``dataset`` through the trained model (torch extra).

        ``counts`` are trials x time x neurons, at ``spike_bin_ms`` or at the
        original data's bin (rebinned like ``prepare``). Options: ``kind``
        ("posterior_push_mean" default, or "posterior_sample_and_average"),
        ``n_samples``, ``ext_inputs``, ``checkpoint`` ("lve", "latest",
        "model_params" or a path), ``bin_ms``, ``condition_ids``, ``seed``,
        ``device``; see :func:`lfads_runs.inference.infer_run`. Returns a
        :class:`~lfads_runs.results.PosteriorMeans`.
        """
        from .inference import infer_run

        return infer_run(self, counts, dataset=dataset, **options)

    def export(self, path: str | Path, **options: Any) -> Path:
        """Write this run's results to one HDF5 file (``nwb=True``: also an NWB file).

        Posterior means by dataset, trained weights (dumped from the checkpoint
        when needed), fit log, and the parameters as attributes; see
        :func:`lfads_runs.run_export.export_run_results`. Returns the HDF5 path.
        """
        from .run_export import export_run_results

        return export_run_results(self, path, **options)

    # ------------------------------------------------------------ training (lfads_runs.executors)
    def train(self, **options: Any) -> Any:
        """Train this run; options as :func:`lfads_runs.executors.train_runs`. Returns a QueueResult."""
        from .executors import train_runs

        return train_runs([self], **options)

    def sample_posterior(self, kind: str | None = None, **options: Any) -> Any:
        """Posterior sampling (and model_params) for this trained run; see ``sample_posteriors``."""
        from .executors import sample_posteriors

        return sample_posteriors([self], kind=kind, **options)

    def state(self) -> Any:
        """Status row from files: state, stage, epochs, best valid cost, failure reason."""
        from .runstate import collection_run_status

        return collection_run_status(self.collection, [self])[0]


def _as_params(p: RunParams | Mapping[str, Any]) -> RunParams:
    return p if isinstance(p, RunParams) else RunParams.from_mapping(p)


class RunCollection:
    """A folder ``<root>/<name>`` of LFADS runs: run specs x parameter sets.

    Parameters
    ----------
    root, name
        The collection folder is ``root/name``.
    datasets
        A :class:`DatasetCollection` or an iterable of :class:`Dataset`.
    run_specs
        Run specs (their datasets by name); order = rows of :attr:`runs`.
    params
        Parameter sets; order = columns of :attr:`runs`. Two with the same
        param hash are an error.
    version
        Layout version (YYYYMMDD, default 20171107); older values select the
        legacy flat ``data_<hash>/`` layout.
    """

    def __init__(
        self,
        root: str | Path,
        name: str,
        datasets: DatasetCollection | Iterable[Dataset],
        run_specs: Iterable[RunSpec],
        params: Iterable[RunParams | Mapping[str, Any]],
        version: int = L.CURRENT_VERSION,
        comment: str = "",
        options: Mapping[str, Any] | None = None,
        source: Path | None = None,
    ):
        self.name = check_name(name, "collection name")
        self.root = Path(root)
        self.version = int(version)
        self.comment = comment
        self.options: dict[str, Any] = dict(options or {})
        self.source = source  #: the YAML file this collection came from, if any
        try:
            self.layout = L.CollectionLayout(self.root, self.name, self.version)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.datasets = (
            datasets
            if isinstance(datasets, DatasetCollection)
            else DatasetCollection(None, tuple(datasets))
        )
        self._run_specs: list[RunSpec] = []
        self._params: list[RunParams] = []
        for spec in run_specs:
            self._add_run_spec(spec, replace=False)
        for p in params:
            self._add_params(_as_params(p), replace=False)
        self._runs: tuple[tuple[Run, ...], ...] | None = None

    # ------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path) -> RunCollection:
        """Build a collection from a YAML file (see :mod:`lfads_runs.config`)."""
        from .config import load_config

        return load_config(path)

    def _add_run_spec(self, spec: RunSpec, replace: bool) -> None:
        for ds in spec.datasets:
            if ds not in self.datasets:
                raise ConfigError(
                    f"run spec {spec.name!r} names unknown dataset {ds!r}; "
                    f"datasets are: {', '.join(self.datasets.names)}"
                )
        for i, existing in enumerate(self._run_specs):
            if existing.name == spec.name:
                if not replace:
                    raise ConfigError(f"duplicate run spec name {spec.name!r}")
                self._run_specs[i] = spec
                return
        self._run_specs.append(spec)

    def _add_params(self, params: RunParams, replace: bool) -> None:
        for i, existing in enumerate(self._params):
            if existing.param_hash == params.param_hash:
                if not replace:
                    raise ConfigError(
                        f"parameter sets {i + 1} and {len(self._params) + 1} are identical "
                        f"({params.param_hash}: {params.short_differences()})"
                    )
                self._params[i] = params
                return
        self._params.append(params)

    def add_run_spec(self, *specs: RunSpec) -> None:
        """Add run specs; one with the name of an existing spec replaces it (MATLAB ``addRunSpec``)."""
        for s in specs:
            self._add_run_spec(s, replace=True)
        self._runs = None

    def add_params(self, *params: RunParams | Mapping[str, Any]) -> None:
        """Add parameter sets; one with an existing param hash replaces it (MATLAB ``addParams``)."""
        for p in params:
            self._add_params(_as_params(p), replace=True)
        self._runs = None

    # ------------------------------------------------------------ contents
    @property
    def path(self) -> Path:
        return self.layout.path

    @property
    def run_specs(self) -> tuple[RunSpec, ...]:
        return tuple(self._run_specs)

    @property
    def params(self) -> tuple[RunParams, ...]:
        return tuple(self._params)

    @property
    def runs(self) -> tuple[tuple[Run, ...], ...]:
        """``runs[i][j]``: run spec ``i`` x parameter set ``j`` (0-based here)."""
        if self._runs is None:
            self._runs = tuple(
                tuple(Run(self, spec, p, j + 1) for j, p in enumerate(self._params))
                for spec in self._run_specs
            )
        return self._runs

    @property
    def all_runs(self) -> list[Run]:
        """Every run in MATLAB linear (column-major) order: run specs vary fastest."""
        return [
            self.runs[i][j] for j in range(len(self._params)) for i in range(len(self._run_specs))
        ]

    def __repr__(self) -> str:
        return (
            f"RunCollection({self.name!r} at {self.path}, {len(self._run_specs)} run specs x "
            f"{len(self._params)} parameter sets, version {self.version})"
        )

    # ------------------------------------------------------------ lookup
    def find_runs(self, run_spec: Any = None, param: Any = None) -> Run | list[Run]:
        """Find runs like MATLAB ``rc.findRuns(runSpecSearch, paramSearch)``.

        ``run_spec``: ``None``/``""`` (all), a name, a :class:`RunSpec`, a 1-based index,
        or a list of those / a boolean mask. ``param``: ``None`` (all), a 1-based index,
        ``"param_XXXXXX"`` or ``"XXXXXX"``, a :class:`RunParams`, or a list / mask.
        Two scalars give one :class:`Run`; otherwise a list in MATLAB order.
        """
        rows = self._select(run_spec, "run spec", self._match_spec, len(self._run_specs))
        cols = self._select(param, "parameter set", self._match_params, len(self._params))
        found = [self.runs[i][j] for j in cols for i in rows]
        if _is_scalar(run_spec) and _is_scalar(param):
            return found[0]
        return found

    def _select(self, query: Any, what: str, match, n: int) -> list[int]:
        if (
            query is None
            or (isinstance(query, str) and query == "")
            or (isinstance(query, list | tuple) and len(query) == 0)
        ):
            return list(range(n))
        items = list(query) if isinstance(query, list | tuple) else [query]
        if items and all(isinstance(x, bool) for x in items):
            if len(items) != n:
                raise RunNotFoundError(f"a {what} mask needs {n} entries, got {len(items)}")
            return [i for i, x in enumerate(items) if x]
        out = []
        for item in items:
            idx = match(item)
            if idx is None:
                raise RunNotFoundError(self._miss_message(what, item))
            out.append(idx)
        return out

    def _match_spec(self, item: Any) -> int | None:
        if isinstance(item, RunSpec):
            return next((i for i, s in enumerate(self._run_specs) if s == item), None)
        if isinstance(item, str):
            return next((i for i, s in enumerate(self._run_specs) if s.name == item), None)
        if isinstance(item, int) and not isinstance(item, bool):
            return item - 1 if 1 <= item <= len(self._run_specs) else None
        return None

    def _match_params(self, item: Any) -> int | None:
        if isinstance(item, RunParams):
            return next(
                (
                    i
                    for i, p in enumerate(self._params)
                    if type(p) is type(item) and p.param_hash == item.param_hash
                ),
                None,
            )
        if isinstance(item, str):
            key = item if item.startswith(L.PARAM_PREFIX) else L.PARAM_PREFIX + item
            return next((i for i, p in enumerate(self._params) if p.param_hash == key), None)
        if isinstance(item, int) and not isinstance(item, bool):
            return item - 1 if 1 <= item <= len(self._params) else None
        return None

    def _miss_message(self, what: str, item: Any) -> str:
        if what == "run spec":
            have = ", ".join(f"{i + 1}: {s.name}" for i, s in enumerate(self._run_specs))
        else:
            have = ", ".join(f"{i + 1}: {p.param_hash}" for i, p in enumerate(self._params))
        return f"no {what} matches {item!r} in collection {self.name!r}; available: {have}"

    def run(self, run_spec: Any, param: Any) -> Run:
        """Exactly one run (like :meth:`find_runs` with two scalars)."""
        found = self.find_runs(run_spec, param)
        if isinstance(found, list):
            raise RunNotFoundError("run() needs a single run spec and a single parameter set")
        return found

    # ------------------------------------------------------------ files on disk
    def require_param_folder(self, params: RunParams) -> Path:
        """Create ``param_<P>/`` with its ``params.json``; detect hash collisions.

        The first writer records the full parameters and both hashes; later calls
        compare, so two different parameter sets sharing the 36-bit MATLAB hash
        are reported instead of silently sharing a folder.
        """
        folder = self.layout.param_folder(params.param_hash)
        record = params_record(params)
        file = folder / L.PARAMS_JSON
        if file.exists():
            try:
                existing = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read {file}: {exc}") from None
            if existing.get("differences") != record["differences"]:
                raise ConfigError(
                    f"hash collision: {folder} holds parameters {existing.get('differences')} "
                    f"but {record['differences']} have the same hash {params.param_hash}"
                )
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(file, record)
        return folder

    def summary_text(self) -> str:
        """Collection summary like MATLAB's ``summary.txt``."""
        lines = [
            f"LFADS.RunCollection {self.name!r}",
            f"  path: {self.path}",
            f"  version: {self.version}",
        ]
        if self.comment:
            lines.append(f"  comment: {self.comment}")
        lines.append(f"  datasets ({len(self.datasets)}):")
        for i, d in enumerate(self.datasets, 1):
            lines.append(f"    [{i}] {d.name}" + (f"  {d.path}" if d.path else ""))
        lines.append(f"  run specs ({len(self._run_specs)}):")
        for i, s in enumerate(self._run_specs, 1):
            lines.append(f"    [{i}] {s.name}: {', '.join(s.datasets)}")
        lines.append(f"  parameter settings ({len(self._params)}):")
        for i, p in enumerate(self._params, 1):
            lines.append(p.summary_text(indent="    ", index=i))
        return "\n".join(lines) + "\n"

    def write_summary(self) -> Path:
        """Write ``summary.txt`` (text written verbatim, unlike MATLAB's printf)."""
        atomic_write_text(self.layout.summary_file, self.summary_text())
        return self.layout.summary_file

    def prepare(self, runs: Iterable[Run] | None = None, regenerate: bool = False) -> list[Run]:
        """Prepare the inputs of ``runs`` (default: all) and write ``summary.txt``."""
        runs = list(runs) if runs is not None else self.all_runs
        for run in runs:
            run.prepare(regenerate=regenerate)
        self.write_summary()
        return runs

    def load_posterior_means(
        self, kind: str | None = None, runs: Iterable[Run] | None = None
    ) -> CollectionResults:
        """Posterior means of every run that has them; runs without results are listed."""
        loaded: dict[tuple[str, int], dict[str, Any]] = {}
        missing: list[tuple[Run, str]] = []
        for run in runs if runs is not None else self.all_runs:
            try:
                loaded[(run.name, run.param_index)] = run.load_posterior_means(kind)
            except MissingOutputError as exc:
                missing.append((run, str(exc)))
        return CollectionResults(loaded, missing)

    def status(self) -> CollectionStatus:
        """What exists on disk for every run, and ``param_*`` folders the config does not name."""
        from .status import collection_status

        return collection_status(self)

    def train(self, runs: Iterable[Run] | None = None, **options: Any) -> Any:
        """Train ``runs`` (default all) through a queue; see :func:`lfads_runs.executors.train_runs`.

        Options: ``executor="local"``, ``gpus``, ``runs_per_gpu``, ``max_parallel``,
        ``rerun``, ``engine``, ``device``... Returns a QueueResult.
        """
        from .executors import train_runs

        return train_runs(self.all_runs if runs is None else runs, **options)

    def write_scripts(self, runs: Iterable[Run] | None = None, **options: Any) -> dict[str, Any]:
        """Shell scripts for the original TensorFlow LFADS; see :func:`lfads_runs.scripts.write_scripts`."""
        from .scripts import write_scripts

        return write_scripts(self, runs, **options)


@attrs.frozen
class CollectionResults:
    """Results over a collection: ``loaded[(run_spec, param_index)]`` and the runs ``missing``."""

    loaded: dict[tuple[str, int], dict[str, Any]]
    missing: list[tuple[Run, str]]


def params_record(params: RunParams) -> dict[str, Any]:
    """The content of ``params.json``: full parameters and both hashes."""
    import lfads_runs

    return {
        "param_hash": params.param_hash,
        "data_hash": params.data_hash,
        "class": f"{type(params).__module__}.{type(params).__qualname__}",
        "differences": _jsonable(params.differences()),
        "params": _jsonable(params.as_dict()),
        "lfads_runs_version": lfads_runs.__version__,
    }


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _is_scalar(q: Any) -> bool:
    return isinstance(q, str | int | RunSpec | RunParams) and not (isinstance(q, str) and q == "")
