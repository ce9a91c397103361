"""Every file and folder name of a run collection, for each layout version.

This is the only module that knows names such as ``lfads_<ds>.h5``,
``model_params`` or ``param_<hash>``; everything else asks it. Facts:
shared/spec/run-manager.md §2 and shared/spec/lfads-model.md §6-§9.

Layout versions (``RunCollection.version``, a YYYYMMDD number compared numerically):

- ``>= 20171107`` (current): shared inputs in ``data_<D>/<runSpec>/``;
- ``3 <= version < 20171107`` (legacy flat): shared inputs in ``data_<D>/`` for all run specs.

Older layouts (version < 3, one parameter set per collection) are not supported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

__all__ = [
    "CURRENT_VERSION",
    "CollectionLayout",
    "RunPaths",
    "INPUT_STEM",
    "MODEL_PARAMS",
    "FITLOG",
    "CHECKPOINT_POINTER",
    "CHECKPOINT_LVE_POINTER",
    "CHECKPOINT_NAME",
    "POSTERIOR_KINDS",
    "SPLITS",
    "lfads_dataset_name",
    "lfads_input_name",
    "input_info_name",
    "posterior_file_name",
    "model_params_file_name",
    "fitlog_file_name",
    "checkpoint_prefix",
    "checkpoint_step",
    "CheckpointName",
    "parse_checkpoint_name",
    "is_lve_checkpoint",
    "hyperparameters_file_name",
    "prior_sample_file_name",
    "is_legacy_layout",
]

CURRENT_VERSION = 20171107
MIN_SUPPORTED_VERSION = 3

# ---- names inside lfadsInput/ and data_<D>/
INPUT_STEM = "lfads"  #: --data_filename_stem
PREPARE_LOCK = ".lfads_runs.prepare.lock"  #: ours: one preparation at a time per data folder
#: ours: size, mtime and content hash of each dataset's source file when it was prepared
SOURCES_JSON = ".lfads_runs.sources.json"
# ---- names inside lfadsOutput/ (written by LFADS or by our engine)
MODEL_PARAMS = "model_params"
FITLOG = "fitlog.csv"  #: fitlog_file_name() of the default --csv_log
CHECKPOINT_POINTER = "checkpoint"
CHECKPOINT_LVE_POINTER = "checkpoint_lve"
CHECKPOINT_NAME = "lfads_vae"  #: --checkpoint_name
MODEL_PARAMS_LOCK = ".model_params.lock"  #: ours: one dump at a time per lfadsOutput/
#: ours, next to each checkpoint our engine writes: resume state (epoch, histories, time)
CHECKPOINT_SIDECAR_SUFFIX = ".lfads_runs.json"
CHECKPOINT_RNG_SUFFIX = ".lfads_runs.rng.npz"  #: ours: the noise generators' states
HYPERPARAMETERS_GLOB = "hyperparameters-*.txt"
_HYPERPARAMETERS_RE = re.compile(r"^hyperparameters-(\d+)\.txt$")
POSTERIOR_KINDS = ("posterior_sample_and_average", "posterior_push_mean")
LEGACY_POSTERIOR_KIND = "posterior_sample"
SPLITS = ("train", "valid")
# ---- names inside a run folder param_<P>/<runSpec>/
LFADS_INPUT_DIR = "lfadsInput"
LFADS_OUTPUT_DIR = "lfadsOutput"
TRAIN_SCRIPT = "lfads_train.sh"
POSTERIOR_SCRIPT = "lfads_posterior_mean_sample.sh"
WRITE_PARAMS_SCRIPT = "lfads_write_model_params.sh"
LOG_FILE = "lfads.out"
DONE_MARKER = "lfads.done"
POSTERIOR_ONLY_SUFFIX = ".posteriorMeanOnly"
CLAIM_FILE = "lfads_runs.claim"  #: ours: exclusive claim of a running queue
STATE_FILE = "lfads_runs.state.json"  #: ours: machine-readable run state
CLAIM_LOCK_FILE = "lfads_runs.claim.lock"  #: ours: held briefly while breaking a stale claim
EXPORT_DIR = "export"
# ---- names inside the collection folder
SUMMARY_FILE = "summary.txt"
TENSORBOARD_SCRIPT = "launch_tensorboard.sh"
QUEUE_SCRIPT = "run_lfadsqueue.py"
QUEUE_SCRIPT_POSTERIOR_ONLY = "run_lfadsqueue_posteriorMeanOnly.py"
QUEUE_STATE_FILE = "lfads_runs.queue.json"  #: ours: last queue summary
QUEUE_LOCK_FILE = "lfads_runs.queue.lock"  #: ours: held briefly while updating the queue file
SLURM_LOG_DIR = "slurm_logs"  #: ours: submitit's job folders (slurm executor)
PARAMS_JSON = "params.json"  #: ours: full parameters of a param_<P> folder
PARAM_PREFIX = "param_"
DATA_PREFIX = "data_"
# ---- names of a PBT search (ours), inside the run folder param_<P>/<runSpec>/
TUNE_DIR = "tune"
TUNE_STATE_FILE = "tune.json"  #: the search's spec, state and generation
TUNE_LOCK_FILE = ".lfads_runs.tune.lock"  #: held by the driver of the search
TUNE_RAY_DIR = "ray"  #: Ray Tune's experiment storage (its checkpoints; what --resume reads)
TUNE_BEST_DIR = "best"  #: the best member as a normal run folder (lfadsInput/, lfadsOutput/)
TUNE_BEST_FILE = "best.json"  #: which member won, its metric and hyperparameters
MEMBER_PREFIX = "member_"
MEMBER_TRAJECTORY = "trajectory.jsonl"  #: one line per generation: hyperparameters, metric, exploit
MEMBER_STATE = "member.json"  #: live state of a member (generation, pid, updated)


def is_legacy_layout(version: int) -> bool:
    return version < CURRENT_VERSION


def lfads_dataset_name(dataset: str) -> str:
    """LFADS's internal dataset name: the input file name minus ``lfads_`` (``dataset001.h5``)."""
    return dataset if dataset.endswith(".h5") else f"{dataset}.h5"


def lfads_input_name(dataset: str) -> str:
    return f"{INPUT_STEM}_{dataset}.h5"


def input_info_name(dataset: str) -> str:
    return f"inputInfo_{dataset}.mat"


def posterior_file_name(dataset: str, split: str, kind: str, stem: str = "") -> str:
    """``model_runs_<ds>.h5_<split>_<kind>`` (``dataset`` without ``.h5``), or
    ``<stem><ds>.h5_<split>_<kind>`` with run_lfads.py's ``--output_filename_stem``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return f"{stem or 'model_runs_'}{lfads_dataset_name(dataset)}_{split}_{kind}"


def model_params_file_name(stem: str = "") -> str:
    """``model_params``, or ``<stem>_model_params`` with ``--output_filename_stem``."""
    return f"{stem}_{MODEL_PARAMS}" if stem else MODEL_PARAMS


def fitlog_file_name(csv_log: str = "fitlog") -> str:
    """``fitlog.csv`` for run_lfads.py's default ``--csv_log=fitlog``."""
    return f"{csv_log}.csv"


def prior_sample_file_name() -> str:
    return "model_runs_prior_sample"


def checkpoint_prefix(step: int, lve: bool = False, name: str = CHECKPOINT_NAME) -> str:
    """``lfads_vae.ckpt-<step>`` or ``lfads_vae_lve.ckpt-<step>`` (file-name prefix)."""
    return f"{name}{'_lve' if lve else ''}.ckpt-{int(step)}"


_CKPT_RE = re.compile(r"^(?P<name>.+?)(?P<lve>_lve)?\.ckpt-(?P<step>\d+)$")
CHECKPOINT_INDEX_SUFFIX = ".index"  #: TensorFlow's own test that a checkpoint exists


@attrs.frozen
class CheckpointName:
    """The parts of a checkpoint file-name prefix ``<name>[_lve].ckpt-<step>``."""

    name: str  #: ``--checkpoint_name`` (``lfads_vae``)
    lve: bool  #: a lowest-validation-error checkpoint (``checkpoint_lve`` series)
    step: int


def parse_checkpoint_name(prefix: str | os.PathLike) -> CheckpointName | None:
    """The parts of a checkpoint prefix (a path or a file name), or None for other names."""
    m = _CKPT_RE.match(Path(prefix).name)
    if not m:
        return None
    return CheckpointName(m.group("name"), m.group("lve") is not None, int(m.group("step")))


def is_lve_checkpoint(prefix: str | os.PathLike) -> bool:
    """True for a lowest-validation-error checkpoint prefix (``..._lve.ckpt-<step>``)."""
    parsed = parse_checkpoint_name(prefix)
    return parsed is not None and parsed.lve


def checkpoint_step(prefix: str | os.PathLike) -> int:
    """The global step in a checkpoint prefix such as ``.../lfads_vae_lve.ckpt-320``."""
    parsed = parse_checkpoint_name(prefix)
    if parsed is None:
        raise ValueError(f"not a checkpoint prefix: {prefix}")
    return parsed.step


def hyperparameters_file_name(step: int) -> str:
    return f"hyperparameters-{int(step)}.txt"


def hyperparameters_file_step(name: str) -> int | None:
    """The step in a ``hyperparameters-<step>.txt`` file name, or None for other names."""
    m = _HYPERPARAMETERS_RE.match(name)
    return int(m.group(1)) if m else None


@attrs.frozen
class RunPaths:
    """Every path of one run (one run spec x one parameter set)."""

    path: Path  #: ``<collection>/param_<P>/<runSpec>``
    path_common_data: Path  #: ``<collection>/data_<D>/<runSpec>`` (legacy: ``data_<D>``)
    link_prefix: str  #: relative path from ``lfadsInput/`` to ``path_common_data``
    param_folder: Path

    @property
    def path_lfads_input(self) -> Path:
        return self.path / LFADS_INPUT_DIR

    @property
    def path_lfads_output(self) -> Path:
        return self.path / LFADS_OUTPUT_DIR

    # --- inputs
    def common_input_file(self, dataset: str) -> Path:
        return self.path_common_data / lfads_input_name(dataset)

    def common_input_info_file(self, dataset: str) -> Path:
        return self.path_common_data / input_info_name(dataset)

    def input_file(self, dataset: str) -> Path:
        """``lfadsInput/lfads_<ds>.h5`` (a link to the shared copy)."""
        return self.path_lfads_input / lfads_input_name(dataset)

    def input_info_file(self, dataset: str) -> Path:
        return self.path_lfads_input / input_info_name(dataset)

    def link_target(self, file_name: str) -> str:
        """Relative target of the link ``lfadsInput/<file_name>``."""
        return f"{self.link_prefix}/{file_name}"

    # --- outputs
    @property
    def file_model_params(self) -> Path:
        return self.path_lfads_output / MODEL_PARAMS

    @property
    def file_fitlog(self) -> Path:
        return self.path_lfads_output / FITLOG

    @property
    def checkpoint_pointer(self) -> Path:
        return self.path_lfads_output / CHECKPOINT_POINTER

    @property
    def checkpoint_lve_pointer(self) -> Path:
        return self.path_lfads_output / CHECKPOINT_LVE_POINTER

    def posterior_file(self, dataset: str, split: str, kind: str) -> Path:
        return self.path_lfads_output / posterior_file_name(dataset, split, kind)

    def legacy_posterior_file(self, dataset: str, split: str) -> Path:
        return self.path_lfads_output / posterior_file_name(dataset, split, LEGACY_POSTERIOR_KIND)

    # --- scripts, logs, markers
    @property
    def train_script(self) -> Path:
        return self.path / TRAIN_SCRIPT

    @property
    def posterior_script(self) -> Path:
        return self.path / POSTERIOR_SCRIPT

    @property
    def write_params_script(self) -> Path:
        return self.path / WRITE_PARAMS_SCRIPT

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def log_file_posterior_only(self) -> Path:
        return self.path / (LOG_FILE + POSTERIOR_ONLY_SUFFIX)

    @property
    def done_marker(self) -> Path:
        return self.path / DONE_MARKER

    @property
    def done_marker_posterior_only(self) -> Path:
        return self.path / (DONE_MARKER + POSTERIOR_ONLY_SUFFIX)

    @property
    def claim_file(self) -> Path:
        return self.path / CLAIM_FILE

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def claim_lock_file(self) -> Path:
        return self.path / CLAIM_LOCK_FILE

    @property
    def params_json(self) -> Path:
        return self.param_folder / PARAMS_JSON

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT_DIR

    def export_model_params_file(self) -> Path:
        return self.export_dir / "modelTrainedParams.h5"

    # --- PBT search (lfads_runs.tuning)
    @property
    def tune_dir(self) -> Path:
        return self.path / TUNE_DIR

    def tuned_paths(self) -> RunPaths:
        """The paths of the search's best model: a run folder ``tune/best/``."""
        return RunPaths(
            path=self.tune_dir / TUNE_BEST_DIR,
            path_common_data=self.path_common_data,
            link_prefix=f"../../../{self.link_prefix}",
            param_folder=self.param_folder,
        )

    def member_dir(self, member: int) -> Path:
        return self.tune_dir / member_name(member)

    def export_posterior_file(self, dataset: str) -> Path:
        return self.export_dir / f"posteriorMeans_{dataset}.h5"


@attrs.frozen
class CollectionLayout:
    """Paths of a run collection folder ``<root>/<name>``."""

    root: Path = attrs.field(converter=Path)
    name: str
    version: int = CURRENT_VERSION

    def __attrs_post_init__(self) -> None:
        if self.version < MIN_SUPPORTED_VERSION:
            raise ValueError(
                f"collection layout version {self.version} (< {MIN_SUPPORTED_VERSION}) is not "
                "supported: it kept one parameter set per collection folder"
            )

    @property
    def path(self) -> Path:
        return self.root / self.name

    @property
    def legacy(self) -> bool:
        return is_legacy_layout(self.version)

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def tensorboard_script(self) -> Path:
        return self.path / TENSORBOARD_SCRIPT

    @property
    def queue_script(self) -> Path:
        return self.path / QUEUE_SCRIPT

    @property
    def queue_state_file(self) -> Path:
        return self.path / QUEUE_STATE_FILE

    @property
    def queue_lock_file(self) -> Path:
        return self.path / QUEUE_LOCK_FILE

    @property
    def slurm_log_dir(self) -> Path:
        return self.path / SLURM_LOG_DIR

    def param_folder(self, param_hash: str) -> Path:
        return self.path / _prefixed(param_hash, PARAM_PREFIX)

    def data_folder(self, data_hash: str) -> Path:
        return self.path / _prefixed(data_hash, DATA_PREFIX)

    def run_paths(self, run_name: str, param_hash: str, data_hash: str) -> RunPaths:
        param_folder = self.param_folder(param_hash)
        data = self.data_folder(data_hash)
        if self.legacy:
            common = data
            link_prefix = f"../../../{data.name}"
        else:
            common = data / run_name
            link_prefix = f"../../../{data.name}/{run_name}"
        return RunPaths(
            path=param_folder / run_name,
            path_common_data=common,
            link_prefix=link_prefix,
            param_folder=param_folder,
        )

    def param_folders_on_disk(self) -> list[Path]:
        """Existing ``param_*`` folders, sorted by name."""
        if not self.path.is_dir():
            return []
        return sorted(
            p for p in self.path.iterdir() if p.is_dir() and p.name.startswith(PARAM_PREFIX)
        )


def member_name(member: int) -> str:
    """``member_000``: the folder (and Ray trial name) of PBT member ``member``."""
    return f"{MEMBER_PREFIX}{member:03d}"


def member_index(name: str) -> int | None:
    """The index in a ``member_<n>`` name, or None."""
    if name.startswith(MEMBER_PREFIX) and name[len(MEMBER_PREFIX) :].isdigit():
        return int(name[len(MEMBER_PREFIX) :])
    return None


def _prefixed(h: str, prefix: str) -> str:
    return h if h.startswith(prefix) else prefix + h
