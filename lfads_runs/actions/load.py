"""Reading a run's results: input info, posterior means, model spec, trained weights and
fit log (the ``Run.load_*`` methods). Every file read is kept in the run's file cache and
read again when it changes on disk (``run._cache``, owned by the run and filled here).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import layout as L
from ..exceptions import (
    ConfigError,
    DataError,
    LfadsRunsError,
    LfadsRunsWarning,
    MissingOutputError,
)
from .hooks import sequence_data

if TYPE_CHECKING:
    from ..collection import Run, RunCollection
    from ..io.input_info import InputInfo
    from ..model_spec import ModelSpec
    from ..results.fitlog import FitLog
    from ..results.posterior_means import PosteriorMeans
    from ..trained_params import ModelTrainedParameters

__all__ = [
    "CollectionResults",
    "add_posterior_means_to_data",
    "collection_posterior_means",
    "load_fit_log",
    "load_input_info",
    "load_model_trained_params",
    "load_posterior_means",
    "model_spec",
    "posterior_means_each",
]


def load_input_info(run: Run, reload: bool = False) -> dict[str, InputInfo]:
    """:meth:`Run.load_input_info <lfads_runs.collection.Run.load_input_info>`, documented there."""
    return {ds: _input_info_of(run, ds, reload) for ds in run.dataset_names}


def _read_input_info(run: Run, ds: str) -> InputInfo:
    from ..io.input_info import read_input_info

    path = run.paths.input_info_file(ds)
    if not path.exists():
        raise MissingOutputError(
            f"{path} does not exist: prepare the run first (run.prepare() or lfads-runs prepare)"
        )
    info = read_input_info(path)
    if info.data_hash and info.data_hash != run.data_hash.removeprefix(L.DATA_PREFIX):
        warnings.warn(
            f"{path} was prepared for data hash {info.data_hash}, but this run's "
            f"is {run.data_hash}",
            LfadsRunsWarning,
            stacklevel=3,
        )
    return info


def load_posterior_means(
    run: Run,
    kind: str | None = None,
    reload: bool = False,
    datasets: Any = None,
    with_valid: bool = False,
) -> dict[str, PosteriorMeans] | tuple[dict[str, PosteriorMeans], dict[str, bool]]:
    """:meth:`Run.load_posterior_means <lfads_runs.collection.Run.load_posterior_means>`, documented there."""
    kind = kind or run.params.posterior_mean_kind
    pms, errors = posterior_means_each(run, kind, reload, datasets)
    if datasets is None and not errors:  # one object while no file changes
        files = run.posterior_files(kind)
        pms = run._cache.get(
            f"posterior_means/{kind}",
            lambda: [f for ds in pms for f in _posterior_sources(run, files, ds)],
            lambda: pms,
            reload=reload,
        )
    if with_valid:
        return pms, {ds: ds not in errors for ds in (*pms, *errors)}
    if errors:
        raise next(iter(errors.values()))
    return pms


def posterior_means_each(
    run: Run, kind: str | None, reload: bool, datasets: Any
) -> tuple[dict[str, PosteriorMeans], dict[str, Exception]]:
    """Every requested dataset's posterior means, or the error that stopped it."""
    from ..io.lfads_input import read_lfads_input
    from ..results.posterior_means import read_posterior_means

    kind = kind or run.params.posterior_mean_kind
    files = run.posterior_files(kind)
    out: dict[str, Any] = {}
    errors: dict[str, Exception] = {}
    for ds in run.select_dataset_names(datasets):
        key = f"posterior_means/{kind}/{ds}"

        def load(ds: str = ds) -> Any:
            return read_posterior_means(
                files[ds]["train"],
                files[ds]["valid"],
                dataset=ds,
                kind=kind,
                spike_bin_ms=run.params.spike_bin_ms,
                output_dist=run.params.c_output_dist,
                input_info=_input_info_of(run, ds, reload),
                lfads_input=read_lfads_input(run.paths.input_file(ds)),
                strict=True,  # every trial of the run's inputs, finite rates
            )

        try:
            out[ds] = run._cache.get(
                key, lambda ds=ds: _posterior_sources(run, files, ds), load, reload=reload
            )
        except (LfadsRunsError, OSError) as exc:  # one bad dataset: report, go on
            run._cache.pop(key)  # never serve what was there before
            errors[ds] = (
                exc
                if isinstance(exc, LfadsRunsError)
                else DataError(f"dataset {ds!r}: {type(exc).__name__}: {exc}")
            )
    return out, errors


def _posterior_sources(run: Run, files: dict[str, Any], ds: str) -> list[Path]:
    """The files one dataset's posterior means are read from (their cache's identity)."""
    return [*files[ds].values(), run.paths.input_info_file(ds), run.paths.input_file(ds)]


def _input_info_of(run: Run, ds: str, reload: bool = False) -> InputInfo:
    path = run.paths.input_info_file(ds)
    return run._cache.get(
        f"input_info/{ds}", lambda: [path], lambda: _read_input_info(run, ds), reload=reload
    )


def model_spec(run: Run) -> ModelSpec:
    """:meth:`Run.model_spec <lfads_runs.collection.Run.model_spec>`, documented there."""
    from ..dump import spec_from_inputs, spec_from_output_dir

    def load() -> Any:
        if run.is_prepared:
            return spec_from_inputs(
                run.hparams(),
                {L.lfads_dataset_name(ds): f for ds, f in run.input_files.items()},
            )
        return spec_from_output_dir(
            run.path_lfads_output, run.hparams(), input_dir=run.path_lfads_input
        )

    def files() -> list[Path]:
        from ..io.hyperparameters_file import hyperparameters_files

        return [*run.input_files.values(), *hyperparameters_files(run.path_lfads_output)]

    return run._cache.get("model_spec", files, load)


def load_model_trained_params(
    run: Run, dump: str = "auto", checkpoint: str = "lve", reload: bool = False
) -> ModelTrainedParameters:
    """:meth:`Run.load_model_trained_params <lfads_runs.collection.Run.load_model_trained_params>`, documented there."""
    from ..dump import load_trained_params
    from ..io.checkpoints import has_checkpoint

    def load() -> Any:
        try:
            spec = run.model_spec()
        except MissingOutputError:
            # Neither inputs nor LFADS's hyperparameters file: if there is also nothing to
            # read or dump, the listing of what was looked for says more than the spec.
            if run.file_model_params.exists() or has_checkpoint(run.path_lfads_output):
                raise
            spec = None
        return load_trained_params(
            run.path_lfads_output,
            run.dataset_names,
            spec,
            dump=dump,
            checkpoint=checkpoint,
            dump_command=run.dump_command(),
            log_path=run.paths.log_file if run.path.is_dir() else None,
        )

    # Keyed by the checkpoint asked for; reread when model_params changes on disk
    # (deleted: the auto-dump runs again; re-dumped or retrained: the new weights).
    return run._cache.get(
        f"trained_params/{checkpoint}",
        lambda: [run.file_model_params],
        load,
        reload=reload or dump == "force",
    )


def load_fit_log(run: Run) -> FitLog:
    """:meth:`Run.load_fit_log <lfads_runs.collection.Run.load_fit_log>`, documented there."""
    from ..results.fitlog import read_fit_log

    return read_fit_log(run.file_fitlog)


def add_posterior_means_to_data(
    run: Run, dataset: str | int | None = None, kind: str | None = None
) -> dict[str, Any]:
    """:meth:`Run.add_posterior_means_to_data <lfads_runs.collection.Run.add_posterior_means_to_data>`, documented there."""
    if dataset is None:
        if run.n_datasets != 1:
            raise ConfigError(
                f"run {run.name!r} has {run.n_datasets} datasets: name one "
                f"({', '.join(run.dataset_names)})"
            )
        dataset = 1
    (name,) = run.select_dataset_names([dataset])
    pm = run.load_posterior_means(kind, datasets=[name])[name]
    data = sequence_data(run, run.collection.datasets[name], "export")
    if data.n_trials != pm.n_trials:
        raise DataError(
            f"dataset {name!r} now has {data.n_trials} trials, but the posterior means of "
            f"run {run.name!r} cover {pm.n_trials}: the data changed after the run was "
            "prepared"
        )
    out: dict[str, Any] = {
        "counts": data.counts,
        "time_ms": data.time_vector_ms,
        "bin_ms": data.bin_ms,
        "condition_id": data.condition_id,
        "true_rates": data.true_rates,
        "external_inputs": data.external_inputs,
        "lfads_time_ms": pm.time_ms,
        "lfads_bin_ms": pm.bin_width_ms,
    }
    for field in ("rates", "means", "variances", "factors", "generator_states",
                  "generator_ics", "controller_outputs"):  # fmt: skip
        value = getattr(pm, field)
        if value is not None:
            out[f"lfads_{field}"] = value
    return out


@attrs.frozen
class CollectionResults:
    """Results over a collection: ``loaded[(run_spec, param_index)]``, the runs ``missing``
    (nothing readable) and every unreadable dataset in ``missing_datasets``."""

    loaded: dict[tuple[str, int], dict[str, Any]]
    missing: list[tuple[Run, str]]
    missing_datasets: list[tuple[Run, str, str]] = attrs.Factory(list)  #: (run, dataset, reason)


def collection_posterior_means(
    rc: RunCollection,
    kind: str | None = None,
    runs: Iterable[Run] | None = None,
    datasets: Any = None,
    reload: bool = False,
) -> CollectionResults:
    """``RunCollection.load_posterior_means``: every run's readable datasets, and what was not."""
    loaded: dict[tuple[str, int], dict[str, Any]] = {}
    missing: list[tuple[Run, str]] = []
    missing_datasets: list[tuple[Run, str, str]] = []
    for run in runs if runs is not None else rc.all_runs:
        pms, errors = posterior_means_each(run, kind, reload, datasets)
        if pms:
            loaded[(run.name, run.param_index)] = pms
        else:
            missing.append((run, "; ".join(str(e) for e in errors.values())))
        missing_datasets += [(run, ds, str(e)) for ds, e in errors.items()]
    return CollectionResults(loaded, missing, missing_datasets)
