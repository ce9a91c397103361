"""``hyperparameters-<step>.txt``: the JSON dump run_lfads.py writes on every graph build.

The one reader and writer of these files (the engine writes them, dumping and
``Run.model_spec`` read them). Keys in run_lfads.py's order, booleans as the strings "true"/"false",
``num_steps_for_gen_ic`` clamped to T, plus ``_clip_value``, ``kind``,
``dataset_names``, ``dataset_dims``, ``num_steps`` and ``ndatasets``
(spec §7.8). One line, no trailing newline, as ``json.dump`` writes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import layout as L
from .._atomic import atomic_write_text
from ..exceptions import ConfigError, DataError, MissingOutputError
from ..hparams import CLIP_VALUE, Hyperparameters
from ..model_spec import ModelSpec

__all__ = [
    "hyperparameters_dict",
    "write_hyperparameters_file",
    "RunFlags",
    "hyperparameters_files",
    "newest_hyperparameters_file",
    "read_hyperparameters_file",
    "read_hyperparameters",
]

# Flags of run_lfads.py in the order of its hyperparameter dict (allow_gpu_growth is not in it).
_ORDER = (
    "output_dist", "data_dir", "lfads_save_dir", "checkpoint_pb_load_name", "checkpoint_name",
    "output_filename_stem", "max_ckpt_to_keep", "max_ckpt_to_keep_lve",
    "ps_nexamples_to_process", "ext_input_dim", "data_filename_stem", "device", "csv_log",
    "num_steps_for_gen_ic", "inject_ext_input_to_gen", "cell_weight_scale", "ic_dim",
    "factors_dim", "ic_enc_dim", "gen_dim", "gen_cell_input_weight_scale",
    "gen_cell_rec_weight_scale", "ic_prior_var_min", "ic_prior_var_scale", "ic_prior_var_max",
    "ic_post_var_min", "co_prior_var_scale", "prior_ar_atau", "prior_ar_nvar",
    "do_train_prior_ar_atau", "do_train_prior_ar_nvar", "do_causal_controller",
    "controller_input_lag", "do_feed_factors_to_controller", "feedback_factors_or_rates",
    "co_dim", "ci_enc_dim", "con_dim", "co_mean_corr_scale", "batch_size",
    "learning_rate_init", "learning_rate_decay_factor", "learning_rate_stop",
    "learning_rate_n_to_compare", "max_grad_norm", "cell_clip_value", "do_train_io_only",
    "do_train_encoder_only", "do_reset_learning_rate", "do_train_readin", "keep_prob",
    "temporal_spike_jitter_width", "l2_gen_scale", "l2_con_scale", "kl_ic_weight",
    "kl_co_weight", "kl_start_step", "kl_increase_steps", "l2_start_step", "l2_increase_steps",
)  # fmt: skip
_EXTENSIONS = ("max_epochs", "max_train_seconds")
#: AutoLFADS extensions with their defaults: written only when they differ.
_AUTOLFADS = {"cd_rate": 0.0, "cd_pass_rate": 0.0, "sv_rate": 0.0, "sv_seed": 0, "fp_len": 0}


class RunFlags(dict):
    """Path-like flags of run_lfads.py that are not model hyperparameters."""

    @classmethod
    def make(
        cls,
        *,
        data_dir: str | os.PathLike,
        lfads_save_dir: str | os.PathLike,
        checkpoint_pb_load_name: str = "checkpoint",
        output_filename_stem: str = "",
        data_filename_stem: str = "lfads",
    ) -> RunFlags:
        return cls(
            data_dir=str(data_dir),
            lfads_save_dir=str(lfads_save_dir),
            checkpoint_pb_load_name=checkpoint_pb_load_name,
            output_filename_stem=output_filename_stem,
            data_filename_stem=data_filename_stem,
        )


def _tf_flag_value(v: Any) -> Any:
    # The format spells booleans as TensorFlow wrote them: "true"/"false".
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def hyperparameters_dict(spec: ModelSpec, flags: RunFlags, kind: str) -> dict[str, Any]:
    """The dict run_lfads.py dumps, for this model, run and kind."""
    hps: Hyperparameters = spec.hps
    values = hps.as_dict()
    values.update(flags)
    values["num_steps_for_gen_ic"] = spec.num_steps_for_gen_ic
    out: dict[str, Any] = {k: _tf_flag_value(values[k]) for k in _ORDER}
    out["_clip_value"] = int(CLIP_VALUE)
    out["kind"] = kind
    out["dataset_names"] = list(spec.dataset_names)
    out["dataset_dims"] = {d.name: d.n_neurons for d in spec.datasets}
    out["num_steps"] = spec.num_steps
    out["ndatasets"] = len(spec.datasets)
    for k in _EXTENSIONS:  # ours; only when set, so files match TF's otherwise
        if values.get(k) is not None:
            out[k] = values[k]
    heldin = {d.name: list(d.heldin) for d in spec.datasets if d.heldin is not None}
    if heldin:  # co-smoothing: which neurons the read-in sees
        out["dataset_heldin"] = heldin
    for k, default in _AUTOLFADS.items():
        if values[k] != default:
            out[k] = values[k]
    return out


def write_hyperparameters_file(
    save_dir: str | os.PathLike, step: int, spec: ModelSpec, flags: RunFlags, kind: str
) -> Path:
    """Write ``<save_dir>/hyperparameters-<step>.txt`` atomically; returns its path."""

    path = Path(save_dir) / L.hyperparameters_file_name(step)
    atomic_write_text(path, json.dumps(hyperparameters_dict(spec, flags, kind)))
    return path


def _files_by_step(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    found = []
    for p in Path(output_dir).glob(L.HYPERPARAMETERS_GLOB):
        step = L.hyperparameters_file_step(p.name)
        if step is not None and p.is_file():
            found.append((step, p))
    return sorted(found)


def hyperparameters_files(output_dir: str | os.PathLike) -> list[Path]:
    """The ``hyperparameters-<step>.txt`` files of ``output_dir``, by step (oldest first)."""
    return [p for _, p in _files_by_step(output_dir)]


def newest_hyperparameters_file(
    output_dir: str | os.PathLike, before_step: int | None = None
) -> Path | None:
    """The file of the highest step in ``output_dir``, or of the highest step below
    ``before_step`` (None when there is none)."""
    files = [
        p for step, p in _files_by_step(output_dir) if before_step is None or step < before_step
    ]
    return files[-1] if files else None


def read_hyperparameters_file(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object of one ``hyperparameters-<step>.txt`` file, values as written.

    Raises
    ------
    MissingOutputError
        No such file.
    DataError
        Not UTF-8 JSON, or not a JSON object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingOutputError(f"{path}: no such hyperparameters file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a hyperparameters file (JSON expected: {exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of hyperparameters, got {data!r:.60}")
    return data


def read_hyperparameters(path: str | os.PathLike) -> Hyperparameters:
    """The :class:`~lfads_runs.hparams.Hyperparameters` of a ``hyperparameters-<step>.txt``.

    Keys that are not hyperparameters (``kind``, ``data_dir``, ``dataset_names``, ...)
    are ignored; ``"true"``/``"false"`` are booleans, as TensorFlow wrote them.
    """
    try:
        return Hyperparameters.from_mapping(read_hyperparameters_file(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
