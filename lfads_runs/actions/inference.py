"""New trials through a trained run: :meth:`Run.infer <lfads_runs.collection.Run.infer>`.

The MATLAB tool could only run LFADS on the files it had prepared (its issues #28
and #33); here any trials of a dataset the run was trained on go through the
trained model and come back as :class:`~lfads_runs.results.PosteriorMeans`.

Time resolution
---------------
The model takes ``T`` bins of ``spike_bin_ms`` (the run's ``spikeBinMs``). Counts
may be given either

- already binned: ``trials x T x neurons`` at ``spike_bin_ms``; or
- at the resolution of the original recordings (``inputInfo``'s
  ``seq_binSizeMs``, the resolution ``prepare`` started from), e.g. 1 ms bins:
  they are summed into ``spike_bin_ms`` bins exactly as ``prepare`` does
  (trailing bins that do not fill a bin are dropped);

which of the two is told by the number of time bins, or explicitly by
``bin_ms`` (the width of the given bins, any divisor of ``spike_bin_ms``).
External inputs are rebinned the same way (summed, like ``prepare``).

The weights come from the run's own checkpoint (ours or TensorFlow's: the same
files), from ``lfadsOutput/model_params``, or from any checkpoint prefix or
``model_params`` file given as ``checkpoint``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from ..data.binning import rebin_factor, rebin_sum, warn_implausible_counts
from ..exceptions import CheckpointError, ConfigError, DataError
from ..layout import POSTERIOR_KINDS
from ..results.posterior_means import PosteriorMeans, posterior_means_from_arrays

if TYPE_CHECKING:
    from ..collection import Run
    from ..model_spec import ModelSpec

__all__ = ["infer_run", "resolve_weights"]


def resolve_weights(run: Run, checkpoint: str | os.PathLike = "lve") -> Path:
    """The checkpoint prefix or ``model_params`` file whose weights :func:`infer_run` uses.

    Parameters
    ----------
    checkpoint
        ``"lve"``: the lowest-validation-error checkpoint (else the latest, with
        a warning), else ``lfadsOutput/model_params``; ``"latest"``: the latest
        checkpoint, else ``model_params``; ``"model_params"``: that file only;
        a step or any other value: a checkpoint prefix or a ``model_params`` file
        (relative paths are looked up inside the run's ``lfadsOutput`` first). The
        checkpoint rules are :mod:`lfads_runs.io.checkpoints`', shared with dumping
        and posterior sampling.

    Raises
    ------
    CheckpointError
        Nothing to load (the message lists where it looked).
    """
    from ..io.checkpoints import find_checkpoint, named_choice

    out = run.path_lfads_output
    params_file = run.file_model_params
    if os.fspath(checkpoint) == "model_params":
        if params_file.is_file():
            return params_file
        raise CheckpointError(
            f"{params_file} does not exist; write it with run.load_model_trained_params() "
            "or `lfads-runs dump`, or infer from a checkpoint (checkpoint='lve')"
        )
    prefix, looked = find_checkpoint(out, checkpoint, files=True)
    if prefix is not None:
        return prefix
    if named_choice(checkpoint) is None:
        raise CheckpointError(
            f"{checkpoint!s} is neither a model_params file nor a checkpoint prefix "
            f"(looked for {'; '.join(looked)})"
        )
    if params_file.is_file():
        return params_file
    looked.append(f"{params_file} (missing)")
    raise CheckpointError(
        f"run {run.name} ({run.param_hash}) has no trained weights to infer with; looked at: "
        + "; ".join(looked)
        + ". Train it first (run.train() or `lfads-runs train`)."
    )


def _dataset_name(run: Run, dataset: str | None) -> str:
    names = run.dataset_names
    if dataset is None:
        if len(names) == 1:
            return names[0]
        raise ConfigError(
            f"run {run.name} has {len(names)} datasets ({', '.join(names)}); "
            "say which one the trials belong to with dataset="
        )
    key = str(dataset).removesuffix(".h5")
    if key not in names:
        raise ConfigError(
            f"run {run.name} was not trained on dataset {dataset!r}; its datasets are "
            f"{', '.join(names)}"
        )
    return key


def _input_info(run: Run, dataset: str) -> Any | None:
    """The dataset's inputInfo when the run was prepared here (None otherwise)."""
    if not run.input_info_files[dataset].exists():
        return None
    return run.load_input_info()[dataset]


def _rebin_factor(
    n_time: int,
    *,
    model_steps: int,
    spike_bin_ms: float,
    bin_ms: float | None,
    info: Any | None,
    dataset: str,
) -> int:
    """How many given bins make one model bin; DataError when the length fits no reading."""
    if bin_ms is not None:
        r = rebin_factor(float(bin_ms), spike_bin_ms, name=dataset)
        if n_time // r != model_steps:
            raise DataError(
                f"counts of {dataset} have {n_time} bins of {bin_ms:g} ms, which give "
                f"{n_time // r} bins of {spike_bin_ms:g} ms; the model takes {model_steps}"
            )
        return r
    if n_time == model_steps:
        return 1
    expected = f"{model_steps} bins of {spike_bin_ms:g} ms (already binned)"
    if info is not None and info.time_ms.size:
        r = rebin_factor(info.bin_ms, spike_bin_ms, name=dataset)
        if n_time == info.time_ms.size and n_time // r == model_steps:
            return r
        expected += f" or {info.time_ms.size} bins of {info.bin_ms:g} ms (the original data)"
    raise DataError(
        f"counts of {dataset} have {n_time} time bins; the model takes {expected}. "
        "Pass bin_ms= to say the width of the given bins."
    )


def _check_counts(counts: np.ndarray, dataset: str, n_neurons: int, output_dist: str) -> None:
    if counts.ndim != 3:
        raise DataError(
            f"counts of {dataset} must be trials x time x neurons, got shape {counts.shape}"
        )
    if counts.shape[0] == 0:
        raise DataError(f"counts of {dataset} hold no trials")
    if counts.shape[2] != n_neurons:
        raise DataError(
            f"{dataset} has {n_neurons} neurons in the trained model, but the counts have "
            f"{counts.shape[2]} (the last axis; counts are trials x time x neurons)"
        )
    if counts.dtype.kind not in "biuf":
        raise DataError(f"counts of {dataset} must be numeric, got dtype {counts.dtype}")
    if not np.isfinite(counts).all():
        raise DataError(f"counts of {dataset} hold NaN or infinite values")
    if output_dist == "poisson":
        if (counts < 0).any():
            raise DataError(f"counts of {dataset} must not be negative for Poisson output")
        if counts.dtype.kind == "f" and (counts != np.round(counts)).any():
            raise DataError(f"counts of {dataset} must be whole numbers for Poisson output")
        warn_implausible_counts(counts, "time", f"counts of {dataset}", stacklevel=4)


def _ext_inputs(
    ext: Any, spec: ModelSpec, n_trials: int, n_time: int, r: int, dataset: str
) -> np.ndarray | None:
    dim = spec.hps.ext_input_dim
    if dim == 0:
        if ext is not None:
            raise DataError(f"the model of {dataset} takes no external inputs (ext_input_dim 0)")
        return None
    if ext is None:
        raise DataError(
            f"the model takes {dim} external inputs: pass ext_inputs as trials x time x {dim}"
        )
    ext = _as_array(ext, "ext_inputs", np.float64)
    if ext.shape != (n_trials, n_time, dim):
        raise DataError(
            f"ext_inputs must have the counts' trials and time bins and {dim} inputs: "
            f"expected {(n_trials, n_time, dim)}, got {ext.shape}"
        )
    if not np.isfinite(ext).all():
        raise DataError("ext_inputs hold NaN or infinite values")
    return rebin_sum(ext, r)


def _as_array(x: Any, what: str, dtype: Any = None) -> np.ndarray:
    """``x`` as one numeric array; ragged nested lists and non-numbers are a DataError."""
    try:
        return np.asarray(x, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{what} must be a trials x time x columns array of numbers: {exc}"
        ) from None


def _load_model(run: Run, source: Path, spec: ModelSpec, device: str) -> Any:
    """The engine model for ``source``, cached on the run while the file is unchanged."""
    from .. import engine
    from ..io.tensorbundle import data_path, index_path

    index = index_path(source)
    files = [index, data_path(source)] if index.is_file() else [source]
    return run._cache.get(
        f"infer_model/{os.fspath(source)}/{device}",
        lambda: files,
        lambda: engine.load_model(source, spec, device=device),
    )


def infer_run(
    run: Run,
    counts: Any,
    *,
    dataset: str | None = None,
    kind: str = "posterior_push_mean",
    n_samples: int | None = None,
    ext_inputs: Any = None,
    checkpoint: str | os.PathLike = "lve",
    bin_ms: float | None = None,
    condition_ids: Any = None,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
) -> PosteriorMeans:
    """Posterior means of new trials of one of ``run``'s datasets (needs the torch extra).

    Parameters
    ----------
    run
        A trained run (its checkpoints or ``model_params``).
    counts
        Trials x time x neurons (one trial may be given as time x neurons), at
        ``spike_bin_ms`` or at the original data's bin width (see the module
        docstring); the neuron count must be the dataset's.
    dataset
        The dataset the trials come from (its read-in and read-out are used);
        optional for single-dataset runs.
    kind
        ``"posterior_push_mean"`` (deterministic: g0 and inferred inputs at their
        posterior means) or ``"posterior_sample_and_average"`` (the average over
        ``n_samples`` posterior samples per trial).
    n_samples
        Samples per trial for sample-and-average (default the run's
        ``num_samples_posterior``).
    ext_inputs
        Trials x time x ``c_ext_input_dim`` when the model takes external inputs,
        at the same resolution as ``counts``.
    checkpoint
        Where the weights come from; see :func:`resolve_weights`.
    bin_ms
        Width of the given bins in ms, when the length of ``counts`` alone does
        not tell (any divisor of ``spike_bin_ms``).
    condition_ids
        Optional condition of each trial (kept in the result, for condition averages).
    batch_size
        Trials per push-mean pass (default the run's ``c_batch_size``; it changes
        only the batch-level costs).
    seed
        Random seed of the posterior samples.
    device
        Torch device.

    Returns
    -------
    PosteriorMeans
        One entry per given trial, in the given order (all marked as training
        trials of no split: ``train_inds`` is 1..n, ``valid_inds`` empty); rates
        in counts per ``spike_bin_ms`` bin (``rates_hz`` in spikes/s).

    Raises
    ------
    ConfigError
        Unknown kind or dataset.
    DataError
        Wrong neuron count, time length, values or external inputs.
    CheckpointError
        No weights to load.
    """
    from .. import engine

    if kind not in POSTERIOR_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(POSTERIOR_KINDS)}, got {kind!r}")
    name = _dataset_name(run, dataset)
    spec = run.model_spec()
    ds_spec = spec.dataset(name)
    p = run.params
    counts = _as_array(counts, f"counts of {name}")
    if counts.ndim == 2:
        counts = counts[None]
    _check_counts(counts, name, ds_spec.n_neurons, p.c_output_dist)
    info = _input_info(run, name)
    r = _rebin_factor(
        counts.shape[1],
        model_steps=spec.num_steps,
        spike_bin_ms=float(p.spike_bin_ms),
        bin_ms=bin_ms,
        info=info,
        dataset=name,
    )
    n = counts.shape[0]
    ext = _ext_inputs(ext_inputs, spec, n, counts.shape[1], r, name)
    binned = rebin_sum(counts, r)[:, : spec.num_steps]
    if ext is not None:
        ext = ext[:, : spec.num_steps]
    if condition_ids is not None:
        condition_ids = np.asarray(condition_ids).reshape(-1)
        if condition_ids.size != n:
            raise DataError(f"condition_ids has {condition_ids.size} entries for {n} trials")

    source = resolve_weights(run, checkpoint)
    model = _load_model(run, source, spec, device)
    if n_samples is None:
        n_samples = int(p.num_samples_posterior)
    arrays = engine.infer(
        model,
        spec,
        binned,
        dataset=name,
        ext_input=ext,
        kind=kind,
        n_samples=n_samples,
        batch_size=batch_size,
        seed=seed,
        device=device,
    )
    # The given resolution's time base; the run's own when the trials are at its original bin.
    seq_time = seq_bin = None
    if r > 1:
        given_bin = float(bin_ms) if bin_ms is not None else float(info.bin_ms)
        if info is not None and info.time_ms.size == counts.shape[1]:
            seq_time = info.time_ms
        else:
            seq_time = np.arange(counts.shape[1]) * given_bin
        seq_bin = given_bin
    elif info is not None and info.time_ms.size:
        seq_time, seq_bin = info.time_ms, info.bin_ms
    pm = posterior_means_from_arrays(
        arrays,
        None,
        dataset=name,
        kind=kind,
        spike_bin_ms=float(p.spike_bin_ms),
        train_inds=np.arange(1, n + 1),
        valid_inds=np.zeros(0, dtype=np.int64),
        output_dist=p.c_output_dist,
        condition_ids=condition_ids,
        seq_time_ms=seq_time,
        seq_bin_ms=seq_bin,
        raw_counts=counts if r > 1 else None,
        external_inputs=None if ext_inputs is None or r == 1 else np.asarray(ext_inputs),
        source_files=(source,),
    )
    return attrs.evolve(pm, binned_data=binned, binned_external_inputs=ext)
