"""Produce and load a run's ``model_params``, dumping it from a checkpoint when missing.

``load_trained_params(output_dir, ...)`` is what ``Run.load_model_trained_params``
calls: it reads ``<output_dir>/model_params`` and, when the file is missing
(``dump="auto"``) or on request (``dump="force"``), first writes it from the best
source present, without TensorFlow or torch:

1. a checkpoint found through the pointer files ``checkpoint_lve`` / ``checkpoint``
   (``lfads_vae_lve.ckpt-N`` / ``lfads_vae.ckpt-N``). Our engine writes real
   TensorFlow TensorBundle checkpoints with the same pointer files, so its
   checkpoints and those of the original TensorFlow LFADS take the same path,
   read by :mod:`lfads_runs.io.tensorbundle` (CRCs verified);
2. an external dump command (e.g. the original
   ``run_lfads.py --kind=write_model_params ...``), run as a subprocess with
   its output appended to the run's log.

A dump happens under an inter-process lock beside ``model_params`` and writes
through a temporary file, so N processes asking at once give exactly one dump
and N complete results, and a failure leaves no ``model_params`` behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from ._atomic import file_lock
from .command_template import split_template
from .exceptions import (
    CheckpointError,
    DataError,
    LfadsRunsWarning,
    MissingOutputError,
    ModelParamsError,
    ModelParamsUnavailable,
    RunFailedError,
)
from .hparams import Hyperparameters
from .io.checkpoints import CheckpointChoice, find_checkpoint, named_choice, older_checkpoints
from .io.hyperparameters_file import newest_hyperparameters_file, read_hyperparameters_file
from .io.model_params import write_model_params
from .io.tensorbundle import bundle_index, index_path, read_bundle
from .layout import (
    HYPERPARAMETERS_GLOB,
    INPUT_STEM,
    LFADS_INPUT_DIR,
    MODEL_PARAMS,
    MODEL_PARAMS_LOCK,
    lfads_dataset_name,
)
from .model_spec import DatasetSpec, ModelSpec, hdf5_key
from .trained_params import ModelTrainedParameters

__all__ = [
    "dump_model_params",
    "load_trained_params",
    "find_checkpoint",
    "spec_from_output_dir",
    "spec_from_inputs",
    "DumpCommand",
]

log = logging.getLogger(__name__)


#: A shell string (run with ``/bin/sh -c``) or an argv list.
DumpCommand = str | Sequence[str]
DEFAULT_LOCK_TIMEOUT = 900.0  # an external command (TensorFlow start-up) can take minutes


def _append_log(log_path: Path | None, text: str) -> None:
    if log_path is None:
        return
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(text.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _dump_from_checkpoint(
    prefix: Path, dest: Path, spec: ModelSpec | None, log_path: Path | None
) -> None:
    if spec is not None:
        # Refuse incomplete checkpoints before reading any data: TensorFlow's
        # write_model_params would fail to restore them too.
        have = bundle_index(prefix)
        missing = [v.name for v in spec.variables if v.name not in have]
        missing += [n for n in ("LFADS/global_step",) if n not in have]
        if missing:
            raise CheckpointError(
                f"{index_path(prefix)}: tensor(s) {', '.join(repr(m) for m in missing)} "
                "missing from the checkpoint; it does not hold this model"
            )
    tensors = read_bundle(prefix)
    if spec is not None:
        # Validate before writing, so a model_params that cannot be loaded is never produced.
        arrays = {hdf5_key(k): v for k, v in tensors.items() if "Adam" not in k}
        ModelTrainedParameters.from_arrays(arrays, spec=spec, source=f"{prefix} (checkpoint)")
    write_model_params(dest, tensors)
    _append_log(
        log_path, f"lfads_runs: wrote {dest} from checkpoint {prefix} ({len(tensors)} tensors)"
    )
    log.info("wrote %s from checkpoint %s", dest, prefix)


def _run_command(command: DumpCommand, output_dir: Path, dest: Path, log_path: Path | None) -> None:
    # Never through a shell: a string is split into arguments once (command_template).
    argv = split_template(command)
    shown = shlex.join(argv)
    _append_log(log_path, f"lfads_runs: dumping model_params with: {shown}")
    started = time.time()
    try:
        if log_path is not None:
            with open(log_path, "ab") as out:
                proc = subprocess.run(argv, cwd=output_dir, stdout=out, stderr=subprocess.STDOUT)
            tail = _tail(log_path)
        else:
            proc = subprocess.run(
                argv, cwd=output_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            tail = proc.stdout.decode("utf-8", "replace")[-2000:]
    except OSError as exc:  # no such program, not executable
        raise RunFailedError(f"dump command could not start: {shown}: {exc}") from None
    if proc.returncode != 0:
        _remove_partial(dest, started)
        where = f" (log: {log_path})" if log_path else ""
        raise RunFailedError(
            f"dump command failed with exit code {proc.returncode}{where}: {shown}\n{tail}"
        )
    if not dest.is_file():
        raise RunFailedError(
            f"dump command exited 0 but wrote no {dest}: {shown}\n"
            f"(it must write model_params into {output_dir})\n{tail}"
        )


def _remove_partial(dest: Path, since: float) -> None:
    """Remove a model_params a failed external command left half-written."""
    with contextlib.suppress(FileNotFoundError):
        if dest.stat().st_mtime >= since - 1:
            dest.unlink()


def _tail(path: Path, n: int = 2000) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - n))
        return fh.read().decode("utf-8", "replace")


def _unavailable(output_dir: Path, dest: Path, looked: list[str]) -> ModelParamsUnavailable:
    lines = "\n".join(f"  - {x}" for x in [f"{dest} (no such file)", *looked] if x)
    return ModelParamsUnavailable(
        f"no model_params for {output_dir} and nothing to dump it from. Looked for:\n{lines}\n"
        "Train the run first (lfads-runs train), point at a checkpoint with checkpoint=PREFIX, "
        "or configure a dump command (e.g. run_lfads.py --kind=write_model_params)."
    )


def _dump(
    output_dir: Path,
    dest: Path,
    checkpoint: CheckpointChoice,
    spec: ModelSpec | None,
    dump_command: DumpCommand | None,
    log_path: Path | None,
) -> None:
    prefix, looked = find_checkpoint(output_dir, checkpoint)
    if prefix is not None:
        # A named choice may fall back to an older intact checkpoint; an explicit one may not.
        fallbacks = older_checkpoints(prefix) if named_choice(checkpoint) else []
        _dump_newest_intact(prefix, fallbacks, dest, spec, log_path)
    elif dump_command is not None:
        _run_command(dump_command, output_dir, dest, log_path)
    else:
        raise _unavailable(output_dir, dest, looked)


def _dump_newest_intact(
    prefix: Path, fallbacks: list[Path], dest: Path, spec: ModelSpec | None, log_path: Path | None
) -> None:
    """Dump from ``prefix``; if it is corrupt, from the newest intact one of ``fallbacks``.

    A checkpoint torn by a crash or a bad disk must not hide the intact older ones
    (training keeps several); the warning names the corrupt file and the one used.
    """
    corrupt: list[str] = []
    for cand in [prefix, *fallbacks]:
        try:
            _dump_from_checkpoint(cand, dest, spec, log_path)
        except CheckpointError as exc:
            if not fallbacks:
                raise
            corrupt.append(str(exc))
            continue
        if corrupt:
            msg = (
                f"checkpoint {prefix} is corrupt ({corrupt[0]}); wrote {dest.name} from the "
                f"newest intact checkpoint {cand.name} instead"
            )
            _append_log(log_path, f"lfads_runs: {msg}")
            warnings.warn(msg, LfadsRunsWarning, stacklevel=4)
        return
    raise CheckpointError(
        f"{prefix} and every older checkpoint of its series are corrupt:\n"
        + "\n".join(f"  - {c}" for c in corrupt)
    )


def _lock_path(dest: Path) -> Path:
    return dest.with_name(MODEL_PARAMS_LOCK if dest.name == MODEL_PARAMS else f".{dest.name}.lock")


def dump_model_params(
    output_dir: str | os.PathLike,
    *,
    checkpoint: CheckpointChoice = "lve",
    dest: str | os.PathLike | None = None,
    spec: ModelSpec | None = None,
    dump_command: DumpCommand | None = None,
    log_path: str | os.PathLike | None = None,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> Path:
    """Write ``model_params`` for a run's output folder (always, replacing any existing file).

    Parameters
    ----------
    output_dir
        The run's LFADS output folder (``lfadsOutput``).
    checkpoint
        ``"lve"`` (default; falls back to the latest with a warning), ``"latest"``
        or a checkpoint prefix.
    dest
        Where to write (default ``<output_dir>/model_params``).
    spec
        When given, the checkpoint must hold every variable of this model with
        the right shapes and finite values, or nothing is written.
    dump_command
        Used only when no checkpoint exists: an argv list, or a string split into
        arguments with shell quoting rules, run without a shell in ``output_dir``;
        it must write ``<output_dir>/model_params``.
    log_path
        The run's log; the command's output and a line per dump are appended.
    lock_timeout
        Seconds to wait for another process's dump (None: forever).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ModelParamsUnavailable
        No checkpoint and no dump command; the message lists what was looked for.
    CheckpointError
        The checkpoint is corrupt or incomplete (names the tensor and file).
    ModelParamsError
        The checkpoint does not match ``spec``.
    RunFailedError
        The dump command failed or wrote nothing.
    """
    output_dir = Path(output_dir)
    dest = Path(dest) if dest is not None else output_dir / MODEL_PARAMS
    lp = Path(log_path) if log_path is not None else None
    if not output_dir.is_dir() and dump_command is None:
        raise _unavailable(output_dir, dest, [f"{output_dir} (no such folder)"])
    with file_lock(_lock_path(dest), timeout=lock_timeout):
        _dump(output_dir, dest, checkpoint, spec, dump_command, lp)
    return dest


def load_trained_params(
    output_dir: str | os.PathLike,
    dataset_names: Sequence[str] | None = None,
    spec: ModelSpec | None = None,
    dump: Literal["auto", "never", "force"] = "auto",
    checkpoint: CheckpointChoice = "lve",
    dump_command: DumpCommand | None = None,
    log_path: str | os.PathLike | None = None,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> ModelTrainedParameters:
    """Load a run's trained weights, dumping ``model_params`` first when needed.

    Parameters
    ----------
    output_dir
        The run's LFADS output folder.
    dataset_names
        The run's datasets in its order (``dataset001`` or ``dataset001.h5``);
        default: the spec's, else those found in the file.
    spec
        The model the weights must match (see
        :meth:`ModelTrainedParameters.from_file`); None checks internal
        consistency only. :func:`spec_from_output_dir` and :func:`spec_from_inputs`
        build one from the run's files.
    dump
        ``"auto"``: dump only when ``model_params`` is missing; ``"never"``: never
        dump; ``"force"``: always re-dump from ``checkpoint``.
    checkpoint
        Source of a dump: ``"lve"``, ``"latest"`` or a checkpoint prefix. An
        existing ``model_params`` is used as is unless ``dump="force"``.
    dump_command, log_path, lock_timeout
        As in :func:`dump_model_params`.

    Raises
    ------
    ModelParamsUnavailable
        No ``model_params`` and nothing to dump it from (or ``dump="never"``).
    ModelParamsError
        The file does not match the model (every problem listed).
    CheckpointError
        The checkpoint to dump from is corrupt.
    """
    if dump not in ("auto", "never", "force"):
        raise ValueError(f"dump must be 'auto', 'never' or 'force', got {dump!r}")
    output_dir = Path(output_dir)
    dest = output_dir / MODEL_PARAMS
    lp = Path(log_path) if log_path is not None else None
    if dump == "force":
        dump_model_params(
            output_dir,
            checkpoint=checkpoint,
            spec=spec,
            dump_command=dump_command,
            log_path=lp,
            lock_timeout=lock_timeout,
        )
    elif not dest.exists():
        if not output_dir.is_dir() and dump_command is None:
            # Untrained: say so without creating the folder (and a lock) to look inside.
            raise _unavailable(output_dir, dest, [f"{output_dir} (no such folder)"])
        if dump == "never":
            raise ModelParamsUnavailable(
                f"{dest} does not exist; call with dump='auto' or run `lfads-runs dump` "
                "to write it from the run's checkpoint"
            )
        with file_lock(_lock_path(dest), timeout=lock_timeout):
            if not dest.exists():  # another process may have dumped while we waited
                _dump(output_dir, dest, checkpoint, spec, dump_command, lp)
    try:
        return ModelTrainedParameters.from_file(dest, dataset_names, spec)
    except (ModelParamsError, MissingOutputError) as first:
        # An external dump command writes model_params in place; if one is running,
        # wait for it and read again before reporting the file as bad.
        if not _lock_path(dest).exists():
            raise
        try:
            with file_lock(_lock_path(dest), timeout=lock_timeout):
                pass
        except OSError:
            raise first from None
        return ModelTrainedParameters.from_file(dest, dataset_names, spec)


# ---------------------------------------------------------------- model specs
def _alignment_from_inputs(
    name: str, candidates: Sequence[Path], stem: str
) -> tuple[bool | None, Path | None]:
    from .io.lfads_input import read_input_summary

    for d in candidates:
        p = d / f"{stem}_{lfads_dataset_name(name)}"
        if p.is_file():
            return read_input_summary(p).has_alignment_matrix, p
    return None, None


def spec_from_output_dir(
    output_dir: str | os.PathLike,
    hps: Hyperparameters | None = None,
    *,
    input_dir: str | os.PathLike | None = None,
) -> ModelSpec:
    """The model of a run, from the ``hyperparameters-<step>.txt`` LFADS wrote.

    That JSON file holds every flag plus ``dataset_names``, ``dataset_dims`` and
    ``num_steps`` (the newest step's file is used). ``hps`` overrides its flags.
    Whether a single dataset has an alignment matrix (which adds a read-in) is
    not recorded there; it is read from the input file in ``input_dir``, the
    recorded ``data_dir`` or the sibling ``lfadsInput`` folder, whichever exists.

    Raises
    ------
    MissingOutputError
        No hyperparameters file.
    DataError
        The file lacks dataset names, sizes or ``num_steps``.
    """
    output_dir = Path(output_dir)
    path = newest_hyperparameters_file(output_dir)
    if path is None:
        raise MissingOutputError(
            f"no {HYPERPARAMETERS_GLOB} in {output_dir}; LFADS writes it when it builds the model"
        )
    data = read_hyperparameters_file(path)
    try:
        dims: Mapping[str, int] = data["dataset_dims"]
        names = list(data.get("dataset_names") or dims)
        num_steps = int(data["num_steps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: missing dataset_dims/dataset_names/num_steps ({exc})") from None
    if hps is None:
        hps = Hyperparameters.from_mapping(data)
    candidates = [Path(input_dir)] if input_dir is not None else []
    if data.get("data_dir"):
        candidates.append(Path(data["data_dir"]))
    candidates.append(output_dir.parent / LFADS_INPUT_DIR)
    stem = data.get("data_filename_stem") or INPUT_STEM
    alignment = [_alignment_from_inputs(n, candidates, stem)[0] for n in names]
    if len(names) == 1 and alignment[0] is None:
        # Only a single dataset's read-in depends on it (several always have one).
        warnings.warn(
            f"{output_dir}: cannot find the input file of {names[0]} to tell whether it "
            "has an alignment matrix; assuming it has none (identity read-in)",
            LfadsRunsWarning,
            stacklevel=2,
        )
    heldin = data.get("dataset_heldin") or {}  # lfads_runs's co-smoothing split, when any
    datasets = [
        DatasetSpec(n, int(dims[n]), bool(a), heldin=heldin.get(n))
        for n, a in zip(names, alignment, strict=True)
    ]
    return ModelSpec.build(hps, datasets, num_steps)


def spec_from_inputs(
    hps: Hyperparameters, input_files: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]
) -> ModelSpec:
    """The model of a run from its hyperparameters and its LFADS input files (shapes only).

    ``input_files`` maps dataset names to ``lfads_<ds>.h5`` paths (as
    :func:`lfads_runs.io.lfads_input.find_input_files` returns), or lists the
    paths (the dataset name is the file name minus ``lfads_``).

    Raises
    ------
    DataError
        A file is unreadable or the datasets disagree on the number of time bins.
    """
    from .io.lfads_input import read_input_summary
    from .io.split_keys import read_heldin

    if isinstance(input_files, Mapping):
        items = [(str(k), Path(v)) for k, v in input_files.items()]
    else:
        items = [(Path(p).name[len(INPUT_STEM) + 1 :], Path(p)) for p in input_files]
    if not items:
        raise DataError("no LFADS input files given")
    datasets = []
    steps: dict[int, str] = {}
    for name, p in items:
        s = read_input_summary(p)
        datasets.append(
            DatasetSpec(name, s.n_neurons, s.has_alignment_matrix, heldin=read_heldin(p))
        )
        steps.setdefault(s.num_steps, str(p))
    if len(steps) > 1:
        raise DataError(
            "LFADS needs the same number of time bins in every dataset; got "
            + ", ".join(f"{t} in {p}" for t, p in steps.items())
        )
    return ModelSpec.build(hps, datasets, next(iter(steps)))
