"""Training data for the engine: input files, checks, epochs of batches, spike jitter.

Datasets are read with :mod:`lfads_runs.io.lfads_input` and sorted by LFADS
name (spec §7.1). Batching follows spec §7.2: per dataset, the trial indices are
padded to a multiple of the batch size with indices drawn without replacement,
permuted and cut into batches; the batches of all datasets are shuffled together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

from ..exceptions import DataError
from ..hparams import Hyperparameters
from ..model_spec import DatasetSpec, ModelSpec

__all__ = [
    "EngineDataset",
    "load_datasets",
    "build_spec",
    "epoch_batches",
    "jitter_spikes",
    "SPLITS",
]

SPLITS = ("train", "valid")


@attrs.frozen(eq=False)
class EngineDataset:
    """One dataset as the engine uses it (arrays as in the file)."""

    name: str  #: LFADS name, e.g. ``dataset001.h5``
    path: Path
    train_data: np.ndarray
    valid_data: np.ndarray
    train_ext_input: np.ndarray | None
    valid_ext_input: np.ndarray | None
    alignment_matrix_cxf: np.ndarray | None
    alignment_bias_c: np.ndarray | None
    #: Held-in neurons (sorted 0-based indices) when the file splits them, else None.
    heldin: np.ndarray | None = None
    #: Forward-prediction bins the file declares (0: none declared).
    forward_bins: int = 0

    @property
    def n_neurons(self) -> int:
        return int(self.train_data.shape[2])

    @property
    def num_steps(self) -> int:
        return int(self.train_data.shape[1])

    def data(self, split: str) -> np.ndarray:
        return self.train_data if split == "train" else self.valid_data

    def ext(self, split: str) -> np.ndarray | None:
        return self.train_ext_input if split == "train" else self.valid_ext_input

    def spec(self) -> DatasetSpec:
        heldin = None if self.heldin is None else tuple(int(i) for i in self.heldin)
        return DatasetSpec(
            self.name, self.n_neurons, self.alignment_matrix_cxf is not None, heldin=heldin
        )


def load_datasets(
    data_dir: str | os.PathLike,
    hps: Hyperparameters,
    *,
    stem: str = "lfads",
    for_training: bool = True,
) -> dict[str, EngineDataset]:
    """Read and check every input file of ``data_dir`` (sorted by LFADS name).

    Raises
    ------
    DataError
        No input file; data of the wrong type for the output distribution;
        non-finite values; mismatched time steps; missing or malformed external
        inputs or alignment data; with ``for_training``, a split with no more
        trials than ``batch_size`` (LFADS needs strictly more).
    """
    from ..data.cosmoothing import read_split
    from ..io.lfads_input import find_input_files, read_lfads_input

    files = find_input_files(data_dir, stem)
    if not files:
        raise DataError(f"no LFADS input files named {stem}_*.h5 in {data_dir}")
    out: dict[str, EngineDataset] = {}
    T = None
    for name, path in files.items():
        inp = read_lfads_input(path)
        split = read_split(inp, path)
        if split.forward_bins and split.forward_bins != hps.fp_len:
            raise DataError(
                f"{path}: the file declares {split.forward_bins} forward-prediction bins "
                f"(key forward_bins) but fp_len = {hps.fp_len}; set fp_len to "
                f"{split.forward_bins}"
            )
        ds = EngineDataset(
            name=name,
            path=path,
            train_data=inp.train_data,
            valid_data=inp.valid_data,
            train_ext_input=inp.train_ext_input,
            valid_ext_input=inp.valid_ext_input,
            alignment_matrix_cxf=inp.alignment_matrix_cxf,
            alignment_bias_c=inp.alignment_bias_c,
            heldin=split.heldin,
            forward_bins=split.forward_bins,
        )
        _check_dataset(ds, hps, for_training)
        if T is None:
            T = ds.num_steps
        elif ds.num_steps != T:
            raise DataError(
                f"{path}: {ds.num_steps} time steps, but the first dataset has {T}; "
                "all datasets of an LFADS model share T"
            )
        out[name] = ds
    return out


def _check_dataset(ds: EngineDataset, hps: Hyperparameters, for_training: bool) -> None:
    where = str(ds.path)
    for split in SPLITS:
        a = ds.data(split)
        key = f"{split}_data"
        if a.ndim != 3:
            raise DataError(f"{where}: {key} must be trials x time x neurons, got {a.shape}")
        if hps.output_dist == "poisson" and not np.issubdtype(a.dtype, np.integer):
            raise DataError(
                f"{where}: {key} has dtype {a.dtype}; Poisson output needs integer spike counts"
            )
        if hps.output_dist == "gaussian" and not np.issubdtype(a.dtype, np.floating):
            raise DataError(f"{where}: {key} has dtype {a.dtype}; Gaussian output needs float data")
        if np.issubdtype(a.dtype, np.floating) and a.size and not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))[0]
            raise DataError(
                f"{where}: {key} holds NaN or infinite values (first at trial {bad[0]}, "
                f"time {bad[1]}, neuron {bad[2]})"
            )
        if np.issubdtype(a.dtype, np.integer) and a.size and a.min() < 0:
            raise DataError(f"{where}: {key} holds negative spike counts")
        if for_training and a.shape[0] <= hps.batch_size:
            raise DataError(
                f"dataset {ds.name} ({where}): the {split} split has {a.shape[0]} trials, "
                f"LFADS needs more than batch_size = {hps.batch_size}; lower batch_size or "
                "move trials into this split"
            )
    if ds.train_data.shape[1:] != ds.valid_data.shape[1:]:
        raise DataError(
            f"{where}: train_data {ds.train_data.shape} and valid_data {ds.valid_data.shape} "
            "differ in time steps or neurons"
        )
    if ds.num_steps < 2:
        raise DataError(f"{where}: LFADS needs more than one time step, got {ds.num_steps}")
    if hps.fp_len >= ds.num_steps:
        raise DataError(
            f"{where}: fp_len = {hps.fp_len} forward-prediction bins, but trials have only "
            f"{ds.num_steps} bins; fp_len must be smaller than the trial length"
        )
    E = hps.ext_input_dim
    for split in SPLITS:
        ext = ds.ext(split)
        key = f"{split}_ext_input"
        if E > 0:
            n, T = ds.data(split).shape[:2]
            if ext is None:
                raise DataError(f"{where}: ext_input_dim = {E} but the file has no {key}")
            if ext.shape != (n, T, E):
                raise DataError(f"{where}: {key} has shape {ext.shape}, expected {(n, T, E)}")
            if not np.isfinite(ext).all():
                raise DataError(f"{where}: {key} holds NaN or infinite values")
    A = ds.alignment_matrix_cxf
    D = ds.n_neurons
    if A is not None:
        if A.shape != (D, hps.factors_dim):
            raise DataError(
                f"{where}: alignment_matrix_cxf has shape {A.shape}, expected "
                f"(neurons, factors_dim) = {(D, hps.factors_dim)}"
            )
        if not np.isfinite(A).all():
            raise DataError(f"{where}: alignment_matrix_cxf holds NaN or infinite values")
    b = ds.alignment_bias_c
    if b is not None:
        if b.reshape(-1).shape != (D,):
            raise DataError(f"{where}: alignment_bias_c has shape {b.shape}, expected ({D},)")
        if not np.isfinite(b).all():
            raise DataError(f"{where}: alignment_bias_c holds NaN or infinite values")


def build_spec(hps: Hyperparameters, datasets: Mapping[str, EngineDataset]) -> ModelSpec:
    """The model structure for these datasets."""
    first = next(iter(datasets.values()))
    try:
        return ModelSpec.build(hps, [d.spec() for d in datasets.values()], first.num_steps)
    except ValueError as exc:
        raise DataError(f"these datasets do not fit the hyperparameters: {exc}") from exc


def alignment_of(datasets: Mapping[str, EngineDataset]):
    """Dataset name -> (alignment matrix, bias, held-in rows) for parameter initialisation."""
    return {n: (d.alignment_matrix_cxf, d.alignment_bias_c, d.heldin) for n, d in datasets.items()}


def _dataset_batches(n: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    rem = batch_size - n % batch_size
    idx = np.arange(n)
    if rem < batch_size:
        idx = np.concatenate([idx, rng.choice(n, size=rem, replace=False)])
    return rng.permutation(idx).reshape(-1, batch_size)


def epoch_batches(
    sizes: Mapping[str, int], batch_size: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """The (dataset, trial indices) batches of one epoch, shuffled across datasets."""
    pairs: list[tuple[str, np.ndarray]] = []
    for name, n in sizes.items():
        pairs += [(name, b) for b in _dataset_batches(n, batch_size, rng)]
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def jitter_spikes(counts: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """Move every spike by an offset drawn from [-width, width-1] (spec §7.2).

    Positions past either end are reflected back into the trial. LFADS jitters
    the whole dataset before every batch; jittering only the batch's trials
    draws from the same distribution for a fraction of the cost.
    """
    if width <= 0:
        return counts
    B, T, N = counts.shape
    b, t, n = np.nonzero(counts > 0)
    reps = counts[b, t, n].astype(np.int64)
    b, t, n = np.repeat(b, reps), np.repeat(t, reps), np.repeat(n, reps)
    t = t + rng.integers(-width, width, size=t.shape[0])
    t = np.where(t < 0, -t, t)
    t = np.where(t > T - 1, 2 * (T - 1) - t, t)
    t = np.clip(t, 0, T - 1)  # offsets wider than the trial
    out = np.zeros(counts.shape, dtype=counts.dtype)
    np.add.at(out, (b, t, n), 1)
    return out
