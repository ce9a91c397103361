"""Export of one run's results: :meth:`Run.export <lfads_runs.collection.Run.export>`.

Gathers what a run has (posterior means of every dataset, trained weights, fit
log, parameters) and writes them with :func:`lfads_runs.results.export_run`
(HDF5; layout in :mod:`lfads_runs.results.export`) and optionally
:func:`lfads_runs.results.export_run_nwb`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import LfadsRunsWarning, MissingOutputError, ModelParamsUnavailable

if TYPE_CHECKING:
    from ..collection import Run, RunCollection
    from ..trained_params import ModelTrainedParameters

__all__ = [
    "export_collection_folders",
    "export_file_name",
    "export_run_folder",
    "export_run_results",
    "run_attributes",
]


def export_file_name(run: Run, suffix: str = ".h5") -> str:
    """``<run spec>_<param hash><suffix>``: unique within a collection (MATLAB's export
    folders were named by run spec only, so parameter sets overwrote each other)."""
    return f"{run.name}_{run.param_hash}{suffix}"


def run_attributes(run: Run) -> dict[str, Any]:
    """The run's identity and every parameter (stored as attributes of the export)."""
    attrs: dict[str, Any] = {
        "collection": run.collection.name,
        "collection_path": os.fspath(run.collection.path),
        "run_spec": run.name,
        "datasets": list(run.dataset_names),
        "param_index": run.param_index,
        "param_hash": run.param_hash,
        "data_hash": run.data_hash,
        "run_path": os.fspath(run.path),
        "parameter_differences": run.params.differences(),
    }
    for key, value in run.params.as_dict().items():
        attrs.setdefault(key, value)
    return attrs


def export_run_results(
    run: Run,
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    model_params: bool = True,
    checkpoint: str = "lve",
    nwb: bool | str | os.PathLike = False,
) -> Path:
    """Write ``run``'s results to one HDF5 file; optionally an NWB file too.

    Parameters
    ----------
    path
        The HDF5 file (replaced atomically if it exists).
    kind
        Posterior-mean kind (default the run's ``posterior_mean_kind``).
    model_params
        Include the trained weights; ``model_params`` is dumped from the
        ``checkpoint`` when missing. When there is nothing to dump from, the
        weights are left out with a warning.
    nwb
        ``True``: also write ``path`` with suffix ``.nwb`` (needs the nwb extra);
        a path: write the NWB file there.

    Returns
    -------
    Path
        The HDF5 file.

    Raises
    ------
    MissingOutputError
        The run has no posterior means (train it, or sample them first).
    """
    from ..results.export import export_run, export_run_nwb

    path = Path(path)
    posterior = run.load_posterior_means(kind)
    trained = _trained_params(run, checkpoint) if model_params else None
    try:
        fit_log = run.load_fit_log()
    except MissingOutputError as exc:
        warnings.warn(f"exporting {run.name} without a fit log: {exc}", LfadsRunsWarning, 2)
        fit_log = None
    attrs = run_attributes(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_run(
        path,
        posterior_means=posterior,
        trained_params=trained,
        fit_log=fit_log,
        params_attrs=attrs,
    )
    if nwb:
        nwb_path = path.with_suffix(".nwb") if nwb is True else Path(nwb)
        export_run_nwb(
            nwb_path,
            posterior_means=posterior,
            params_attrs=attrs,
            identifier=f"{run.collection.name}/{run.name}/{run.param_hash}",
        )
    return path


def _trained_params(run: Run, checkpoint: str) -> ModelTrainedParameters | None:
    """The run's weights, or None with a warning when there is nothing to dump them from."""
    try:
        return run.load_model_trained_params(checkpoint=checkpoint)
    except ModelParamsUnavailable as exc:
        # stacklevel 3: the caller of export_run / export_run_folder
        warnings.warn(f"exporting {run.name} without model parameters: {exc}", LfadsRunsWarning, 3)
        return None


def export_run_folder(
    run: Run,
    folder: str | os.PathLike | None = None,
    *,
    kind: str | None = None,
    model_params: bool = True,
    checkpoint: str = "lve",
) -> list[Path]:
    """MATLAB's per-object export: ``posteriorMeans_<ds>.h5`` for each dataset and
    ``modelTrainedParams.h5`` in ``folder`` (default the run's ``export/``).

    Raises MissingOutputError when the run has no posterior means; the weights are
    left out with a warning when there is nothing to dump them from.
    """
    paths = run.paths
    out_dir = paths.export_dir if folder is None else Path(folder)
    posterior = run.load_posterior_means(kind)
    trained = _trained_params(run, checkpoint) if model_params else None
    attrs = run_attributes(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ds, pm in posterior.items():
        target = out_dir / paths.export_posterior_file(ds).name
        written.append(pm.export_to_hdf5(target, attrs))
    if trained is not None:
        written.append(trained.to_hdf5(out_dir / paths.export_model_params_file().name))
    return written


def export_collection_folders(
    rc: RunCollection,
    folder: str | os.PathLike | None = None,
    runs: Iterable[Run] | None = None,
    *,
    kind: str | None = None,
    model_params: bool = True,
    checkpoint: str = "lve",
) -> dict[Run, list[Path]]:
    """``RunCollection.export_results_to_h5``: :func:`export_run_folder` for ``runs``, or for
    every run with all its posterior means (a run with some missing is skipped with a warning)."""
    chosen = list(runs) if runs is not None else None
    out: dict[Run, list[Path]] = {}
    for run in chosen if chosen is not None else rc.all_runs:
        if chosen is None:
            pms, valid = run.load_posterior_means(kind, with_valid=True)
            missing = [ds for ds, ok in valid.items() if not ok]
            if missing and pms:  # some datasets only: say so rather than skip silently
                warnings.warn(
                    f"not exporting {run.name} {run.param_hash}: no posterior means for "
                    f"{', '.join(missing)}",
                    LfadsRunsWarning,
                    stacklevel=3,
                )
            if missing:
                continue
        sub = None if folder is None else Path(folder) / export_file_name(run, "")
        out[run] = export_run_folder(
            run, sub, kind=kind, model_params=model_params, checkpoint=checkpoint
        )
    return out
