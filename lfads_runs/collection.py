"""Run collections: run specs x parameter sets, with MATLAB lfads-run-manager semantics.

A :class:`RunCollection` is the folder ``<root>/<name>``; its runs form a matrix
of run specs (rows) by parameter sets (columns). :meth:`RunCollection.find_runs`
follows MATLAB ``findRuns`` (1-based indices, column-major order).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import layout as L
from ._atomic import atomic_write_json, atomic_write_text
from ._filecache import FileCache
from ._jsonable import jsonable
from ._run_loader import set_run_loader
from ._version import __version__
from .config import read_config
from .datasets import Dataset, DatasetCollection
from .exceptions import (
    ConfigError,
    DataError,
    MissingOutputError,
    RunNotFoundError,
)
from .names import check_name
from .params import RunParams
from .runspec import RunSpec

if TYPE_CHECKING:
    from .actions.inventory import CollectionInventory
    from .actions.load import CollectionResults
    from .data import AlignmentResult, DatasetData, PreparedData
    from .executors import Executor, QueueResult
    from .executors.state import RunStatus
    from .hparams import Hyperparameters
    from .io.input_info import InputInfo
    from .model_spec import ModelSpec
    from .results.fitlog import FitLog
    from .results.posterior_means import PosteriorMeans
    from .scripts import ScriptOptions
    from .trained_params import ModelTrainedParameters
    from .tuning.driver import TuneOutcome
    from .tuning.spec import TuneSpec

__all__ = ["RunSpec", "Run", "RunCollection", "load_config"]


def _load_dataset(d: Dataset, base: Path | None) -> DatasetData:
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
    def uses_alignment(self) -> bool:
        """Whether ``prepare`` writes alignment matrices for this run: several datasets
        with ``useAlignmentMatrix``, or one with ``useSingleDatasetAlignmentMatrix``
        (ignored in legacy collections, as in MATLAB)."""
        from .data.alignment import uses_alignment

        return uses_alignment(
            self.n_datasets,
            use_alignment_matrix=self.params.use_alignment_matrix,
            use_single_dataset_alignment_matrix=self.params.use_single_dataset_alignment_matrix,
            legacy=self.collection.layout.legacy,
        )

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
    def prepare(self, regenerate: bool = False) -> PreparedData | None:
        """Write this run's LFADS input files and link them into ``lfadsInput/``.

        The files live in the shared ``data_<D>/<runSpec>/`` folder (legacy layout:
        ``data_<D>/``); up-to-date files (same data hash) are kept unless
        ``regenerate``. Returns the :class:`~lfads_runs.data.PreparedData`, or
        ``None`` when every file was already up to date.

        Rewriting the shared files (``regenerate``, or a source file whose content
        changed) raises :class:`~lfads_runs.exceptions.RunBusyError` while another live
        process trains a run on them, and DataError when a source changed but a run
        already trained on the old inputs.
        """
        from .actions.prepare import prepare_run

        return prepare_run(self, regenerate)

    # ------------------------------------------------------------ data hooks (subclass these)
    def generate_counts_for_dataset(
        self, dataset: Dataset, mode: str
    ) -> DatasetData | Mapping[str, Any]:
        """The trials of ``dataset`` for this run (MATLAB ``generateCountsForDataset``).

        ``mode`` is ``"export"`` (the data LFADS trains on) or ``"alignment"`` (the
        data the alignment matrices are computed from, asked for only when
        :attr:`uses_different_data_for_alignment`). Return a
        :class:`~lfads_runs.data.DatasetData` or a mapping with the fields a loader
        function returns (``counts`` trials x time x neurons, ``time_ms``,
        ``bin_ms``, ``condition_id``, ``true_rates``, ``external_inputs``).
        The default reads the dataset's file with its YAML options (``loader``,
        ``keys``, ...); a subclass sees ``self.params`` and ``self.run_spec``.
        """
        return _load_dataset(dataset, self.collection.datasets.path)

    #: MATLAB ``usesDifferentDataForAlignment``: when True, the alignment matrices are
    #: computed from ``generate_counts_for_dataset(ds, "alignment")``.
    uses_different_data_for_alignment: bool = False

    def modify_sequence_data_post_loading(self, dataset: Dataset, data: DatasetData) -> DatasetData:
        """Change the loaded trials before export (MATLAB ``modifySequenceDataPostLoading``).

        Called for both modes with the checked :class:`~lfads_runs.data.DatasetData`;
        return the data to use (the default returns ``data`` unchanged).
        """
        return data

    def generate_extra_lfads_inputs_by_dataset(
        self, dataset: Dataset, data: DatasetData
    ) -> Mapping[str, Any]:
        """Extra arrays written into ``lfads_<ds>.h5`` under their own keys
        (MATLAB ``generateExtraLFADSInputsByDataset``); default none.

        ``data`` is the dataset's exported :class:`~lfads_runs.data.DatasetData` at
        its own bin width; ``lfads_runs.data.split_trials(data.n_trials,
        self.params.train_to_test_ratio)`` gives the 1-based train/valid trials.
        Keys must not be one of the standard LFADS input keys.
        """
        return {}

    def load_sequence_data(
        self, datasets: Any = None, mode: str = "export"
    ) -> dict[str, DatasetData]:
        """The trials this run exports (MATLAB ``run.loadSequenceData``): ``{dataset:
        DatasetData}`` through the hooks, at the data's own bin width; nothing is cached
        or written. ``datasets``: names, 1-based indices or a mask (default all)."""
        from .actions.hooks import load_sequence_data

        return load_sequence_data(self, datasets, mode)

    def _sequence_data(self, dataset: Dataset, mode: str) -> DatasetData:
        from .actions.hooks import sequence_data

        return sequence_data(self, dataset, mode)

    def _extra_inputs(self, dataset: Dataset, data: DatasetData) -> dict[str, np.ndarray]:
        from .actions.hooks import extra_inputs

        return extra_inputs(self, dataset, data)

    def do_multisession_alignment(self) -> AlignmentResult:
        """The alignment matrices of this run, computed from its data without writing
        anything (MATLAB ``run.doMultisessionAlignment``; ``prepare`` computes the same).

        Returns an :class:`~lfads_runs.data.AlignmentResult` for
        :func:`lfads_runs.plots.alignment.plot_alignment_reconstruction` (MATLAB
        ``tool.plotAlignmentReconstruction``). ConfigError when the run uses none.
        """
        from .actions.figures import run_alignment

        return run_alignment(self)

    @property
    def is_prepared(self) -> bool:
        """Every input file and inputInfo of the run exists (through its links)."""
        return all(f.is_file() for f in self.input_files.values()) and all(
            f.is_file() for f in self.input_info_files.values()
        )

    # ------------------------------------------------------------ results
    def load_input_info(self, reload: bool = False) -> dict[str, InputInfo]:
        """``inputInfo_<ds>.mat`` of every dataset: split, data hash, time base, raw counts.

        Returns ``{dataset: InputInfo}`` (:class:`lfads_runs.io.input_info.InputInfo`).
        """
        from .actions.load import load_input_info

        return load_input_info(self, reload)

    def load_posterior_means(
        self,
        kind: str | None = None,
        reload: bool = False,
        datasets: Any = None,
        with_valid: bool = False,
    ) -> dict[str, PosteriorMeans] | tuple[dict[str, PosteriorMeans], dict[str, bool]]:
        """Posterior means of the run's datasets, trials in original order.

        Returns ``{dataset: PosteriorMeans}``; ``rates`` are expected counts per
        bin and ``rates_hz`` spikes per second. ``kind`` defaults to the params'
        ``posterior_mean_kind``. ``datasets``: a subset by name or 1-based index
        (MATLAB ``'datasetIdx'``; default all). Raises MissingOutputError naming
        the files looked for, or DataError for unreadable ones.

        ``with_valid=True`` (MATLAB ``[pm, valid] = run.loadPosteriorMeans()``)
        never raises for a dataset: it returns ``(pms, valid)`` where ``valid`` maps
        every requested dataset to True/False and ``pms`` holds the valid ones only.
        """
        from .actions.load import load_posterior_means

        return load_posterior_means(self, kind, reload, datasets, with_valid)

    def select_dataset_names(self, datasets: Any = None) -> tuple[str, ...]:
        """The run's datasets selected by name, 1-based index (Python or numpy) or boolean
        mask; ``None`` selects all. Unknown names and out-of-range indices are an error."""
        if datasets is None:
            return self.dataset_names
        items = [datasets] if isinstance(datasets, str) else np.atleast_1d(datasets).tolist()
        if items and all(isinstance(x, bool) for x in items):
            if len(items) != self.n_datasets:
                raise ConfigError(
                    f"a dataset mask needs {self.n_datasets} entries, got {len(items)}"
                )
            return tuple(d for d, k in zip(self.dataset_names, items, strict=True) if k)
        out = []
        for x in items:
            if isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= self.n_datasets:
                out.append(self.dataset_names[x - 1])
            elif isinstance(x, str) and x in self.dataset_names:
                out.append(x)
            else:
                raise ConfigError(
                    f"run {self.name!r} has no dataset {x!r}; its datasets (1-based): "
                    + ", ".join(f"{i}: {d}" for i, d in enumerate(self.dataset_names, 1))
                )
        return tuple(dict.fromkeys(out))

    def hparams(self, **overrides: Any) -> Hyperparameters:
        """The LFADS :class:`~lfads_runs.Hyperparameters` this run trains with."""
        return self.params.to_hparams(self.n_datasets, **overrides)

    def model_spec(self) -> ModelSpec:
        """The run's :class:`~lfads_runs.ModelSpec`: variables and shapes of its LFADS model.

        Derived from the parameters and the prepared input files (neuron counts,
        alignment matrices); for runs made elsewhere without inputs, from the
        ``hyperparameters-<step>.txt`` file LFADS wrote.
        """
        from .actions.load import model_spec

        return model_spec(self)

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
    ) -> ModelTrainedParameters:
        """The trained weights as a validated :class:`~lfads_runs.ModelTrainedParameters`.

        Reads ``lfadsOutput/model_params``; when it is missing (or ``dump="force"``)
        it is first written from the best source present: a checkpoint of our
        engine or of TensorFlow LFADS (``checkpoint="lve"``, ``"latest"`` or a
        prefix path), else the collection's ``dump_command``. ``dump="never"``
        only reads. Raises :class:`~lfads_runs.ModelParamsUnavailable` when there
        is nothing to read or dump from, :class:`~lfads_runs.ModelParamsError`
        when the file does not match the run's model.
        """
        from .actions.load import load_model_trained_params

        return load_model_trained_params(self, dump, checkpoint, reload)

    def load_fit_log(self) -> FitLog:
        """The training log ``lfadsOutput/fitlog.csv`` as a :class:`~lfads_runs.results.fitlog.FitLog`."""
        from .actions.load import load_fit_log

        return load_fit_log(self)

    def infer(
        self,
        counts: Any,
        dataset: str | None = None,
        *,
        kind: str = "posterior_push_mean",
        n_samples: int | None = None,
        ext_inputs: Any = None,
        checkpoint: str | os.PathLike = "lve",
        bin_ms: float | None = None,
        condition_ids: Any = None,
        batch_size: int | None = None,
        seed: int | None = None,
        device: str = "cpu",
    ) -> PosteriorMeans:
        """Posterior means of NEW trials of ``dataset`` through the trained model (torch extra).

        ``counts`` are trials x time x neurons, at ``spike_bin_ms`` or at the
        original data's bin (rebinned like ``prepare``). ``kind``:
        "posterior_push_mean" (default) or "posterior_sample_and_average";
        ``checkpoint``: "lve", "latest", "model_params" or a path; the other
        arguments as :func:`lfads_runs.actions.inference.infer_run`. Returns a
        :class:`~lfads_runs.results.PosteriorMeans`.
        """
        from .actions.inference import infer_run

        return infer_run(
            self,
            counts,
            dataset=dataset,
            kind=kind,
            n_samples=n_samples,
            ext_inputs=ext_inputs,
            checkpoint=checkpoint,
            bin_ms=bin_ms,
            condition_ids=condition_ids,
            batch_size=batch_size,
            seed=seed,
            device=device,
        )

    def export(
        self,
        path: str | os.PathLike,
        *,
        kind: str | None = None,
        model_params: bool = True,
        checkpoint: str = "lve",
        nwb: bool | str | os.PathLike = False,
    ) -> Path:
        """Write this run's results to one HDF5 file (``nwb=True``: also an NWB file).

        Posterior means by dataset, trained weights (dumped from the checkpoint
        when needed), fit log, and the parameters as attributes; see
        :func:`lfads_runs.actions.export.export_run_results`. Returns the HDF5 path.
        """
        from .actions.export import export_run_results

        return export_run_results(
            self, path, kind=kind, model_params=model_params, checkpoint=checkpoint, nwb=nwb
        )

    def export_results_to_h5(
        self,
        folder: str | os.PathLike | None = None,
        *,
        kind: str | None = None,
        model_params: bool = True,
        checkpoint: str = "lve",
    ) -> list[Path]:
        """One HDF5 file per dataset, ``posteriorMeans_<ds>.h5``, and ``modelTrainedParams.h5``
        (MATLAB ``run.exportResultsToH5``) in the run's ``export/`` folder or ``folder``.

        The files are :meth:`PosteriorMeans.export_to_hdf5` and
        :meth:`ModelTrainedParameters.to_hdf5` files; options: ``kind``,
        ``model_params=False`` to leave the weights out. Returns the files written.
        """
        from .actions.export import export_run_folder

        return export_run_folder(
            self, folder, kind=kind, model_params=model_params, checkpoint=checkpoint
        )

    def add_posterior_means_to_data(
        self, dataset: str | int | None = None, kind: str | None = None
    ) -> dict[str, Any]:
        """The dataset's trials (as this run exported them) with its posterior means
        attached, in original trial order (MATLAB ``addPosteriorMeansToSeq``).

        Returns a mapping: the data fields (``counts``, ``time_ms``, ``bin_ms``,
        ``condition_id``, ``true_rates``, ``external_inputs``, at the data's own bin
        width) plus ``lfads_time_ms``, ``lfads_bin_ms`` and ``lfads_<field>`` for
        ``rates``/``means``/``variances``, ``factors``, ``generator_states``,
        ``generator_ics`` and ``controller_outputs`` (at ``spike_bin_ms``). A
        single-dataset run needs no ``dataset``.
        """
        from .actions.load import add_posterior_means_to_data

        return add_posterior_means_to_data(self, dataset, kind)

    # ------------------------------------------------------------ cleaning up
    def delete_lfads_output(self, dry_run: bool = False) -> list[Path]:
        """Delete what training wrote (MATLAB ``deleteLFADSOutput``): ``lfads.done``,
        ``lfadsOutput/``, ``lfads.out``, the state file and ``export/``.

        Returns the paths deleted (``dry_run``: those that would be). Raises
        :class:`~lfads_runs.exceptions.RunBusyError`, deleting nothing, while a live
        process (a queue) holds the run.
        """
        from .actions.cleanup import delete_files

        return delete_files([self], "output", dry_run=dry_run)

    def delete_lfads_input_files(self, dry_run: bool = False) -> list[Path]:
        """Delete the run's prepared inputs: the shared ``inputInfo_<ds>.mat`` and
        ``lfads_<ds>.h5`` in ``data_<D>/`` and the ``lfadsInput/`` links; ``prepare()``
        writes them again. Refused (RunBusyError) while any run reading the same files
        is held by a live process."""
        from .actions.cleanup import delete_files

        return delete_files([self], "input", dry_run=dry_run)

    # ------------------------------------------------------------ training (lfads_runs.executors)
    def train(
        self,
        *,
        executor: str | Executor | None = None,
        gpus: str | int | Sequence[int | str] | None = None,
        runs_per_gpu: int | None = None,
        max_parallel: int | None = None,
        threads: int | None = None,
        rerun: bool = False,
        engine: str | None = None,
        device: str | None = None,
        seed: int | None = None,
        dry_run: bool = False,
        quiet: bool = False,
        progress: bool | None = None,
        executor_options: Mapping[str, Any] | None = None,
        script_options: ScriptOptions | None = None,
    ) -> QueueResult:
        """Train this run through a queue; the options are those of
        :class:`~lfads_runs.executors.QueueOptions` (see ``rc.train``)."""
        from .executors import QueueOptions, train_runs

        options = QueueOptions.from_arguments(locals())
        return train_runs([self], options)

    def sample_posterior(
        self,
        kind: str | None = None,
        *,
        n_samples: int | None = None,
        checkpoint: str = "lve",
        executor: str | Executor | None = None,
        gpus: str | int | Sequence[int | str] | None = None,
        runs_per_gpu: int | None = None,
        max_parallel: int | None = None,
        threads: int | None = None,
        rerun: bool = False,
        engine: str | None = None,
        device: str | None = None,
        seed: int | None = None,
        dry_run: bool = False,
        quiet: bool = False,
        progress: bool | None = None,
        executor_options: Mapping[str, Any] | None = None,
        script_options: ScriptOptions | None = None,
    ) -> QueueResult:
        """Posterior sampling (and model_params) for this trained run.

        ``kind``, ``n_samples`` and ``checkpoint`` as in
        :func:`lfads_runs.executors.sample_posteriors`; the other options are those of
        :class:`~lfads_runs.executors.QueueOptions`.
        """
        from .executors import QueueOptions, sample_posteriors

        options = QueueOptions.from_arguments(locals())
        return sample_posteriors(
            [self], options, kind=kind, n_samples=n_samples, checkpoint=checkpoint
        )

    def tuned(self) -> Run:
        """The best model of this run's PBT search (``tune/best/``, see ``rc.tune``) as a Run.

        Same run spec, parameters and inputs; its paths are the search's best folder,
        so trained parameters, posterior means, plots and export load as for any run.
        Raises :class:`~lfads_runs.MissingOutputError` when no search has finished.
        """
        import copy

        best = self.paths.tuned_paths()
        if not (best.path_lfads_output / L.MODEL_PARAMS).is_file():
            raise MissingOutputError(
                f"{self.path}: no tuned model in {best.path} (run lfads-runs tune first)"
            )
        tuned = copy.copy(self)
        tuned.paths = best
        tuned._cache = FileCache()
        return tuned

    def state(self) -> RunStatus:
        """Status row from files: state, stage, epochs, best valid cost, failure reason."""
        from .executors.state import collection_run_status

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
    run_class
        The :class:`Run` subclass of every run (its data hooks, e.g.
        ``generate_counts_for_dataset``); YAML ``run_class: "module:Class"``.

    ``name``, ``root`` and ``version`` may be set after construction (MATLAB
    ``rc.version = ...``): every path follows; :class:`Run` objects obtained
    before keep their old paths.
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
        run_class: type[Run] | None = None,
    ):
        self._name = check_name(name, "collection name")
        self._root = Path(root)
        self._version = _version(version)
        self.comment = comment
        self.options: dict[str, Any] = dict(options or {})
        self.source = source  #: the YAML file this collection came from, if any
        self._run_class = _check_run_class(run_class or Run)
        self._set_layout(self._root, self._name, self._version)
        self._datasets = (
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

    # ------------------------------------------------------------ name, root, version
    def _set_layout(self, root: Path, name: str, version: int) -> None:
        try:
            self.layout = L.CollectionLayout(root, name, version)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._root, self._name, self._version = root, name, version
        self._runs = None

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._set_layout(self._root, check_name(value, "collection name"), self._version)

    @property
    def root(self) -> Path:
        return self._root

    @root.setter
    def root(self, value: str | Path) -> None:
        self._set_layout(Path(value), self._name, self._version)

    @property
    def version(self) -> int:
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        self._set_layout(self._root, self._name, _version(value))

    @property
    def run_class(self) -> type[Run]:
        """The class of every run (:class:`Run` or a subclass with data hooks)."""
        return self._run_class

    @run_class.setter
    def run_class(self, cls: type[Run]) -> None:
        self._run_class = _check_run_class(cls)
        self._runs = None

    @property
    def datasets(self) -> DatasetCollection:
        return self._datasets

    @datasets.setter
    def datasets(self, value: DatasetCollection) -> None:
        """Replace the datasets (e.g. by a filtered collection); every run spec must still
        find its datasets by name."""
        if not isinstance(value, DatasetCollection):
            raise ConfigError(f"datasets must be a DatasetCollection, got {type(value).__name__}")
        for spec in self._run_specs:
            spec.resolve(value)  # raises ConfigError naming the spec and dataset
        self._datasets = value
        self._runs = None

    # ------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path) -> RunCollection:
        """Build a collection from a YAML file (see :mod:`lfads_runs.config`)."""
        return load_config(path)

    def _add_run_spec(self, spec: RunSpec, replace: bool) -> None:
        if not isinstance(spec, RunSpec):
            raise ConfigError(f"expected a RunSpec, got {type(spec).__name__}")
        spec = spec.resolve(self.datasets)
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

    def add_run_spec(self, *specs: RunSpec | Iterable[RunSpec]) -> None:
        """Add run specs (or lists of them); one with the name of an existing spec
        replaces it (MATLAB ``addRunSpec``)."""
        for s in _flatten(specs, RunSpec):
            self._add_run_spec(s, replace=True)
        self._runs = None

    def add_params(self, *params: RunParams | Mapping[str, Any] | Iterable[Any]) -> None:
        """Add parameter sets, or lists of them as a sweep returns (MATLAB ``addParams(array)``);
        one with an existing param hash replaces it."""
        for p in _flatten(params, RunParams | Mapping):
            self._add_params(_as_params(p), replace=True)
        self._runs = None

    # ------------------------------------------------------------ editing (MATLAB clear*/filter*)
    def clear_run_specs(self) -> None:
        """Remove every run spec (MATLAB ``clearRunSpecs``); files on disk are untouched."""
        self._run_specs.clear()
        self._runs = None

    def clear_params(self) -> None:
        """Remove every parameter set (MATLAB ``clearParams``); files on disk are untouched."""
        self._params.clear()
        self._runs = None

    def clear_all(self) -> None:
        """Remove every run spec and parameter set (MATLAB ``clearAll``)."""
        self.clear_run_specs()
        self.clear_params()

    def filter_run_specs(self, keep: Any) -> None:
        """Keep only the run specs selected by ``keep`` (a boolean mask, names, 1-based
        indices or RunSpecs, as :meth:`find_runs` takes them; an empty list keeps none);
        MATLAB ``filterRunSpecs``."""
        rows = (
            []
            if _is_empty(keep)
            else self._select(keep, "run spec", self._match_spec, len(self._run_specs))
        )
        self._run_specs[:] = [self._run_specs[i] for i in sorted(set(rows))]
        self._runs = None

    def filter_params(self, keep: Any) -> None:
        """Keep only the parameter sets selected by ``keep`` (a boolean mask, 1-based indices,
        hashes or RunParams); MATLAB ``filterParams``."""
        cols = (
            []
            if _is_empty(keep)
            else self._select(keep, "parameter set", self._match_params, len(self._params))
        )
        self._params[:] = [self._params[j] for j in sorted(set(cols))]
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
                tuple(self.run_class(self, spec, p, j + 1) for j, p in enumerate(self._params))
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
    def find_runs(
        self,
        run_spec: Any = None,
        param: Any = None,
        *,
        return_indices: bool = False,
        tuned: bool = False,
    ) -> Run | list[Run] | tuple[Run | list[Run], list[int], list[int]]:
        """Find runs like MATLAB ``rc.findRuns(runSpecSearch, paramSearch)``.

        ``run_spec``: ``None``/``""`` (all), a name, a :class:`RunSpec`, a 1-based index
        (Python or numpy integer), or a list / numpy array of those / a boolean mask.
        ``param``: ``None`` (all), a 1-based index, ``"param_XXXXXX"`` or ``"XXXXXX"``, a
        :class:`RunParams`, or a list / array / mask. Two scalars give one :class:`Run`;
        otherwise a list in MATLAB (column-major) order. ``return_indices=True`` also
        returns the selected rows and columns, 1-based (MATLAB ``[runs, rowIdx, colIdx]``):
        ``(runs, rows, cols)``. ``tuned=True`` gives each run's PBT result
        (:meth:`Run.tuned`) instead.
        """
        rows = self._select(run_spec, "run spec", self._match_spec, len(self._run_specs))
        cols = self._select(param, "parameter set", self._match_params, len(self._params))
        found = [self.runs[i][j] for j in cols for i in rows]
        if tuned:
            found = [r.tuned() for r in found]
        result: Any = found[0] if _is_scalar(run_spec) and _is_scalar(param) else found
        if return_indices:
            return result, [i + 1 for i in rows], [j + 1 for j in cols]
        return result

    def _select(self, query: Any, what: str, match, n: int) -> list[int]:
        if isinstance(query, np.ndarray):
            query = query.tolist()  # numpy ints/bools -> Python ones
        if (
            query is None
            or (isinstance(query, str) and query == "")
            or (isinstance(query, list | tuple) and len(query) == 0)
        ):
            return list(range(n))
        items = list(query) if isinstance(query, list | tuple) else [query]
        items = [x.item() if isinstance(x, np.generic) else x for x in items]
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
            try:
                item = item.resolve(self.datasets)
            except ConfigError:
                return None
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
        self,
        kind: str | None = None,
        runs: Iterable[Run] | None = None,
        datasets: Any = None,
        reload: bool = False,
    ) -> CollectionResults:
        """Posterior means of every run that has them; nothing missing or unreadable aborts.

        ``loaded[(run_spec, param_index)]`` holds each run's readable datasets;
        ``missing`` lists ``(run, reason)`` for runs with none of them, and
        ``missing_datasets`` ``(run, dataset, reason)`` for every dataset that could not
        be read. ``datasets`` and ``reload``: as :meth:`Run.load_posterior_means`.
        """
        from .actions.load import collection_posterior_means

        return collection_posterior_means(self, kind, runs, datasets, reload)

    def export_results_to_h5(
        self,
        folder: str | os.PathLike | None = None,
        runs: Iterable[Run] | None = None,
        *,
        kind: str | None = None,
        model_params: bool = True,
        checkpoint: str = "lve",
    ) -> dict[Run, list[Path]]:
        """:meth:`Run.export_results_to_h5` for ``runs`` (default all that have posterior means).

        Without ``folder`` each run writes into its own ``export/``; with ``folder``,
        into ``folder/<run spec>_<param hash>/`` (MATLAB's ``rc.exportResultsToH5`` named
        these by run spec only, so parameter sets overwrote each other). When ``runs`` is
        not given, runs without results are skipped, and runs with some datasets missing
        are skipped with a warning.
        """
        from .actions.export import export_collection_folders

        return export_collection_folders(
            self, folder, runs, kind=kind, model_params=model_params, checkpoint=checkpoint
        )

    def delete_lfads_output(
        self, runs: Iterable[Run] | None = None, dry_run: bool = False
    ) -> list[Path]:
        """:meth:`Run.delete_lfads_output` for ``runs`` (default all); nothing is deleted
        when any of them is held by a live process."""
        from .actions.cleanup import delete_files

        return delete_files(self.all_runs if runs is None else runs, "output", dry_run=dry_run)

    def delete_lfads_input_files(
        self, runs: Iterable[Run] | None = None, dry_run: bool = False
    ) -> list[Path]:
        """:meth:`Run.delete_lfads_input_files` for ``runs`` (default all)."""
        from .actions.cleanup import delete_files

        return delete_files(self.all_runs if runs is None else runs, "input", dry_run=dry_run)

    def inventory(self) -> CollectionInventory:
        """Which files of every run exist on disk, and ``param_*`` folders the configuration
        does not name (``lfads-runs list``). A run's lifecycle state is :meth:`Run.state`."""
        from .actions.inventory import collection_inventory

        return collection_inventory(self)

    def status(self) -> CollectionInventory:
        """Deprecated name of :meth:`inventory` (the file inventory, not the runs' state)."""
        warnings.warn(
            "RunCollection.status() is now inventory(); a run's state is Run.state()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.inventory()

    def tune(
        self,
        runs: Iterable[Run] | None = None,
        *,
        spec: TuneSpec | None = None,
        address: str | None = None,
        resume: bool = False,
        init: Mapping[str, Any] | None = None,
        echo: Callable[[str], Any] = print,
    ) -> list[TuneOutcome]:
        """PBT searches (the YAML ``tune:`` section, or ``spec``) on Ray Tune, one per run.

        ``address``: a Ray cluster (``"auto"``, ``"ray://host:10001"``; default the
        section's, else a local Ray started for the searches with ``init`` as extra
        ``ray.init`` arguments); ``resume`` continues searches from their last
        generation; ``echo`` receives progress lines. See
        :func:`lfads_runs.tuning.driver.tune_collection`.
        """
        from .tuning.driver import tune_collection

        return tune_collection(
            self, runs, spec=spec, address=address, resume=resume, init=init, echo=echo
        )

    def train(
        self,
        runs: Iterable[Run] | None = None,
        *,
        executor: str | Executor | None = None,
        gpus: str | int | Sequence[int | str] | None = None,
        runs_per_gpu: int | None = None,
        max_parallel: int | None = None,
        threads: int | None = None,
        rerun: bool = False,
        engine: str | None = None,
        device: str | None = None,
        seed: int | None = None,
        dry_run: bool = False,
        quiet: bool = False,
        progress: bool | None = None,
        executor_options: Mapping[str, Any] | None = None,
        script_options: ScriptOptions | None = None,
    ) -> QueueResult:
        """Train ``runs`` (default all) through a queue: prepare, train, posterior means,
        model_params, done marker.

        Parameters
        ----------
        executor
            ``local`` (default), ``debug`` (in this process), ``slurm``, ``ray``, or
            an executor instance.
        gpus, runs_per_gpu, max_parallel, threads
            Slots of the local executor (``threads`` and ``runs_per_gpu`` also size
            Slurm jobs and Ray tasks).
        rerun
            Ignore done markers (training still resumes from the latest checkpoint).
        engine, device, seed
            ``torch`` (default) or ``external``; the engine's device and seed.
        dry_run, quiet, progress
            Only say what would run; no progress lines; a progress bar (None: on a terminal).
        executor_options
            The executor's own options (e.g. Slurm ``partition``).
        script_options
            :class:`~lfads_runs.scripts.ScriptOptions` for the external engine.

        Options left at None come from the YAML ``train:`` section (see
        :class:`~lfads_runs.executors.QueueOptions`).

        Returns
        -------
        QueueResult
            ``.summary()`` reads "N done, M skipped, K failed"; ``.exit_code`` 0, 1 or 130.
        """
        from .executors import QueueOptions, train_runs

        options = QueueOptions.from_arguments(locals())
        return train_runs(self.all_runs if runs is None else runs, options)

    def write_scripts(
        self,
        runs: Iterable[Run] | None = None,
        options: ScriptOptions | None = None,
        *,
        kind: str | None = None,
        n_samples: int | None = None,
    ) -> dict[str, Any]:
        """Shell scripts for the original TensorFlow LFADS (default: every run).

        ``options`` default to the YAML ``scripts:`` section; ``kind`` and
        ``n_samples`` set the posterior script (default: each run's parameters).
        Returns ``{"tensorboard": path, "runs": {run path: {stage: script path}}}``;
        see :func:`lfads_runs.scripts.write_scripts`.
        """
        from .scripts import write_scripts

        return write_scripts(self, runs, options, kind=kind, n_samples=n_samples)


def load_config(path: str | Path) -> RunCollection:
    """Read a YAML configuration into a :class:`RunCollection` (nothing is written)."""
    cfg = read_config(path, run_base=Run)
    try:
        return RunCollection(
            cfg.root,
            cfg.name,
            cfg.datasets,
            cfg.run_specs,
            cfg.params,
            version=cfg.version,
            comment=cfg.comment,
            options=cfg.options,
            source=cfg.source,
            run_class=cfg.run_class,
        )
    except ConfigError as exc:
        raise ConfigError(f"{cfg.source}: {exc}") from None


def _load_run(config: str, run_spec: str, param_hash: str) -> Run:
    """One run of a YAML file's collection (for workers, see :mod:`lfads_runs._run_loader`)."""
    return load_config(config).run(run_spec, param_hash)


set_run_loader(_load_run)


def params_record(params: RunParams) -> dict[str, Any]:
    """The content of ``params.json``: full parameters and both hashes."""
    return {
        "param_hash": params.param_hash,
        "data_hash": params.data_hash,
        "class": f"{type(params).__module__}.{type(params).__qualname__}",
        "differences": jsonable(params.differences()),
        "params": jsonable(params.as_dict()),
        "lfads_runs_version": __version__,
    }


def _is_scalar(q: Any) -> bool:
    if isinstance(q, np.generic):
        q = q.item()
    return isinstance(q, str | int | RunSpec | RunParams) and not (isinstance(q, str) and q == "")


def _is_empty(x: Any) -> bool:
    """An empty selection (for filters: keep nothing; for find_runs ``[]`` means all)."""
    return isinstance(x, list | tuple | np.ndarray) and len(x) == 0


def _flatten(items: Iterable[Any], scalar: Any) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if isinstance(x, scalar):
            out.append(x)
        elif isinstance(x, Iterable) and not isinstance(x, str | bytes):
            out.extend(_flatten(x, scalar))
        else:
            out.append(x)  # rejected with a clear message by the caller's check
    return out


def _version(value: Any) -> int:
    try:
        v = int(value)
        ok = not isinstance(value, bool) and v == value if not isinstance(value, str) else True
    except (TypeError, ValueError):
        ok = False
    if not ok or v < 1:
        raise ConfigError(f"version must be a positive integer (YYYYMMDD), got {value!r}")
    return v


def _check_run_class(cls: Any) -> type[Run]:
    if not (isinstance(cls, type) and issubclass(cls, Run)):
        raise ConfigError(f"run_class must be a subclass of lfads_runs.Run, got {cls!r}")
    return cls
