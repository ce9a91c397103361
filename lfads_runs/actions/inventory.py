"""The file inventory of a collection (``rc.inventory()``, ``lfads-runs list``): which files
of each run exist on disk. Reads files only, never writes.

Not to be confused with a run's lifecycle state (``Run.state()``, ``lfads-runs status``,
:mod:`lfads_runs.executors.state`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs

from .. import layout as L

if TYPE_CHECKING:
    from ..collection import Run, RunCollection

__all__ = [
    "RunFiles",
    "UnknownParamFolder",
    "CollectionInventory",
    "run_files",
    "collection_inventory",
]


@attrs.frozen
class RunFiles:
    """Which files of one run exist."""

    run_spec: str
    param_index: int
    param_hash: str
    data_hash: str
    path: str
    folder: bool
    inputs: bool  #: every ``lfadsInput/lfads_<ds>.h5`` resolves to a file
    input_info: bool  #: every ``lfadsInput/inputInfo_<ds>.mat`` resolves
    checkpoints: int  #: regular checkpoints present
    lve_checkpoints: int  #: lowest-validation-error checkpoints present
    model_params: bool
    posterior: dict[str, bool]  #: kind -> all datasets' train and valid files present
    fitlog: bool
    done: bool

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class UnknownParamFolder:
    """A ``param_*`` folder on disk that the configuration does not name."""

    path: str
    param_hash: str
    params: dict[str, Any] | None  #: from its ``params.json`` when present
    run_specs: list[str]

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class CollectionInventory:
    """Which files of every run exist, and the ``param_*`` folders the configuration misses."""

    collection: str
    path: str
    runs: list[RunFiles]
    unknown_param_folders: list[UnknownParamFolder]

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "path": self.path,
            "runs": [r.as_dict() for r in self.runs],
            "unknown_param_folders": [u.as_dict() for u in self.unknown_param_folders],
        }


def run_files(run: Run) -> RunFiles:
    from ..io.checkpoints import list_checkpoints

    p = run.paths
    out = p.path_lfads_output
    posterior = {
        kind: all(
            f.is_file() for split in run.posterior_files(kind).values() for f in split.values()
        )
        for kind in L.POSTERIOR_KINDS
    }
    return RunFiles(
        run_spec=run.name,
        param_index=run.param_index,
        param_hash=run.param_hash,
        data_hash=run.data_hash,
        path=str(p.path),
        folder=p.path.is_dir(),
        inputs=all(f.is_file() for f in run.input_files.values()),
        input_info=all(f.is_file() for f in run.input_info_files.values()),
        checkpoints=len(list_checkpoints(out, lve=False)),
        lve_checkpoints=len(list_checkpoints(out, lve=True)),
        model_params=p.file_model_params.is_file(),
        posterior=posterior,
        fitlog=p.file_fitlog.is_file(),
        done=p.done_marker.is_file(),
    )


def collection_inventory(rc: RunCollection) -> CollectionInventory:
    known = {p.param_hash for p in rc.params}
    unknown = []
    for folder in rc.layout.param_folders_on_disk():
        if folder.name in known:
            continue
        params = None
        pj = folder / L.PARAMS_JSON
        if pj.is_file():
            try:
                params = json.loads(pj.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                params = None
        specs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        unknown.append(UnknownParamFolder(str(folder), folder.name, params, specs))
    return CollectionInventory(
        collection=rc.name,
        path=str(rc.path),
        runs=[run_files(r) for r in rc.all_runs],
        unknown_param_folders=unknown,
    )
