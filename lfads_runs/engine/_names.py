"""File names the engine writes inside ``lfads_save_dir``.

Names that layout.py already owns are taken from there; the ones that depend on
run_lfads.py flags (``checkpoint_name``, ``csv_log``, ``output_filename_stem``)
are built here from those flags, each in exactly one place.
"""

from __future__ import annotations

from .. import layout

CHECKPOINT_POINTER = layout.CHECKPOINT_POINTER
CHECKPOINT_LVE_POINTER = layout.CHECKPOINT_LVE_POINTER
SIDECAR_SUFFIX = layout.CHECKPOINT_SIDECAR_SUFFIX
RNG_SUFFIX = layout.CHECKPOINT_RNG_SUFFIX


def checkpoint_prefix(checkpoint_name: str, step: int, *, lve: bool = False) -> str:
    """``lfads_vae.ckpt-<step>`` / ``lfads_vae_lve.ckpt-<step>``."""
    return layout.checkpoint_prefix(step, lve=lve, name=checkpoint_name)


def checkpoint_base(checkpoint_name: str, *, lve: bool = False) -> str:
    """Prefix without the step: ``lfads_vae.ckpt`` / ``lfads_vae_lve.ckpt``."""
    return f"{checkpoint_name}{'_lve' if lve else ''}.ckpt"


def fitlog_name(csv_log: str) -> str:
    """``fitlog.csv`` for the default ``--csv_log=fitlog``."""
    return f"{csv_log}.csv"


def hyperparameters_name(step: int) -> str:
    """``hyperparameters-<step>.txt``."""
    return layout.hyperparameters_file_name(step)


def posterior_name(dataset: str, split: str, kind: str, stem: str = "") -> str:
    """``model_runs_<ds>_<split>_<kind>``, or ``<stem><ds>_<split>_<kind>`` with a stem."""
    if not stem:
        return layout.posterior_file_name(dataset, split, kind)
    return f"{stem}{layout.lfads_dataset_name(dataset)}_{split}_{kind}"


def prior_sample_name(stem: str = "") -> str:
    """``model_runs_prior_sample`` (run_lfads.py passes the stem as the dataset name instead)."""
    return layout.prior_sample_file_name()


def model_params_name(stem: str = "") -> str:
    """``model_params`` or ``<stem>_model_params``."""
    return f"{stem}_{layout.MODEL_PARAMS}" if stem else layout.MODEL_PARAMS
