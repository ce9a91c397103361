"""Shell scripts and command lines for the original TensorFlow LFADS (``run_lfads.py``).

For users who still train with the original code, or with any drop-in that takes
its command line (``python -m lfads_runs.engine`` is one). The text follows
lfads-run-manager (run-manager.md §6.2, §6.3) with its defects fixed:

- floats are written losslessly (``RunParams.lfads_flags``), not with ``%f``;
- the chained training script appends to ``lfads.out`` (``tee -a``) instead of
  overwriting it on every start, and sets ``pipefail`` so that a failing stage
  is a failing script;
- paths with characters special to the shell are quoted (plain paths are
  written verbatim, exactly as MATLAB did).

The queue runs these command lines one stage at a time with ``--engine external``
(:func:`stage_script_text`), so a failure is attributed to its stage.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._atomic import atomic_write_text
from .exceptions import ConfigError

if TYPE_CHECKING:
    from .collection import Run, RunCollection

__all__ = [
    "DEFAULT_RUN_LFADS_PY",
    "STAGES",
    "ScriptOptions",
    "check_snippet",
    "train_command",
    "posterior_command",
    "write_params_command",
    "stage_command",
    "script_text",
    "train_script_text",
    "posterior_script_text",
    "write_params_script_text",
    "stage_script_text",
    "tensorboard_command",
    "tensorboard_script_text",
    "write_run_scripts",
    "write_scripts",
]

#: MATLAB's default ``path_run_lfads_py``: looked up on PATH when the script runs.
DEFAULT_RUN_LFADS_PY = "$(which run_lfads.py)"
#: The stages of a run that have a command line of their own.
STAGES = ("train", "posterior", "dump")

_NOT_FOUND = (
    'if [ ! -n "$path_to_run_lfads" ]; then\n'
    '    echo "Error: run_lfads.py not found on PATH. Ensure you add LFADS to your system PATH."\n'
    "    exit 1\n"
    "fi\n"
)


@attrs.frozen(kw_only=True)
class ScriptOptions:
    """How the generated scripts call ``run_lfads.py``.

    Attributes
    ----------
    run_lfads_py
        Path of ``run_lfads.py``, or shell text such as the default
        ``$(which run_lfads.py)`` (anything starting with ``$(`` is kept, in double quotes).
    python
        The interpreter, as shell text (default ``python``).
    virtualenv
        When set, ``source activate <virtualenv>`` at the top of each script.
    prepend_path
        Add ``export PATH="<folder of run_lfads.py>:$PATH"`` (when that folder is known).
    cuda_visible_devices, display
        Optional ``CUDA_VISIBLE_DEVICES=<n>`` / ``DISPLAY=:<n>`` prefixes (display: training only).
    """

    run_lfads_py: str = DEFAULT_RUN_LFADS_PY
    python: str = "python"
    virtualenv: str = ""
    prepend_path: bool = False
    cuda_visible_devices: int | str | None = None
    display: int | None = None

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None = None, **overrides: Any
    ) -> ScriptOptions:
        """Options from a YAML ``scripts:`` section, with explicit overrides (None = unset)."""
        values: dict[str, Any] = {}
        for key, value in dict(section or {}).items():
            if key not in attrs.fields_dict(cls):
                raise ConfigError(f"scripts: unknown key {key!r}")
            values[key] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("run_lfads_py", "python", "virtualenv"):
            if key in values and not isinstance(values[key], str):
                raise ConfigError(f"scripts.{key}: expected a string, got {values[key]!r}")
        if "run_lfads_py" in values and not values["run_lfads_py"].startswith("$("):
            values["run_lfads_py"] = os.path.expanduser(values["run_lfads_py"])
        if "prepend_path" in values and not isinstance(values["prepend_path"], bool):
            raise ConfigError(
                f"scripts.prepend_path: expected true or false, got {values['prepend_path']!r}"
            )
        return cls(**values)

    @property
    def py_word(self) -> str:
        """``run_lfads_py`` as one shell word."""
        return _word(self.run_lfads_py)

    def run_lfads_folder(self) -> str | None:
        """The folder holding run_lfads.py, when it can be known now."""
        if self.run_lfads_py == DEFAULT_RUN_LFADS_PY:
            found = shutil.which("run_lfads.py")
            return str(Path(found).resolve().parent) if found else None
        if self.run_lfads_py.startswith("$("):
            return None
        return str(Path(self.run_lfads_py).absolute().parent)


def _word(text: str) -> str:
    """Shell-quote ``text``; a command substitution is double-quoted so that the path it
    prints stays one word even with spaces (MATLAB left ``$(which run_lfads.py)`` bare)."""
    return f'"{text}"' if text.startswith("$(") else shlex.quote(text)


def _path(p: str | os.PathLike) -> str:
    # Absolute without resolving links, like MATLAB's GetFullPath.
    return shlex.quote(os.path.abspath(os.fspath(p)))


def _flags(run: Run, omit: Iterable[str] = ()) -> str:
    """The flag string: each flag preceded by one space (MATLAB layout)."""
    return "".join(" " + shlex.quote(f) for f in run.params.lfads_flags(run.n_datasets, omit=omit))


def _base(run: Run, options: ScriptOptions) -> str:
    return (
        f"{options.python} {options.py_word} --data_dir={_path(run.path_lfads_input)} "
        f"--data_filename_stem=lfads --lfads_save_dir={_path(run.path_lfads_output)}"
    )


def _cuda(cmd: str, options: ScriptOptions) -> str:
    if options.cuda_visible_devices is None or options.cuda_visible_devices == "":
        return cmd
    return f"CUDA_VISIBLE_DEVICES={options.cuda_visible_devices} {cmd}"


# ---------------------------------------------------------------------------- commands
def check_snippet(run_lfads_py: str = DEFAULT_RUN_LFADS_PY) -> str:
    """The run_lfads.py-found check (ends with a newline)."""
    return f"path_to_run_lfads={_word(run_lfads_py)}\n{_NOT_FOUND}"


def train_command(run: Run, options: ScriptOptions | None = None) -> str:
    """``python <py> --data_dir=<in> --data_filename_stem=lfads --lfads_save_dir=<out>`` + flags."""
    options = options or ScriptOptions()
    cmd = _cuda(_base(run, options) + _flags(run), options)
    if options.display is not None:
        cmd = f"DISPLAY=:{int(options.display)} {cmd}"
    return cmd


def posterior_command(
    run: Run,
    options: ScriptOptions | None = None,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
) -> str:
    """The posterior-mean command (``--batch_size`` = samples per trial; two spaces before flags)."""
    options = options or ScriptOptions()
    kind = kind or run.params.posterior_mean_kind
    n = int(n_samples if n_samples is not None else run.params.num_samples_posterior)
    flags = _flags(run, omit=("c_temporal_spike_jitter_width", "c_batch_size"))
    cmd = (
        f"{_base(run, options)} --kind={kind} --batch_size={n} "
        f"--checkpoint_pb_load_name=checkpoint_lve {flags}"
    )
    return _cuda(cmd, options)


def write_params_command(run: Run, options: ScriptOptions | None = None) -> str:
    """The ``--kind=write_model_params`` command (two spaces before the flags)."""
    options = options or ScriptOptions()
    flags = _flags(run, omit=("c_temporal_spike_jitter_width",))
    cmd = (
        f"{_base(run, options)} --kind=write_model_params "
        f"--checkpoint_pb_load_name=checkpoint_lve {flags}"
    )
    return _cuda(cmd, options)


def stage_command(
    run: Run,
    stage: str,
    options: ScriptOptions | None = None,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
) -> str:
    """The command line of one stage: ``train``, ``posterior`` or ``dump``."""
    if stage == "train":
        return train_command(run, options)
    if stage == "posterior":
        return posterior_command(run, options, kind=kind, n_samples=n_samples)
    if stage == "dump":
        return write_params_command(run, options)
    raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")


# ---------------------------------------------------------------------------- scripts
def script_text(command: str, options: ScriptOptions | None = None) -> str:
    """A whole ``.sh``: header, optional environment lines, the check snippet, the command."""
    options = options or ScriptOptions()
    text = "#!/bin/bash\n"
    if options.virtualenv:
        text += f"source activate {options.virtualenv}\n"
    if options.prepend_path:
        folder = options.run_lfads_folder()
        if folder:
            text += f'export PATH="{folder}:$PATH"\n'
    text += f"\n{check_snippet(options.run_lfads_py)}\n"
    return text + command + "\n"


def _tee(command: str, log: Path) -> str:
    # pipefail: the script fails when a stage fails, not only when tee does.
    return f"set -o pipefail\n{command} 2>&1 | tee -a {_path(log)}"


def train_script_text(
    run: Run,
    options: ScriptOptions | None = None,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
) -> str:
    """``lfads_train.sh``: train, then posterior means, then model_params, appended to lfads.out."""
    chained = (
        f"({train_command(run, options)} && "
        f"{posterior_command(run, options, kind=kind, n_samples=n_samples)} && "
        f"{write_params_command(run, options)})"
    )
    return script_text(_tee(chained, run.paths.log_file), options)


def posterior_script_text(
    run: Run,
    options: ScriptOptions | None = None,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
) -> str:
    """``lfads_posterior_mean_sample.sh`` (output appended to lfads.out)."""
    cmd = posterior_command(run, options, kind=kind, n_samples=n_samples)
    return script_text(_tee(cmd, run.paths.log_file), options)


def write_params_script_text(run: Run, options: ScriptOptions | None = None) -> str:
    """``lfads_write_model_params.sh`` (output appended to lfads.out)."""
    return script_text(_tee(write_params_command(run, options), run.paths.log_file), options)


def stage_script_text(
    run: Run,
    stage: str,
    options: ScriptOptions | None = None,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
) -> str:
    """One stage as a script for the queue: no tee (the queue sends output to lfads.out).

    The command is ``exec``-ed, so a stop signal reaches run_lfads.py itself; the
    queue sets ``CUDA_VISIBLE_DEVICES`` in the environment instead of a prefix.
    """
    options = attrs.evolve(options or ScriptOptions(), cuda_visible_devices=None, display=None)
    cmd = stage_command(run, stage, options, kind=kind, n_samples=n_samples)
    return script_text("exec " + cmd, options)


def tensorboard_command(rc: RunCollection, runs: Iterable[Run] | None = None) -> str:
    """``tensorboard --logdir=param_<P>/<run>:"<abs lfadsOutput>",...`` (run specs outer)."""
    chosen = None if runs is None else {id(r) for r in runs}
    entries = []
    for row in rc.runs:
        for run in row:
            if chosen is None or id(run) in chosen:
                out = os.path.abspath(run.path_lfads_output)
                entries.append(f'{run.param_hash}/{run.name}:"{out}"')
    return f"tensorboard --logdir={','.join(entries)} "


def tensorboard_script_text(
    rc: RunCollection, runs: Iterable[Run] | None = None, virtualenv: str = ""
) -> str:
    """``launch_tensorboard.sh``: extra arguments (``--port=...``) pass through ``"$@"``."""
    text = "#!/bin/bash\n"
    if virtualenv:
        text += f"source activate {virtualenv}\n"
    return text + f'{tensorboard_command(rc, runs)} "$@"\n'


def _write_script(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    os.chmod(path, 0o755)
    return path


def write_run_scripts(
    run: Run,
    options: ScriptOptions | None = None,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
) -> dict[str, Path]:
    """Write the three scripts of one run; returns ``{"train"|"posterior"|"dump": path}``."""
    run.paths.path.mkdir(parents=True, exist_ok=True)
    p = run.paths
    return {
        "train": _write_script(
            p.train_script, train_script_text(run, options, kind=kind, n_samples=n_samples)
        ),
        "posterior": _write_script(
            p.posterior_script,
            posterior_script_text(run, options, kind=kind, n_samples=n_samples),
        ),
        "dump": _write_script(p.write_params_script, write_params_script_text(run, options)),
    }


def write_scripts(
    rc: RunCollection,
    runs: Iterable[Run] | None = None,
    options: ScriptOptions | None = None,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
) -> dict[str, Any]:
    """Write every run's scripts and the collection's ``launch_tensorboard.sh``.

    ``options`` default to the YAML ``scripts:`` section of the collection.

    Returns
    -------
    dict
        ``{"tensorboard": path, "runs": {run path: {stage: script path}}}``.
    """
    if options is None:
        options = ScriptOptions.from_config(rc.options.get("scripts"))
    chosen = list(rc.all_runs if runs is None else runs)
    out: dict[str, Any] = {"runs": {}}
    for run in chosen:
        out["runs"][str(run.path)] = write_run_scripts(run, options, kind=kind, n_samples=n_samples)
    rc.path.mkdir(parents=True, exist_ok=True)
    out["tensorboard"] = _write_script(
        rc.layout.tensorboard_script,
        tensorboard_script_text(rc, None if runs is None else chosen, options.virtualenv),
    )
    return out
