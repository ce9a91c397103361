"""Posterior sampling and prior samples (spec §9), and inference on new trials.

- ``posterior_push_mean``: batches of ``batch_size`` distinct trials in file
  order, g0 and u at their posterior means; the last batch is zero-padded;
  costs and bounds are batch-level values copied to each trial of the batch.
- ``posterior_sample_and_average``: every trial repeated ``batch_size`` (or
  ``n_samples``) times with fresh posterior samples; every output is the average
  over the copies, costs and bounds are those of the copies' batch. What does
  not depend on the sample (read-in, encoders, the controller's encoder input)
  is computed once per trial, and several trials share one pass when that
  changes nothing (no correlation cost): the same draws as one pass per trial
  of repeated copies, at a fraction of the cost.
- ``prior_sample``: one batch of samples from the priors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from .. import layout as L
from .. import progress as _progress
from ..exceptions import ConfigError, DataError
from ..hparams import Hyperparameters
from ..io import checkpoints as _checkpoints
from ..io.checkpoints import CheckpointChoice
from ..io.hyperparameters_file import RunFlags, write_hyperparameters_file
from ..io.tensorbundle import checkpoint_exists
from ..model_spec import ModelSpec, hdf5_key
from ._ext import tune_allocator
from ._rng import NoiseSource
from .ckpt import read_checkpoint_arrays, split_checkpoint_arrays, weights_from_model_params
from .data import build_spec, load_datasets
from .model import LfadsModel, PassConfig, poisson_log_norm
from .threads import ThreadGovernor
from .training import new_seed, resolve_device

__all__ = [
    "POSTERIOR_KINDS",
    "sample_posterior",
    "prior_sample",
    "posterior_arrays",
    "infer",
    "load_model",
    "resolve_checkpoint",
]

POSTERIOR_KINDS = L.POSTERIOR_KINDS  #: re-exported: the engine's public name
#: Target number of rows per pass when several trials share a sample-and-average pass.
_ROWS_PER_PASS = 2048


# ---------------------------------------------------------------- weights
def resolve_checkpoint(save_dir: str | os.PathLike, checkpoint: CheckpointChoice = "lve") -> Path:
    """The checkpoint prefix or ``model_params`` file that ``checkpoint`` names in ``save_dir``.

    The rules are :mod:`lfads_runs.io.checkpoints`' (shared with dumping and inference).

    Raises
    ------
    CheckpointError
        Nothing to load (the message names the folder and what it found).
    """
    return _checkpoints.resolve_checkpoint(save_dir, checkpoint, files=True)


def _load_source(spec: ModelSpec, source: Path) -> tuple[dict[str, np.ndarray], int]:
    if checkpoint_exists(source):
        arrays = read_checkpoint_arrays(source)
    else:
        arrays = weights_from_model_params(spec, source)
    variables, _, scalars = split_checkpoint_arrays(spec, arrays, source=str(source))
    return variables, int(scalars.get("global_step", 0))


def _normalise_weights(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept TF names or model_params keys; return TF names."""
    out = {}
    for v in spec.variables:
        if v.name in weights:
            out[v.name] = weights[v.name]
        elif hdf5_key(v.name) in weights:
            out[v.name] = weights[hdf5_key(v.name)]
    return out


def load_model(
    source: str | os.PathLike | Mapping[str, np.ndarray],
    spec: ModelSpec,
    *,
    device: str = "cpu",
) -> LfadsModel:
    """An :class:`LfadsModel` with weights from a checkpoint, ``model_params`` or a mapping.

    ``source`` is a checkpoint prefix, a ``model_params`` file, an output folder
    (its lowest-validation-error checkpoint, else the latest), or a mapping of
    TF names (or ``model_params`` keys) to arrays. The restored global step is
    ``model.global_step``.
    """
    tune_allocator()
    model = LfadsModel(spec, device=resolve_device(device))
    if isinstance(source, Mapping):
        weights = _normalise_weights(spec, source)
        step_key = next(
            (k for k in ("LFADS/global_step", "LFADS_global_step:0") if k in source), None
        )
        step = int(np.asarray(source[step_key])) if step_key else 0
        model.params.load_arrays(weights, source="weights")
    else:
        path = Path(source)
        if path.is_dir():
            path = resolve_checkpoint(path, "lve")
        weights, step = _load_source(spec, path)
        model.params.load_arrays(weights, source=str(path))
    model.global_step = step
    return model


# -------------------------------------------------------------- computation
def _to_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def posterior_arrays(
    model: LfadsModel,
    data: np.ndarray,
    dataset: str,
    kind: str,
    *,
    ext: np.ndarray | None = None,
    batch_size: int,
    step: int,
    generator: NoiseSource,
    n_examples: int | None = None,
    on_trials: Callable[[int], object] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of one posterior file for ``data`` [trials, T, D] (float64, spec §9.3).

    ``on_trials(k)`` is called after each pass with the number of trials it finished.
    """
    if kind not in POSTERIOR_KINDS:
        raise ConfigError(f"kind must be one of {POSTERIOR_KINDS}, got {kind!r}")
    tune_allocator()  # large per-pass tensors: reuse freed memory, no fresh page faults
    n = data.shape[0] if n_examples is None else min(n_examples, data.shape[0])
    data = data[:n]
    ext = None if ext is None else ext[:n]
    governor = ThreadGovernor.for_device(model.device)

    def done(k: int) -> None:  # after each pass
        governor.tick()
        if on_trials is not None:
            on_trials(k)

    try:
        if kind == "posterior_push_mean":
            return _push_mean(model, data, ext, dataset, batch_size, step, generator, done)
        return _sample_and_average(model, data, ext, dataset, batch_size, step, generator, done)
    finally:
        governor.restore()


def _tensor(model: LfadsModel, a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32, device=model.device)


def _push_mean(model, data, ext, dataset, B, step, gen, done):
    cfg = PassConfig.for_kind("posterior_push_mean")
    n = data.shape[0]
    parts: dict[str, list[np.ndarray]] = {}
    scalars = {"costs": [], "nll_bound_vaes": [], "nll_bound_iwaes": []}
    with torch.no_grad():
        for start in range(0, n, B):
            k = min(B, n - start)
            x = np.zeros((B,) + data.shape[1:], dtype=np.float32)
            x[:k] = data[start : start + k]
            e = None
            if ext is not None:
                e = np.zeros((B,) + ext.shape[1:], dtype=np.float32)
                e[:k] = ext[start : start + k]
                e = _tensor(model, e)
            res = model(
                _tensor(model, x), dataset, cfg, ext=e, step=step, generator=gen, want_outputs=True
            )
            for key, val in res.outputs.items():
                parts.setdefault(key, []).append(_to_np(val)[:k])
            for key, val in (
                ("costs", res.cost),
                ("nll_bound_vaes", res.nll_bound_vae),
                ("nll_bound_iwaes", res.nll_bound_iwae),
            ):
                scalars[key].append(np.full(k, float(val)))
            done(k)
    out = {k: np.concatenate(v).astype(np.float64) for k, v in parts.items()}
    out.update({k: np.concatenate(v) for k, v in scalars.items()})
    out["train_steps"] = np.full(n, float(step))
    return out


def _sample_and_average(model, data, ext, dataset, S, step, gen, done):
    cfg = PassConfig.for_kind("posterior_sample_and_average")
    h = model.spec.hps
    n = data.shape[0]
    # Trials per pass: one when the correlation cost couples a batch, else enough to fill a pass.
    G = 1 if h.co_mean_corr_scale > 0 else max(1, min(n, _ROWS_PER_PASS // max(S, 1)))
    parts: dict[str, list[np.ndarray]] = {}
    scalars = {"costs": [], "nll_bound_vaes": [], "nll_bound_iwaes": []}
    with torch.no_grad():
        for start in range(0, n, G):
            g = min(G, n - start)
            x = _tensor(model, data[start : start + g])
            e = None if ext is None else _tensor(model, ext[start : start + g])
            log_norm = poisson_log_norm(x) if h.output_dist == "poisson" else None
            res = model(
                x,
                dataset,
                cfg,
                ext=e,
                step=step,
                generator=gen,
                want_outputs=True,
                log_norm=log_norm,
                repeats=S,
                average_repeats=True,
            )
            for key, val in res.outputs.items():
                parts.setdefault(key, []).append(_to_np(val))
            log_p = res.log_p_b.reshape(g, S)
            kl = res.kl_b.reshape(g, S) if res.kl_b.dim() else res.kl_b.expand(g, S)
            lb = log_p - kl
            recon = -log_p.mean(1)
            cost = (
                recon
                + res.kl_weight * kl.mean(1)
                + res.l2_weight * res.l2
                + h.co_mean_corr_scale * res.corr
            )
            scalars["costs"].append(_to_np(cost).astype(np.float64))
            scalars["nll_bound_vaes"].append(_to_np(-lb.mean(1)).astype(np.float64))
            iwae = -(torch.logsumexp(lb, 1) - math.log(S))
            scalars["nll_bound_iwaes"].append(_to_np(iwae).astype(np.float64))
            done(g)
    out = {k: np.concatenate(v).astype(np.float64) for k, v in parts.items()}
    out.update({k: np.concatenate(v) for k, v in scalars.items()})
    out["train_steps"] = np.full(n, float(step))
    return out


def infer(
    weights: Mapping[str, np.ndarray] | LfadsModel,
    spec: ModelSpec,
    counts: np.ndarray,
    *,
    dataset: str,
    ext_input: np.ndarray | None = None,
    kind: str = "posterior_push_mean",
    n_samples: int | None = None,
    batch_size: int | None = None,
    step: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """Posterior outputs for new trials, exactly as a posterior file would hold them.

    Parameters
    ----------
    weights
        TF name (or ``model_params`` key) -> array, e.g. from a checkpoint or
        ``read_model_params``; or a loaded :class:`LfadsModel`.
    spec
        The model structure (``ModelSpec.build(hps, datasets, T)``).
    counts
        Trials x T x neurons of ``dataset`` (integer counts for Poisson).
    dataset
        LFADS dataset name whose read-in/read-out to use.
    kind
        "posterior_push_mean" or "posterior_sample_and_average".
    n_samples
        Samples per trial for sample-and-average (default ``hps.batch_size``).
    batch_size
        Trials per push-mean batch (default ``hps.batch_size``).
    step
        Global step for the cost ramps (default: the weights' ``global_step``).

    Returns
    -------
    dict
        The keys of spec §9.3 (float64).
    """
    counts = np.asarray(counts)
    ds = spec.dataset(dataset)
    if counts.ndim != 3 or counts.shape[1:] != (spec.num_steps, ds.n_neurons):
        raise DataError(
            f"counts for {ds.name} must be trials x {spec.num_steps} x {ds.n_neurons}, "
            f"got {counts.shape}"
        )
    if not np.isfinite(counts).all():
        raise DataError("counts hold NaN or infinite values")
    model = weights if isinstance(weights, LfadsModel) else load_model(weights, spec, device=device)
    if step is None:
        step = int(getattr(model, "global_step", 0))
    gen = NoiseSource(new_seed() if seed is None else int(seed))
    h = spec.hps
    B = (
        (n_samples or h.batch_size)
        if kind == "posterior_sample_and_average"
        else (batch_size or h.batch_size)
    )
    return posterior_arrays(
        model, counts, ds.name, kind, ext=ext_input, batch_size=B, step=step, generator=gen
    )


# ------------------------------------------------------------------- files
def sample_posterior(
    data_dir: str | os.PathLike,
    save_dir: str | os.PathLike,
    hps: Hyperparameters,
    kind: str = "posterior_sample_and_average",
    checkpoint: str | os.PathLike = "lve",
    *,
    n_samples: int | None = None,
    device: str = "cpu",
    seed: int | None = None,
    data_filename_stem: str = "lfads",
    output_filename_stem: str = "",
    progress: bool | None = None,
) -> dict[str, Path]:
    """Write ``model_runs_<ds>_{train,valid}_<kind>`` for every dataset (spec §9).

    Parameters
    ----------
    checkpoint
        "lve" (default; the latest checkpoint when there is no LVE one), "latest",
        or a checkpoint prefix / ``model_params`` path.
    n_samples
        Samples per trial for sample-and-average (default ``hps.batch_size``,
        which is what LFADS uses).
    progress
        A progress bar (tqdm) of the trials on stderr: None = only on a terminal.

    Returns
    -------
    dict
        File name -> path of every file written.
    """
    if kind not in POSTERIOR_KINDS:
        raise ConfigError(f"kind must be one of {POSTERIOR_KINDS}, got {kind!r}")
    from ..io.posterior_files import write_posterior_file

    save_dir = Path(save_dir)
    datasets = load_datasets(data_dir, hps, stem=data_filename_stem, for_training=False)
    spec = build_spec(hps, datasets)
    source = resolve_checkpoint(save_dir, checkpoint)
    model = load_model(source, spec, device=device)
    step = model.global_step
    flags = RunFlags.make(
        data_dir=data_dir,
        lfads_save_dir=save_dir,
        checkpoint_pb_load_name=_checkpoints.pointer_name(checkpoint),
        output_filename_stem=output_filename_stem,
        data_filename_stem=data_filename_stem,
    )
    write_hyperparameters_file(save_dir, step, spec, flags, kind)
    gen = NoiseSource(new_seed() if seed is None else int(seed))
    B = (n_samples or hps.batch_size) if kind == "posterior_sample_and_average" else hps.batch_size
    written: dict[str, Path] = {}
    parts = [(name, ds, split) for name, ds in datasets.items() for split in ("train", "valid")]
    cap = hps.ps_nexamples_to_process
    total = sum(min(cap, len(ds.data(split))) for _, ds, split in parts)
    with _progress.bar(total, kind, "trial", progress=progress) as trials_bar:
        for name, ds, split in parts:
            trials_bar.set_postfix_str(f"{name} {split}")
            arrays = posterior_arrays(
                model,
                ds.data(split),
                name,
                kind,
                ext=ds.ext(split),
                batch_size=B,
                step=step,
                generator=gen,
                n_examples=cap,
                on_trials=trials_bar.update,
            )
            fname = L.posterior_file_name(name, split, kind, output_filename_stem)
            path = save_dir / fname
            write_posterior_file(path, arrays)
            written[fname] = path
    return written


def prior_sample(
    data_dir: str | os.PathLike,
    save_dir: str | os.PathLike,
    hps: Hyperparameters,
    checkpoint: str | os.PathLike = "lve",
    *,
    dataset: str | None = None,
    device: str = "cpu",
    seed: int | None = None,
    data_filename_stem: str = "lfads",
) -> Path:
    """Write ``model_runs_prior_sample``: ``batch_size`` samples from the priors (spec §9.4)."""
    from ..io.posterior_files import write_posterior_file

    save_dir = Path(save_dir)
    datasets = load_datasets(data_dir, hps, stem=data_filename_stem, for_training=False)
    spec = build_spec(hps, datasets)
    model = load_model(resolve_checkpoint(save_dir, checkpoint), spec, device=device)
    step = model.global_step
    flags = RunFlags.make(
        data_dir=data_dir,
        lfads_save_dir=save_dir,
        checkpoint_pb_load_name=_checkpoints.pointer_name(checkpoint),
        data_filename_stem=data_filename_stem,
    )
    write_hyperparameters_file(save_dir, step, spec, flags, "prior_sample")
    name = spec.dataset(dataset).name if dataset else spec.dataset_names[0]
    gen = NoiseSource(new_seed() if seed is None else int(seed))
    ext = None
    if hps.ext_input_dim > 0:  # LFADS feeds none here; samples from the priors see zero input
        ext = torch.zeros(hps.batch_size, spec.num_steps, hps.ext_input_dim, device=model.device)
    with torch.no_grad():
        res = model(
            None,
            name,
            PassConfig.for_kind("prior_sample"),
            ext=ext,
            step=step,
            generator=gen,
            batch_size=hps.batch_size,
            want_outputs=True,
        )
    out = {k: _to_np(v) for k, v in res.outputs.items()}
    out["costs"] = np.asarray([float(res.cost)], np.float32)
    path = save_dir / L.prior_sample_file_name()
    write_posterior_file(path, out)
    return path
