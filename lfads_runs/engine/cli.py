"""``python -m lfads_runs.engine``: a drop-in for TensorFlow LFADS's ``run_lfads.py``.

Accepts run_lfads.py's command line (``--kind=... --data_dir=... --lfads_save_dir=...``
and any model flag, as ``--flag=value``, ``--flag value``, ``--flag`` or
``--noflag``), so scripts generated for the original run unchanged. Unknown
flags are ignored, as TF1's flag parser does. Extras of ours: ``--seed``,
``--max_epochs``, ``--max_train_seconds``, ``--num_samples`` (samples per
trial for posterior_sample_and_average; default batch_size as in LFADS) and
``--engine_device`` (cpu, cuda, auto; default: from ``--device`` with soft
placement: ``gpu:N`` uses CUDA when available, else the CPU). The AutoLFADS
hyperparameters ``--cd_rate``, ``--cd_pass_rate``, ``--sv_rate``, ``--sv_seed``
and ``--fp_len`` (docs/autolfads.md) are ours too.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import attrs

from ..exceptions import LfadsRunsError
from ..hparams import Hyperparameters
from ..layout import POSTERIOR_KINDS

__all__ = ["main", "parse_flags", "KINDS"]

KINDS = ("train", *POSTERIOR_KINDS, "prior_sample", "write_model_params")
_BOOL_FLAGS = {a.name for a in attrs.fields(Hyperparameters) if a.default in (True, False)}
_RUN_FLAGS = {
    "kind": "train",
    "data_dir": None,
    "data_filename_stem": "lfads",
    "lfads_save_dir": None,
    "checkpoint_pb_load_name": "checkpoint",
    "output_filename_stem": "",
    "seed": None,
    "num_samples": None,
    "engine_device": None,
}


def parse_flags(argv: Sequence[str]) -> dict[str, str]:
    """absl-style ``--name=value`` / ``--name value`` / ``--name`` / ``--noname`` pairs."""
    out: dict[str, str] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if not a.startswith("-") or a in ("-", "--"):
            continue
        body = a.lstrip("-")
        if "=" in body:
            k, v = body.split("=", 1)
            out[k] = v
            continue
        if body in _BOOL_FLAGS:
            out[body] = "true"
        elif body.startswith("no") and body[2:] in _BOOL_FLAGS:
            out[body[2:]] = "false"
        elif i < len(args) and not args[i].startswith("--"):
            out[body] = args[i]
            i += 1
        else:
            out[body] = "true"
    return out


def _device(flags: dict[str, str]) -> str:
    if flags.get("engine_device"):
        return flags["engine_device"]
    dev = flags.get("device", "gpu:0").lower()
    if dev.startswith("gpu") or dev.startswith("cuda"):
        import torch

        n = dev.split(":", 1)[1] if ":" in dev else "0"
        return f"cuda:{n}" if torch.cuda.is_available() else "cpu"
    return "cpu"


def _write_model_params(run: dict, hps: Hyperparameters) -> None:
    """``--kind=write_model_params``: hyperparameters file, then ``model_params`` from the
    checkpoint named by ``--checkpoint_pb_load_name`` (lfads_runs.dump does the copy)."""
    from pathlib import Path

    from .. import layout as L
    from ..dump import dump_model_params
    from ..io.checkpoints import resolve_checkpoint
    from ..io.hyperparameters_file import RunFlags, write_hyperparameters_file
    from .data import build_spec, load_datasets
    from .training import read_checkpoint_arrays_step

    save_dir = Path(run["lfads_save_dir"])
    name = run["checkpoint_pb_load_name"]
    datasets = load_datasets(
        run["data_dir"], hps, stem=run["data_filename_stem"], for_training=False
    )
    spec = build_spec(hps, datasets)
    prefix = resolve_checkpoint(save_dir, name, files=False)
    flags = RunFlags.make(
        data_dir=run["data_dir"],
        lfads_save_dir=save_dir,
        checkpoint_pb_load_name=name,
        output_filename_stem=run["output_filename_stem"],
        data_filename_stem=run["data_filename_stem"],
    )
    write_hyperparameters_file(
        save_dir, read_checkpoint_arrays_step(prefix), spec, flags, "write_model_params"
    )
    dest = save_dir / L.model_params_file_name(run["output_filename_stem"])
    dump_model_params(save_dir, checkpoint=prefix, dest=dest, spec=spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one LFADS kind; returns the process exit status."""
    flags = parse_flags(sys.argv[1:] if argv is None else argv)
    run = {k: flags.get(k, d) for k, d in _RUN_FLAGS.items()}
    kind = run["kind"]
    if kind not in KINDS:
        print(f"error: --kind must be one of {', '.join(KINDS)}, got {kind!r}", file=sys.stderr)
        return 2
    for req in ("data_dir", "lfads_save_dir"):
        if not run[req]:
            print(f"error: --{req} is required", file=sys.stderr)
            return 2
    try:
        hps = Hyperparameters.from_mapping(flags)
        seed = None if run["seed"] in (None, "") else int(run["seed"])
        device = _device(flags)
        from . import posterior, training

        data_dir, save_dir = run["data_dir"], run["lfads_save_dir"]
        stem = run["data_filename_stem"]
        if kind == "train":
            res = training.train(
                data_dir,
                save_dir,
                hps,
                device=device,
                seed=seed,
                data_filename_stem=stem,
                checkpoint_pb_load_name=run["checkpoint_pb_load_name"],
            )
            print(
                f"Training stopped ({res.stop_reason}) after {res.epochs} epochs, "
                f"step {res.steps}.",
                file=sys.stderr,
            )
        elif kind in POSTERIOR_KINDS:
            n = None if run["num_samples"] in (None, "") else int(run["num_samples"])
            posterior.sample_posterior(
                data_dir,
                save_dir,
                hps,
                kind,
                run["checkpoint_pb_load_name"],
                n_samples=n,
                device=device,
                seed=seed,
                data_filename_stem=stem,
                output_filename_stem=run["output_filename_stem"],
            )
        elif kind == "prior_sample":
            posterior.prior_sample(
                data_dir,
                save_dir,
                hps,
                run["checkpoint_pb_load_name"],
                device=device,
                seed=seed,
                data_filename_stem=stem,
                dataset=run["output_filename_stem"] or None,
            )
        else:
            _write_model_params(run, hps)
    except LfadsRunsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
