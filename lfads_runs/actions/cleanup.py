"""Deleting a run's outputs or inputs (MATLAB ``deleteLFADSOutput`` / ``deleteLFADSInputFiles``).

Every run whose files are touched is claimed first, exactly as a queue claims a
run before training it: a run held by a live process makes the whole call fail
with :class:`~lfads_runs.exceptions.RunBusyError` before anything is deleted,
and no queue can start one of them while the files go. Markers that say a run
is complete go first (``lfads.done``; ``inputInfo_<ds>.mat``, whose hash marks a
prepared dataset), so a deletion cut short by kill -9 never leaves a run that
looks done or prepared with files missing.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..claims import Claim, ClaimHandle, acquire_claim, live_claim
from ..exceptions import RunBusyError

if TYPE_CHECKING:
    from ..collection import Run

__all__ = ["output_files", "input_files", "delete_files"]


def output_files(run: Run) -> list[Path]:
    """What ``delete_lfads_output`` removes, markers first: done markers, ``lfadsOutput/``,
    ``lfads.out`` (both modes), the state file and ``export/``."""
    p = run.paths
    return [
        p.done_marker,
        p.done_marker_posterior_only,
        p.path_lfads_output,
        p.log_file,
        p.log_file_posterior_only,
        p.state_file,
        p.export_dir,
    ]


def input_files(run: Run) -> list[Path]:
    """What ``delete_lfads_input_files`` removes: the shared ``inputInfo_<ds>.mat`` and
    ``lfads_<ds>.h5`` of the run's datasets (in ``data_<D>/``) and ``lfadsInput/``."""
    p = run.paths
    infos = [p.common_input_info_file(ds) for ds in run.dataset_names]
    inputs = [p.common_input_file(ds) for ds in run.dataset_names]
    return [*infos, *inputs, p.path_lfads_input]


def sharing_runs(run: Run) -> list[Run]:
    """Runs of the collection that read the same shared input files (same data folder)."""
    return [r for r in run.collection.all_runs if r.path_common_data == run.path_common_data]


def _exists(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def _busy(run: Run, what: str, holder: Claim) -> RunBusyError:
    return RunBusyError(
        f"cannot delete the {what} of {run.name} {run.param_hash}: "
        f"{run.path} is held by {holder.describe()}"
    )


@contextlib.contextmanager
def _claimed(runs: Iterable[Run], what: str) -> Iterator[None]:
    """Hold the claim of every run in ``runs`` (those with a folder) for the block."""
    held: list[ClaimHandle] = []
    try:
        for run in runs:
            if not run.path.is_dir():
                continue  # never ran nor prepared here: nothing can hold it
            got = acquire_claim(run.paths, executor="cleanup")
            if isinstance(got, Claim):
                raise _busy(run, what, got)
            held.append(got)
        yield
    finally:
        for h in held:
            h.release()


def delete_files(runs: Iterable[Run], what: str, *, dry_run: bool = False) -> list[Path]:
    """Delete ``what`` (``"output"`` or ``"input"``) of ``runs``; return the paths deleted
    (with ``dry_run``: those that would be). Raises RunBusyError, deleting nothing, when a
    live process holds one of the runs (for inputs: any run sharing the files)."""
    runs = list(runs)
    pick = output_files if what == "output" else input_files
    targets = list(dict.fromkeys(f for run in runs for f in pick(run) if _exists(f)))
    guarded = runs if what == "output" else [r for run in runs for r in sharing_runs(run)]
    guarded = list({r.path: r for r in guarded}.values())
    label = "LFADS output" if what == "output" else "LFADS input files"
    if dry_run:
        for r in guarded:
            if (holder := live_claim(r.path)) is not None:
                raise _busy(r, label, holder)
        return targets
    with _claimed(guarded, label):
        for f in targets:
            if f.is_dir() and not f.is_symlink():
                shutil.rmtree(f)
            else:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
    for run in runs:
        run._cache.clear()
    return targets
