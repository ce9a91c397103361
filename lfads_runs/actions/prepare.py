"""Preparing a run: its LFADS input files in the shared ``data_<D>/<runSpec>/`` folder,
linked into ``lfadsInput/`` (``Run.prepare``, ``lfads-runs prepare``).

The run's datasets come through its data hooks (:mod:`lfads_runs.actions.hooks`); files
already up to date (same data hash, same held-out split, unchanged sources) are kept.
Rewriting shared files that a live or finished run uses is refused
(:mod:`lfads_runs.claims`), and a first ``prepare`` that fails removes what it created.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import layout as L
from .._rollback import undo_created
from ..exceptions import DataError, OutputError, RunBusyError
from .hooks import extra_inputs, sequence_data

if TYPE_CHECKING:
    from ..collection import Run
    from ..data import PreparedData

__all__ = ["prepare_run"]


def prepare_run(run: Run, regenerate: bool = False) -> PreparedData | None:
    """Write ``run``'s LFADS input files and link them into ``lfadsInput/`` (``Run.prepare``)."""
    from ..data import input_file_names

    names = [n for ds in run.dataset_names for n in input_file_names(ds)]
    with undo_created(_prepare_writes(run, names)):
        try:
            result = _prepare(run, regenerate, names)
        except OutputError:
            raise
        except OSError as exc:  # root is a file, a read-only folder, a full disk
            raise OutputError(
                f"cannot write the inputs of run {run.name!r} under {run.collection.path}: "
                f"{exc.strerror or exc}: {exc.filename or ''}"
            ) from exc
    run._cache.clear()  # files it had read may have been rewritten
    return result


def _prepare_writes(run: Run, names: list[str]) -> list[Path]:
    """Every path a first ``prepare`` of this run creates (removed again if it fails)."""
    common = run.path_common_data
    param_folder = run.collection.layout.param_folder(run.params.param_hash)
    return [
        run.collection.path.parent,  # the configured root
        run.collection.path,
        param_folder,
        param_folder / L.PARAMS_JSON,
        run.path,
        run.path_lfads_input,
        *(run.path_lfads_input / n for n in names),
        common.parent,  # data_<D> (the collection folder in the legacy layout)
        common,
        common / L.PREPARE_LOCK,
        *(common / n for n in names),
        common / L.SOURCES_JSON,
    ]


def _prepare(run: Run, regenerate: bool, names: list[str]) -> PreparedData | None:
    from ..data import link_inputs, prepared_status, split_changed
    from ..data.fingerprint import changed_sources, content_hash, read_sources, write_sources

    p = run.params
    common = run.path_common_data
    if regenerate:
        _refuse_rewrite(run, running_only=True, why="--regenerate")
    run.collection.require_param_folder(p)
    status = prepared_status(common, run.dataset_names, run.data_hash)
    heldout = {d.name: d.heldout_neurons for d in run.datasets}
    sources = {d.name: d.path for d in run.datasets}
    recorded = read_sources(common)
    touched = [] if regenerate else changed_sources(common, sources.items())
    # An up-to-date file may still hold another held-out split than the YAML asks for.
    incomplete = any(s.state != "ok" for s in status.values()) or any(
        split_changed(s.lfads_input, heldout[n], n) for n, s in status.items()
    )
    result = None
    if regenerate or incomplete or touched or any(n not in recorded for n in sources):
        loaded = {d.name: sequence_data(run, d, "export") for d in run.datasets}
        changed = [n for n in touched if recorded[n].get("content") != content_hash(loaded[n])]
        if changed:
            files = ", ".join(f"{n} ({sources[n]})" for n in changed)
            _refuse_rewrite(
                run,
                running_only=False,
                why=f"dataset file(s) {files} changed since {common} was prepared",
            )
        redo = regenerate or bool(changed)
        if redo or incomplete:
            result = _write_inputs(run, loaded, redo, heldout)
        write_sources(common, sources, loaded)
    link_inputs(common, run.path_lfads_input, names, regenerate=regenerate)
    return result


def _refuse_rewrite(run: Run, *, running_only: bool, why: str) -> None:
    """Refuse to rewrite the shared inputs while a run uses them (RunBusyError) or,
    unless ``running_only``, trained on them (DataError)."""
    from ..claims import input_users

    users = input_users(run.collection.layout, run.name, run.path_common_data)
    live = [u for u in users if u.live_claim]
    if live:
        listing = "; ".join(u.describe() for u in live)
        raise RunBusyError(
            f"{why}: refused, run(s) {listing} are training on the inputs in "
            f"{run.path_common_data} now; wait for them or stop them first"
        )
    trained = [u for u in users if u.trained]
    if running_only or not trained:
        return
    listing = "; ".join(u.describe() for u in trained)
    raise DataError(
        f"{why}, but run(s) {listing} already trained on the old inputs; rewriting them "
        "would leave those results without their inputs. Restore the file, or re-prepare "
        "on purpose with lfads-runs prepare --regenerate (and retrain those runs)"
    )


def _write_inputs(
    run: Run, loaded: dict[str, Any], regenerate: bool, heldout: dict
) -> PreparedData:
    from ..data import prepare_datasets

    p = run.params
    aligned = run.uses_alignment
    alignment_data = None
    if run.uses_different_data_for_alignment and aligned:
        alignment_data = [(d.name, sequence_data(run, d, "alignment")) for d in run.datasets]
    extras = {
        name: extra_inputs(run, run.collection.datasets[name], dd) for name, dd in loaded.items()
    }
    return prepare_datasets(
        list(loaded.items()),
        alignment_data=alignment_data,
        extra_inputs=extras,
        spike_bin_ms=p.spike_bin_ms,
        train_to_test_ratio=p.train_to_test_ratio,
        batch_size=p.c_batch_size,
        output_dist=p.c_output_dist,
        factors_dim=p.c_factors_dim,
        # the run has decided for its number of datasets: one flag serves both cases
        use_alignment_matrix=aligned,
        use_single_dataset_alignment_matrix=aligned,
        alignment_approach=p.alignment_approach,
        alignment_extra_args=p.alignment_extra_args,
        data_hash=run.data_hash,
        out_dir=run.path_common_data,
        regenerate=regenerate,
        ext_input_dim=p.c_ext_input_dim,
        heldout=heldout,
    )
