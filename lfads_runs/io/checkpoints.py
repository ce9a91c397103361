"""Which checkpoint: listing, validation and choice (``lve``, ``latest``, a prefix, a step).

The one owner of checkpoint choice: dumping ``model_params``, sampling the
posterior, inference, the engine's ``--checkpoint_pb_load_name``, status and
tuning all ask here, so one pipeline's posterior and dump stages load the same
weights. File names are parsed by :mod:`lfads_runs.layout`; the pointer-file
format is :mod:`lfads_runs.io.checkpoint_state`. No torch.

The rules (one behaviour, the helpful one):

- ``"lve"`` (alias ``"checkpoint_lve"``): the checkpoint the ``checkpoint_lve``
  pointer file names; without a usable pointer, the newest LVE checkpoint on
  disk; without any LVE checkpoint, the ``"latest"`` one with an
  :class:`~lfads_runs.exceptions.LfadsRunsWarning`.
- ``"latest"`` (alias ``"checkpoint"``): the same through the ``checkpoint``
  pointer file and the regular checkpoints.
- A pointer file naming a checkpoint that is gone (stale) is reported with a
  warning and the newest checkpoint of its series on disk is used instead.
- A step (an ``int``, or a string of digits as a command line gives it): the
  checkpoint of that step (the LVE one when both exist).
- Anything else is a checkpoint prefix (``lfads_vae.ckpt-300``, with or without
  ``.index``): relative paths are looked up inside the output folder first, then
  relative to the current directory.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

from .. import layout as L
from ..exceptions import CheckpointError, LfadsRunsWarning
from .checkpoint_state import read_checkpoint_state
from .tensorbundle import checkpoint_exists, index_path

__all__ = [
    "CheckpointChoice",
    "NAMED_CHECKPOINTS",
    "named_choice",
    "pointer_name",
    "list_checkpoints",
    "has_checkpoint",
    "checkpoint_files",
    "older_checkpoints",
    "find_checkpoint",
    "resolve_checkpoint",
]

#: "lve", "latest", a step, or a checkpoint prefix / model_params path.
CheckpointChoice = str | int | os.PathLike
#: Names of a choice -> the canonical one; the pointer-file names are the engine's
#: ``--checkpoint_pb_load_name`` values.
NAMED_CHECKPOINTS: dict[str, Literal["lve", "latest"]] = {
    "lve": "lve",
    L.CHECKPOINT_LVE_POINTER: "lve",
    "latest": "latest",
    L.CHECKPOINT_POINTER: "latest",
}
_POINTERS = {"lve": L.CHECKPOINT_LVE_POINTER, "latest": L.CHECKPOINT_POINTER}
_SHOWN_ON_DISK = 6  # checkpoint names an error lists at most


def named_choice(checkpoint: CheckpointChoice) -> Literal["lve", "latest"] | None:
    """``"lve"`` / ``"latest"`` for a named choice (or its pointer-file alias), else None."""
    if isinstance(checkpoint, str):
        return NAMED_CHECKPOINTS.get(checkpoint)
    return None


def pointer_name(checkpoint: CheckpointChoice) -> str:
    """The ``--checkpoint_pb_load_name`` value recorded for a choice (TF's flag)."""
    named = named_choice(checkpoint)
    if named is not None:
        return _POINTERS[named]
    return str(checkpoint) if isinstance(checkpoint, int) else os.fspath(checkpoint)


def list_checkpoints(output_dir: str | os.PathLike, *, lve: bool | None = None) -> list[Path]:
    """Checkpoint prefixes present in ``output_dir`` (an ``.index`` file), oldest first.

    ``lve`` True/False keeps only the LVE/regular series; None keeps both (at one
    step the regular one comes first). Names that are not checkpoints are ignored.
    """
    output_dir = Path(output_dir)
    found = []
    try:
        entries = list(output_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for p in entries:
        if not p.name.endswith(L.CHECKPOINT_INDEX_SUFFIX):
            continue
        prefix = p.with_name(p.name[: -len(L.CHECKPOINT_INDEX_SUFFIX)])
        parsed = L.parse_checkpoint_name(prefix)
        if parsed is None or (lve is not None and parsed.lve != lve) or not p.is_file():
            continue
        found.append((parsed.step, parsed.lve, prefix.name, prefix))
    return [p for *_, p in sorted(found)]


def has_checkpoint(output_dir: str | os.PathLike) -> bool:
    """True when ``output_dir`` holds at least one checkpoint."""
    return bool(list_checkpoints(output_dir))


def checkpoint_files(prefix: str | os.PathLike) -> list[Path]:
    """Files belonging to a checkpoint prefix (any shard count, ``.meta``, our sidecars)."""
    prefix = Path(prefix)
    base = prefix.name
    suffixes = (
        L.CHECKPOINT_INDEX_SUFFIX,
        ".meta",
        L.CHECKPOINT_SIDECAR_SUFFIX,
        L.CHECKPOINT_RNG_SUFFIX,
    )
    exact = {f"{base}{s}" for s in suffixes}
    if not prefix.parent.is_dir():
        return []
    return [
        p for p in prefix.parent.iterdir() if p.name in exact or p.name.startswith(f"{base}.data-")
    ]


def older_checkpoints(prefix: str | os.PathLike) -> list[Path]:
    """Checkpoints of the same series as ``prefix`` (name and LVE or regular) with a
    lower step, newest first: where to fall back to when ``prefix`` is corrupt."""
    prefix = Path(prefix)
    me = L.parse_checkpoint_name(prefix)
    if me is None:
        return []
    older = [
        p
        for p in list_checkpoints(prefix.parent, lve=me.lve)
        if (o := L.parse_checkpoint_name(p)) is not None and o.name == me.name and o.step < me.step
    ]
    return older[::-1]


def _from_series(
    output_dir: Path, named: Literal["lve", "latest"], looked: list[str]
) -> Path | None:
    """The checkpoint the series' pointer file names, else the newest of the series on disk."""
    pointer = _POINTERS[named]
    state = read_checkpoint_state(output_dir, pointer)
    if state is not None and checkpoint_exists(state.model_checkpoint_path):
        return state.model_checkpoint_path
    on_disk = list_checkpoints(output_dir, lve=named == "lve")  # only when the pointer fails
    if state is None:
        if on_disk:
            return on_disk[-1]
        looked.append(f"{output_dir / pointer} (no such pointer file, no checkpoint on disk)")
        return None
    stale = f"{output_dir / pointer} names {state.model_checkpoint_path}, but " + str(
        index_path(state.model_checkpoint_path)
    )
    if on_disk:
        warnings.warn(
            f"{stale} is missing; using the newest such checkpoint on disk, {on_disk[-1].name}",
            LfadsRunsWarning,
            stacklevel=4,
        )
        return on_disk[-1]
    looked.append(f"{stale} is missing")
    return None


def _explicit(
    output_dir: Path, checkpoint: str | os.PathLike, files: bool, looked: list[str]
) -> Path | None:
    raw = Path(checkpoint)
    candidates = [raw] if raw.is_absolute() else [output_dir / raw, raw]
    for cand in candidates:
        if files and cand.is_file() and not cand.name.endswith(L.CHECKPOINT_INDEX_SUFFIX):
            return cand  # a model_params file (a prefix has no file of its own name)
        if cand.name.endswith(L.CHECKPOINT_INDEX_SUFFIX):
            cand = cand.with_name(cand.name[: -len(L.CHECKPOINT_INDEX_SUFFIX)])
        if checkpoint_exists(cand):
            return cand
    shown = dict.fromkeys(str(index_path(c)) for c in candidates)
    looked.append(f"{' or '.join(shown)} (the checkpoint asked for)")
    return None


def _at_step(output_dir: Path, step: int, looked: list[str]) -> Path | None:
    at = [p for p in list_checkpoints(output_dir) if L.checkpoint_step(p) == step]
    if at:
        return at[-1]  # the LVE one when both exist: it was written after the regular one
    looked.append(f"{output_dir} (no checkpoint of step {step})")
    return None


def find_checkpoint(
    output_dir: str | os.PathLike, checkpoint: CheckpointChoice = "lve", *, files: bool = False
) -> tuple[Path | None, list[str]]:
    """The checkpoint prefix ``checkpoint`` chooses in ``output_dir``, and where it looked.

    See the module docstring for the rules. ``files=True`` also accepts an explicit
    path to an existing file (a ``model_params``), returned as it is.

    Returns
    -------
    (Path or None, list of str)
        The prefix (None if there is none) and the places looked at in vain.
    """
    output_dir = Path(output_dir)
    looked: list[str] = []
    if isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be 'lve', 'latest', a step or a path, not {checkpoint}")
    if isinstance(checkpoint, str) and checkpoint.isascii() and checkpoint.isdigit():
        checkpoint = int(checkpoint)  # a step given on a command line
    if isinstance(checkpoint, int):
        return _at_step(output_dir, checkpoint, looked), looked
    named = named_choice(checkpoint)
    if named is None:
        if not os.fspath(checkpoint).strip():
            looked.append("'' (an empty checkpoint name; 'lve', 'latest', a step or a prefix)")
            return None, looked
        return _explicit(output_dir, checkpoint, files, looked), looked
    if named == "lve":
        prefix = _from_series(output_dir, "lve", looked)
        if prefix is not None:
            return prefix, looked
    prefix = _from_series(output_dir, "latest", looked)
    if prefix is not None and named == "lve":
        warnings.warn(
            f"{output_dir}: no lowest-validation-error checkpoint ({looked[-1]}); "
            f"using the latest checkpoint {prefix.name} instead",
            LfadsRunsWarning,
            stacklevel=3,
        )
    return prefix, looked


def resolve_checkpoint(
    output_dir: str | os.PathLike, checkpoint: CheckpointChoice = "lve", *, files: bool = True
) -> Path:
    """:func:`find_checkpoint`, raising when there is nothing to load.

    Raises
    ------
    CheckpointError
        Names the folder, where it looked and the checkpoints it found instead.
    """
    prefix, looked = find_checkpoint(output_dir, checkpoint, files=files)
    if prefix is not None:
        return prefix
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        looked.append(f"{output_dir} (no such folder)")
    present = [p.name for p in list_checkpoints(output_dir)]
    found = (
        f"; checkpoints on disk: {', '.join(present[-_SHOWN_ON_DISK:])}"
        if present
        else "; no checkpoint on disk"
    )
    what = "a checkpoint prefix" + (" or a model_params file" if files else "")
    if named_choice(checkpoint) is None and not isinstance(checkpoint, int):
        head = f"{os.fspath(checkpoint)} is not {what} in {output_dir}"
    else:
        head = f"no checkpoint ({checkpoint}) to load in {output_dir}"
    raise CheckpointError(f"{head}: looked at {'; '.join(looked)}{found}")
