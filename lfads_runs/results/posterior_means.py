"""Posterior means of one dataset, reassembled in the original trial order.

This is lfads-run-manager's ``PosteriorMeans`` (run-manager.md §7.2) with two
deliberate changes:

- **Orientation.** Arrays are ``[trials, time, dim]`` (numpy/TensorFlow order, as
  in the LFADS files); MATLAB used ``dim x time x trials``.
- **Units.** ``rates`` are expected counts per bin of ``bin_width_ms`` (what the
  files hold); :attr:`PosteriorMeans.rates_hz` converts to spikes per second.
  MATLAB silently multiplied by 1000/bin width, also for Gaussian means and
  variances. Gaussian outputs are ``means`` and ``variances`` in the data's own
  units, never converted.

Trials come from the train and valid files via the 1-based ``train_inds`` and
``valid_inds``; trials a file does not hold (``--ps_nexamples_to_process``) are NaN.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ..exceptions import ConfigError, DataError, LfadsRunsWarning, MissingOutputError
from ..io.posterior_files import read_posterior_file
from ..layout import LEGACY_POSTERIOR_KIND, POSTERIOR_KINDS, posterior_file_name

__all__ = [
    "OUTPUT_DISTS",
    "PER_TRIAL_FIELDS",
    "POSTERIOR_KINDS",
    "FIELD_UNITS",
    "PosteriorMeans",
    "concatenate_over_trials",
    "posterior_means_from_arrays",
    "read_posterior_means",
]

OUTPUT_DISTS = ("poisson", "gaussian")

#: LFADS file key -> PosteriorMeans field (``output_dist_params`` is split by output_dist).
KEY_TO_FIELD = {
    "factors": "factors",
    "gen_states": "generator_states",
    "gen_ics": "generator_ics",
    "controller_outputs": "controller_outputs",
    "post_g0_mean": "post_g0_mean",
    "post_g0_logvar": "post_g0_logvar",
    "costs": "costs",
    "nll_bound_vaes": "nll_bound_vaes",
    "nll_bound_iwaes": "nll_bound_iwaes",
}
_READ_KEYS = ("output_dist_params", "train_steps", *KEY_TO_FIELD)

#: Fields whose first axis is the trial, in display order.
PER_TRIAL_FIELDS = (
    "factors",
    "rates",
    "means",
    "variances",
    "generator_states",
    "generator_ics",
    "controller_outputs",
    "post_g0_mean",
    "post_g0_logvar",
    "costs",
    "nll_bound_vaes",
    "nll_bound_iwaes",
    "condition_ids",
    "binned_data",
    "binned_external_inputs",
    "truth",
    "raw_counts",
    "external_inputs",
)

#: Units of the numeric fields (used by docs and the export).
FIELD_UNITS = {
    "factors": "arbitrary (generator read-out)",
    "rates": "expected spike counts per bin of bin_width_ms",
    "rates_hz": "spikes per second",
    "means": "data units (Gaussian mean)",
    "variances": "data units squared (Gaussian variance)",
    "generator_states": "arbitrary",
    "generator_ics": "arbitrary",
    "controller_outputs": "arbitrary",
    "post_g0_mean": "arbitrary",
    "post_g0_logvar": "log variance",
    "costs": "nats per trial",
    "nll_bound_vaes": "nats per trial",
    "nll_bound_iwaes": "nats per trial",
    "binned_data": "counts per bin of bin_width_ms (Poisson) or data units (Gaussian)",
    "binned_external_inputs": "as the input file's train_ext_input/valid_ext_input",
    "truth": "as the input file's train_truth/valid_truth (per bin of bin_width_ms)",
    "raw_counts": "counts per bin at the original, un-rebinned resolution",
    "external_inputs": "as given",
    "time_ms": "ms (start of each output bin)",
    "train_inds": "1-based trial index",
    "valid_inds": "1-based trial index",
}

PathLike = str | os.PathLike


def _opt_array(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(x)


def _index_array(x: Any) -> np.ndarray:
    return np.asarray(x).reshape(-1).astype(np.int64)


@attrs.frozen(kw_only=True, eq=False, repr=False)
class PosteriorMeans:
    """LFADS posterior means of one dataset (or several, after :func:`concatenate_over_trials`).

    Every per-trial array has the trial as its first axis, in the original trial
    order: ``[trials, time, dim]``, ``[trials, dim]`` or ``[trials]``. Trials
    the output files did not hold are NaN (see :attr:`trial_loaded`).

    Attributes
    ----------
    dataset : str
        Dataset name (e.g. ``"dataset001"``); ``"a+b"`` after concatenation.
    kind : str
        ``"posterior_sample_and_average"`` or ``"posterior_push_mean"``.
    output_dist : str
        ``"poisson"`` or ``"gaussian"``.
    bin_width_ms : float
        Width of one model time bin (``spikeBinMs``), ms.
    time_ms : ndarray, (T,)
        Start time of each output bin, ms.
    factors : ndarray, (trials, T, factors)
    rates : ndarray or None, (trials, T, neurons)
        Poisson output: **expected spike counts per bin** of ``bin_width_ms``
        (LFADS ``output_dist_params``). See :attr:`rates_hz` for spikes/s.
        ``None`` for Gaussian output.
    means, variances : ndarray or None, (trials, T, neurons)
        Gaussian output: mean and variance in the data's units (the two halves
        of ``output_dist_params``). ``None`` for Poisson output.
    generator_states : ndarray or None, (trials, T, gen_dim)
    generator_ics : ndarray or None, (trials, gen_dim)
    controller_outputs : ndarray or None, (trials, T, co_dim)
        ``None`` without a controller.
    post_g0_mean, post_g0_logvar : ndarray or None, (trials, ic_dim)
    costs, nll_bound_vaes, nll_bound_iwaes : ndarray or None, (trials,)
        As written by LFADS (batch-level values for ``posterior_push_mean``).
    train_step : int or None
        Global step of the checkpoint that produced the files.
    train_inds, valid_inds : ndarray of int64
        1-based trial indices of the two splits.
    condition_ids : ndarray or None, (trials,)
        Condition label of each trial (numbers or strings).
    binned_data : ndarray or None, (trials, T, neurons)
        The data LFADS saw (``train_data``/``valid_data``), counts per bin for Poisson.
    binned_external_inputs : ndarray or None, (trials, T, n_ext)
        The external inputs LFADS saw (``train_ext_input``/``valid_ext_input``).
    truth : ndarray or None, (trials, T, neurons)
        ``train_truth``/``valid_truth`` of the input file when present.
    raw_counts : ndarray or None, (trials, T_orig, neurons)
        Counts at the original (un-rebinned) resolution.
    external_inputs : ndarray or None, (trials, T_orig, n_ext)
        External inputs at the original resolution, as given by the caller.
    dataset_names : tuple of str
        Source datasets (one entry unless concatenated).
    dataset_index_by_trial : ndarray of int64, (trials,)
        0-based index into ``dataset_names`` of each trial
        (:attr:`dataset_index_by_trial_1based`: MATLAB's ``datasetIndexByTrial``).
    source_files : tuple of Path
        Files the arrays were read from.
    """

    dataset: str
    kind: str
    output_dist: str = "poisson"
    bin_width_ms: float = attrs.field(converter=float)
    time_ms: np.ndarray = attrs.field(converter=lambda x: np.asarray(x, dtype=np.float64))
    factors: np.ndarray = attrs.field(converter=np.asarray)
    rates: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    means: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    variances: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    generator_states: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    generator_ics: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    controller_outputs: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    post_g0_mean: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    post_g0_logvar: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    costs: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    nll_bound_vaes: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    nll_bound_iwaes: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    train_step: int | None = None
    train_inds: np.ndarray = attrs.field(converter=_index_array)
    valid_inds: np.ndarray = attrs.field(converter=_index_array)
    condition_ids: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    binned_data: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    binned_external_inputs: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    truth: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    raw_counts: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    external_inputs: np.ndarray | None = attrs.field(default=None, converter=_opt_array)
    dataset_names: tuple[str, ...] = attrs.field(
        default=attrs.Factory(lambda self: (self.dataset,), takes_self=True), converter=tuple
    )
    dataset_index_by_trial: np.ndarray = attrs.field(
        default=attrs.Factory(
            lambda self: np.zeros(len(self.factors), dtype=np.int64), takes_self=True
        ),
        converter=_index_array,
    )
    source_files: tuple[Path, ...] = attrs.field(
        default=(), converter=lambda xs: tuple(Path(x) for x in xs)
    )

    def __attrs_post_init__(self) -> None:
        where = f"posterior means of {self.dataset!r}"
        if self.kind not in POSTERIOR_KINDS:
            msg = f"{where}: kind must be one of {POSTERIOR_KINDS}, got {self.kind!r}"
            raise ConfigError(msg)
        if self.output_dist not in OUTPUT_DISTS:
            msg = f"{where}: output_dist must be one of {OUTPUT_DISTS}, got {self.output_dist!r}"
            raise ConfigError(msg)
        if not self.bin_width_ms > 0:
            msg = f"{where}: bin_width_ms must be positive, got {self.bin_width_ms}"
            raise DataError(msg)
        if self.factors.ndim != 3:
            msg = (
                f"{where}: factors must be [trials, time, factors], got shape {self.factors.shape}"
            )
            raise DataError(msg)
        n, t = self.factors.shape[:2]
        if self.time_ms.shape != (t,):
            msg = f"{where}: time_ms must have {t} entries (one per bin), got {self.time_ms.shape}"
            raise DataError(msg)
        if self.output_dist == "poisson" and (self.means is not None or self.variances is not None):
            msg = f"{where}: Poisson output has rates, not means/variances"
            raise DataError(msg)
        if self.output_dist == "gaussian" and self.rates is not None:
            msg = f"{where}: Gaussian output has means and variances, not rates"
            raise DataError(msg)
        for name in (*PER_TRIAL_FIELDS, "dataset_index_by_trial"):
            value = getattr(self, name)
            if value is not None and (value.ndim == 0 or value.shape[0] != n):
                msg = f"{where}: {name} must have {n} trials on its first axis, got {value.shape}"
                raise DataError(msg)
        for name in ("rates", "means", "variances", "generator_states", "controller_outputs",
                     "binned_data", "binned_external_inputs", "truth"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (value.ndim != 3 or value.shape[1] != t):
                msg = f"{where}: {name} must be [trials, {t}, dim], got {value.shape}"
                raise DataError(msg)
        _check_split(self.train_inds, self.valid_inds, n, where)
        if self.dataset_index_by_trial.size and (
            self.dataset_index_by_trial.min() < 0
            or self.dataset_index_by_trial.max() >= len(self.dataset_names)
        ):
            msg = f"{where}: dataset_index_by_trial must index dataset_names {self.dataset_names}"
            raise DataError(msg)

    # --- sizes ---------------------------------------------------------------------------

    @property
    def n_trials(self) -> int:
        """Number of trials (train + valid), including trials not in the files."""
        return int(self.factors.shape[0])

    @property
    def n_time(self) -> int:
        """Number of time bins T."""
        return int(self.factors.shape[1])

    @property
    def n_factors(self) -> int:
        """Number of factors."""
        return int(self.factors.shape[2])

    @property
    def n_neurons(self) -> int | None:
        """Number of neurons (``None`` after concatenating datasets of different sizes)."""
        out = self.rates if self.output_dist == "poisson" else self.means
        return None if out is None else int(out.shape[2])

    @property
    def n_generator_units(self) -> int | None:
        """Generator size (``None`` when generator states were not loaded)."""
        return None if self.generator_states is None else int(self.generator_states.shape[2])

    @property
    def n_controller_outputs(self) -> int:
        """Controller output size (0 without a controller)."""
        return 0 if self.controller_outputs is None else int(self.controller_outputs.shape[2])

    @property
    def trial_loaded(self) -> np.ndarray:
        """Boolean per trial: True where the output files held the trial (not NaN)."""
        return ~np.isnan(self.factors.reshape(self.n_trials, -1)).all(axis=1)

    @property
    def is_valid_trial(self) -> np.ndarray:
        """Boolean per trial: True for validation trials."""
        mask = np.zeros(self.n_trials, dtype=bool)
        mask[self.valid_inds - 1] = True
        return mask

    # --- units ---------------------------------------------------------------------------

    @property
    def counts_to_hz(self) -> float:
        """Factor from counts per bin to spikes per second: ``1000 / bin_width_ms``."""
        return 1000.0 / self.bin_width_ms

    @property
    def rates_hz(self) -> np.ndarray:
        """Poisson rates in **spikes per second** (``rates * 1000 / bin_width_ms``).

        Raises
        ------
        DataError
            Gaussian output (no rates) or rates not loaded.
        """
        if self.rates is None:
            msg = (
                f"posterior means of {self.dataset!r} have no Poisson rates "
                f"(output_dist={self.output_dist!r}); use means/variances"
            )
            raise DataError(msg)
        return self.rates * self.counts_to_hz

    # --- analysis ------------------------------------------------------------------------

    def get(self, field: str) -> np.ndarray:
        """Array ``field`` (a field name or ``"rates_hz"``).

        Raises
        ------
        DataError
            Unknown field or a field that was not loaded.
        """
        allowed = (*PER_TRIAL_FIELDS, "rates_hz")
        if field not in allowed:
            msg = f"unknown posterior-means field {field!r}; expected one of {allowed}"
            raise DataError(msg)
        value = getattr(self, field)
        if value is None:
            msg = f"posterior means of {self.dataset!r} have no {field!r}"
            raise DataError(msg)
        return value

    @property
    def dataset_index_by_trial_1based(self) -> np.ndarray:
        """:attr:`dataset_index_by_trial` + 1, as MATLAB's ``datasetIndexByTrial``."""
        return self.dataset_index_by_trial + 1

    def export_to_hdf5(
        self, path: str | os.PathLike, attrs: Mapping[str, Any] | None = None
    ) -> Path:
        """Write these posterior means to one HDF5 file (MATLAB ``pm.exportToHDF5``), atomically.

        The export format of :mod:`lfads_runs.results.export` with this dataset alone
        under ``/posterior_means/<dataset>`` (arrays trials x time x dim, as here);
        ``attrs`` become root attributes (e.g. the run's parameters).
        """
        from .export import export_run

        return export_run(path, posterior_means={self.dataset: self}, params_attrs=attrs)

    def condition_averaged(
        self, field: str = "factors", condition_ids: Sequence | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean of ``field`` over the trials of each condition.

        Trials missing from the output files (NaN) are left out; a condition
        without any loaded trial is NaN. Trials with condition NaN or ``""`` are
        ignored.

        Parameters
        ----------
        field
            Per-trial field, e.g. ``"factors"``, ``"rates"``, ``"rates_hz"``.
        condition_ids
            Condition of each trial; default :attr:`condition_ids`.

        Returns
        -------
        conditions : ndarray
            The unique conditions, sorted (``np.unique`` order).
        averages : ndarray
            ``[n_conditions, *field.shape[1:]]``.

        Raises
        ------
        DataError
            No condition ids, or their count differs from the number of trials.
        """
        values = self.get(field)
        ids = self.condition_ids if condition_ids is None else np.asarray(condition_ids)
        if ids is None:
            msg = f"posterior means of {self.dataset!r} have no condition ids; pass condition_ids"
            raise DataError(msg)
        ids = ids.reshape(-1)
        if ids.shape[0] != self.n_trials:
            msg = f"condition_ids has {ids.shape[0]} entries; expected one per trial ({self.n_trials})"
            raise DataError(msg)
        labelled = _labelled(ids)
        present = np.ones(self.n_trials, dtype=bool)
        if values.dtype.kind == "f":
            present = ~np.isnan(values.reshape(self.n_trials, -1)).all(axis=1)
        conditions = np.unique(ids[labelled])
        out = np.full((len(conditions), *values.shape[1:]), np.nan)
        for i, c in enumerate(conditions):
            sel = (ids == c) & labelled & present
            if sel.any():
                out[i] = values[sel].mean(axis=0)
        return conditions, out

    def as_dict(self) -> dict[str, np.ndarray]:
        """Every present array (per-trial fields, ``time_ms``, the split, dataset indices)."""
        out: dict[str, np.ndarray] = {"time_ms": self.time_ms}
        for name in PER_TRIAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["train_inds"] = self.train_inds
        out["valid_inds"] = self.valid_inds
        out["dataset_index_by_trial"] = self.dataset_index_by_trial
        return out

    def metadata(self) -> dict[str, Any]:
        """Scalar descriptors (dataset, kind, output_dist, bin width, sizes, train step)."""
        return {
            "dataset": self.dataset,
            "dataset_names": list(self.dataset_names),
            "kind": self.kind,
            "output_dist": self.output_dist,
            "bin_width_ms": self.bin_width_ms,
            "n_trials": self.n_trials,
            "n_time": self.n_time,
            "n_factors": self.n_factors,
            "n_neurons": self.n_neurons,
            "n_controller_outputs": self.n_controller_outputs,
            "train_step": self.train_step,
            "orientation": "[trials, time, dim]",
        }

    def __repr__(self) -> str:
        n_loaded = int(self.trial_loaded.sum())
        neurons = self.n_neurons
        return (
            f"PosteriorMeans(dataset={self.dataset!r}, kind={self.kind!r}, "
            f"trials={self.n_trials} ({self.train_inds.size} train, {self.valid_inds.size} valid, "
            f"{n_loaded} loaded), T={self.n_time} x {self.bin_width_ms:g} ms, "
            f"factors={self.n_factors}, neurons={neurons}, output_dist={self.output_dist!r})"
        )


def _labelled(ids: np.ndarray) -> np.ndarray:
    """Trials whose condition is a real label (not NaN, not '')."""
    if ids.dtype.kind == "f":
        return ~np.isnan(ids)
    if ids.dtype.kind in "US":
        return ids != ids.dtype.type("")
    if ids.dtype.kind == "O":
        return np.array([not (x is None or x == "" or (isinstance(x, float) and np.isnan(x)))
                         for x in ids], dtype=bool)  # fmt: skip
    return np.ones(ids.shape, dtype=bool)


def _check_split(train_inds: np.ndarray, valid_inds: np.ndarray, n: int, where: str) -> None:
    every = np.concatenate([train_inds, valid_inds])
    if every.size != n or not np.array_equal(np.sort(every), np.arange(1, n + 1)):
        msg = (
            f"{where}: train_inds and valid_inds must together be a permutation of 1..{n} "
            f"(1-based); got {train_inds.size} train and {valid_inds.size} valid indices"
        )
        raise DataError(msg)


def _as_inds(x: Any, name: str, where: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or arr.min() < 1):
        msg = f"{where}: {name} must hold 1-based integer trial indices"
        raise DataError(msg)
    return arr.astype(np.int64)


def _reassemble(
    parts: Sequence[tuple[np.ndarray | None, np.ndarray, str]], n: int, key: str, where: str
) -> np.ndarray:
    """Place each part's rows at its 1-based indices in an all-NaN [n, ...] array."""
    shapes = {p[0].shape[1:] for p in parts if p[0] is not None}
    if len(shapes) != 1:
        msg = f"{where}: {key!r} has different per-trial shapes in the files: {sorted(shapes)}"
        raise DataError(msg)
    (rest,) = shapes
    out = np.full((n, *rest), np.nan)
    for arr, inds, label in parts:
        if arr is None:
            continue
        e = arr.shape[0]
        if e > inds.size:
            msg = (
                f"{where}: the {label} file holds {e} trials in {key!r} but the split has "
                f"only {inds.size} {label} trials"
            )
            raise DataError(msg)
        out[inds[:e] - 1] = arr
    return out


def _check_trial_counts(train, valid, tr, va, files: Sequence[PathLike], where: str) -> None:
    """Each file's arrays must agree on a trial count of at most its split's trials.

    More trials than the split, or arrays of one file disagreeing, is an error. Fewer
    is a warning, not an error: LFADS's ``--ps_nexamples_to_process`` writes only the
    first trials, which stay NaN (``trial_loaded`` is False for the others); without
    that option the file is truncated.
    """
    named = dict(zip(("train", "valid"), files, strict=False))
    for label, arrays, inds in (("train", train, tr), ("valid", valid, va)):
        if arrays is None:
            continue
        file = named.get(label, f"the {label} file")
        counts = {
            k: (np.shape(a)[0] if np.ndim(a) else 0)
            for k, a in arrays.items()
            if k != "train_steps"
        }
        if len(set(counts.values())) > 1 or any(e > inds.size for e in counts.values()):
            msg = (
                f"{file}: trial counts {counts} do not fit the run's {inds.size} {label} trials "
                f"({where}); the file is damaged or was written for other inputs: run posterior "
                "sampling again (lfads-runs posterior --rerun)"
            )
            raise DataError(msg)
        e = next(iter(counts.values()), inds.size)
        if e < inds.size:
            warnings.warn(
                f"{file} holds {e} of the run's {inds.size} {label} trials ({where}); the other "
                "trials are NaN (trial_loaded is False). Expected only with LFADS's "
                "--ps_nexamples_to_process; otherwise the file is truncated: run posterior "
                "sampling again (lfads-runs posterior --rerun)",
                LfadsRunsWarning,
                stacklevel=5,
            )


def _check_shapes(train, valid, lfads_input, output_dist: str, files, where: str) -> None:
    """The rates of each file must have the inputs' time steps and neurons."""
    named = dict(zip(("train", "valid"), files, strict=False))
    _, t, n = np.shape(lfads_input.train_data)
    want = (t, n * (1 if output_dist == "poisson" else 2))
    for label, arrays in (("train", train), ("valid", valid)):
        if arrays is None or "output_dist_params" not in arrays:
            continue
        got = tuple(np.shape(arrays["output_dist_params"])[1:])
        if got != want:
            file = named.get(label, f"the {label} file")
            msg = (
                f"{file}: output_dist_params has {got} (time steps, columns) per trial but the "
                f"run's inputs give {want} ({where}); it was written for other inputs: run "
                "posterior sampling again (lfads-runs posterior --rerun)"
            )
            raise DataError(msg)


def _check_values(
    fields: Mapping[str, np.ndarray], held: np.ndarray, files: Sequence[PathLike], where: str
) -> None:
    """Rates must be finite and >= 0 (Gaussian: finite means, variances > 0).

    Only the trials the files hold (``held``) are checked; the others are NaN by
    construction (already warned about).
    """
    for name, arr in fields.items():
        absent = ~held.reshape((-1,) + (1,) * (arr.ndim - 1))
        bad = ~np.isfinite(arr) & ~absent
        what = "NaN or infinite"
        if name == "rates" and not bad.any():
            bad, what = arr < 0, "negative"
        elif name == "variances" and not bad.any():
            bad, what = (arr <= 0) & ~absent, "non-positive"
        if bad.any():
            trial = int(np.argwhere(bad)[0][0]) + 1
            src = ", ".join(str(f) for f in files) or where
            msg = (
                f"{src}: {int(bad.sum())} {what} value(s) in {name} ({where}), first in trial "
                f"{trial}; the model diverged or the file is damaged: check the training's "
                "fitlog, then run posterior sampling again"
            )
            raise DataError(msg)


def _assemble_input(
    train: np.ndarray | None, valid: np.ndarray | None, train_inds, valid_inds, n, name, where
) -> np.ndarray | None:
    """Reassemble an input-file array pair (all trials present) keeping its dtype."""
    if train is None or valid is None:
        return None
    train, valid = np.asarray(train), np.asarray(valid)
    if train.shape[0] != train_inds.size or valid.shape[0] != valid_inds.size:
        msg = (
            f"{where}: input {name} holds {train.shape[0]} train / {valid.shape[0]} valid "
            f"trials but the split has {train_inds.size} / {valid_inds.size}"
        )
        raise DataError(msg)
    out = np.empty((n, *train.shape[1:]), dtype=np.result_type(train, valid))
    out[train_inds - 1] = train
    out[valid_inds - 1] = valid
    return out


def _time_vector(
    t: int, spike_bin_ms: float, seq_time_ms: Any, seq_bin_ms: float | None, where: str
) -> np.ndarray:
    """Start of each output bin: the sequence time vector subsampled by the rebin factor."""
    seq = None if seq_time_ms is None else np.asarray(seq_time_ms, dtype=np.float64).reshape(-1)
    if seq is None or seq.size == 0:  # no time vector known
        return np.arange(t) * float(spike_bin_ms)
    if seq_bin_ms is None:
        if seq.size < 2:
            msg = f"{where}: seq_bin_ms is needed when the time vector has fewer than 2 entries"
            raise DataError(msg)
        seq_bin_ms = float(seq[1] - seq[0])
    ratio = spike_bin_ms / seq_bin_ms
    rebin = int(round(ratio))
    if rebin < 1 or abs(ratio - rebin) > 1e-9 * max(1.0, ratio):
        msg = (
            f"{where}: spike_bin_ms ({spike_bin_ms}) must be an integer multiple of the "
            f"sequence bin width ({seq_bin_ms})"
        )
        raise DataError(msg)
    time = seq[::rebin][:t]
    if time.size < t:
        msg = f"{where}: the time vector gives {time.size} output bins; the files have {t}"
        raise DataError(msg)
    return time


def posterior_means_from_arrays(
    train: Mapping[str, np.ndarray],
    valid: Mapping[str, np.ndarray] | None,
    *,
    dataset: str,
    kind: str,
    spike_bin_ms: float,
    train_inds: Any = None,
    valid_inds: Any = None,
    output_dist: str = "poisson",
    input_info: Any = None,
    lfads_input: Any = None,
    condition_ids: Any = None,
    seq_time_ms: Any = None,
    seq_bin_ms: float | None = None,
    raw_counts: Any = None,
    external_inputs: Any = None,
    source_files: Sequence[PathLike] = (),
    strict: bool = False,
) -> PosteriorMeans:
    """Build :class:`PosteriorMeans` from the arrays of the train and valid output files.

    ``strict=True`` (what :meth:`Run.load_posterior_means` uses) requires every trial
    of the split in the files and finite rates (non-negative; Gaussian: finite means,
    positive variances), raising :class:`DataError` naming the file otherwise. Without
    it, trials the files do not hold are NaN (files of a partial evaluation).

    Parameters
    ----------
    train, valid
        Key -> array as in LFADS's posterior files (``valid=None`` when there is
        no validation part, e.g. new data run through a model; then pass all
        trial indices as ``train_inds`` and an empty ``valid_inds``).
    dataset
        Dataset name (without ``.h5``).
    kind
        One of :data:`POSTERIOR_KINDS`.
    spike_bin_ms
        Width of one model bin in ms.
    train_inds, valid_inds
        1-based original trial indices of the splits; default from ``input_info``,
        then ``lfads_input``.
    output_dist
        ``"poisson"`` or ``"gaussian"`` (``output_dist_params`` holds means then variances).
    input_info
        The dataset's :class:`~lfads_runs.io.input_info.InputInfo` (optional):
        default for the split, ``condition_ids`` (``condition_id``),
        ``seq_time_ms``/``seq_bin_ms`` (``time_ms``/``bin_ms``), ``raw_counts``
        (``counts``) and ``external_inputs``. Explicit arguments win.
    lfads_input
        The dataset's :class:`~lfads_runs.io.lfads_input.LfadsInput` (optional):
        supplies the split when not given, ``binned_data``, ``binned_external_inputs``
        and ``truth``.
    condition_ids
        Condition per original trial (numbers or strings).
    seq_time_ms, seq_bin_ms
        Time vector of the original sequence data and its bin width (inputInfo
        ``seq_timeVector``, ``seq_binSizeMs``); without them ``time_ms`` is
        ``arange(T) * spike_bin_ms``.
    raw_counts, external_inputs
        Optional per-trial arrays (``[trials, time, dim]``) stored as given.
    source_files
        Recorded in the result.

    Raises
    ------
    DataError
        Inconsistent keys, shapes or split.
    ConfigError
        Unknown ``kind`` or ``output_dist``.
    """
    where = f"posterior means of {dataset!r}"
    if kind not in POSTERIOR_KINDS:
        msg = f"{where}: kind must be one of {POSTERIOR_KINDS}, got {kind!r}"
        raise ConfigError(msg)
    if output_dist not in OUTPUT_DISTS:
        msg = f"{where}: output_dist must be one of {OUTPUT_DISTS}, got {output_dist!r}"
        raise ConfigError(msg)
    if input_info is not None:
        train_inds = input_info.train_inds if train_inds is None else train_inds
        valid_inds = input_info.valid_inds if valid_inds is None else valid_inds
        condition_ids = input_info.condition_id if condition_ids is None else condition_ids
        if seq_time_ms is None:
            seq_time_ms, seq_bin_ms = input_info.time_ms, input_info.bin_ms
        raw_counts = input_info.counts if raw_counts is None else raw_counts
        if external_inputs is None:
            external_inputs = input_info.external_inputs
    if train_inds is None and lfads_input is not None:
        train_inds = lfads_input.train_inds
    if valid_inds is None and lfads_input is not None:
        valid_inds = lfads_input.valid_inds
    if train_inds is None or valid_inds is None:
        msg = f"{where}: train_inds and valid_inds are needed (from inputInfo or the input file)"
        raise DataError(msg)
    tr = _as_inds(train_inds, "train_inds", where)
    va = _as_inds(valid_inds, "valid_inds", where)
    n = tr.size + va.size
    _check_split(tr, va, n, where)

    if "output_dist_params" not in train or "factors" not in train:
        msg = f"{where}: the train file lacks 'output_dist_params' or 'factors' (keys: {sorted(train)})"
        raise DataError(msg)
    keys = [k for k in _READ_KEYS if k in train]
    if valid is not None:
        missing = [k for k in keys if k not in valid]
        extra = [k for k in _READ_KEYS if k in valid and k not in train]
        if missing or extra:
            msg = (
                f"{where}: the train and valid files hold different keys (missing from valid: "
                f"{missing}; missing from train: {extra}); were they written by different models?"
            )
            raise DataError(msg)

    if strict:
        _check_trial_counts(train, valid, tr, va, source_files, where)
        if lfads_input is not None:
            _check_shapes(train, valid, lfads_input, output_dist, source_files, where)
    assembled: dict[str, np.ndarray] = {}
    for key in keys:
        if key == "train_steps":
            continue
        parts = [(np.asarray(train[key]), tr, "train")]
        if valid is not None:
            parts.append((np.asarray(valid[key]), va, "valid"))
        for arr, _, label in parts:
            if arr.ndim == 0:
                msg = f"{where}: {key!r} in the {label} file must have a trial axis"
                raise DataError(msg)
        assembled[key] = _reassemble(parts, n, key, where)

    train_step = None
    if "train_steps" in keys:
        steps = [np.asarray(train["train_steps"]).reshape(-1)]
        if valid is not None:
            steps.append(np.asarray(valid["train_steps"]).reshape(-1))
        unique = np.unique(np.concatenate(steps))
        if unique.size > 1:
            msg = f"{where}: the files come from different checkpoints (train_steps {unique.tolist()})"
            raise DataError(msg)
        if unique.size == 1:
            train_step = int(unique[0])

    params = assembled.pop("output_dist_params")
    if params.ndim != 3:
        msg = f"{where}: output_dist_params must be [trials, time, dim], got {params.shape}"
        raise DataError(msg)
    out_fields: dict[str, np.ndarray] = {}
    if output_dist == "poisson":
        out_fields["rates"] = params
    else:
        if params.shape[2] % 2:
            msg = (
                f"{where}: Gaussian output_dist_params need 2 x neurons columns (means then "
                f"variances), got {params.shape[2]}"
            )
            raise DataError(msg)
        d = params.shape[2] // 2
        out_fields["means"] = params[..., :d]
        out_fields["variances"] = params[..., d:]
    n_neurons = params.shape[2] // (1 if output_dist == "poisson" else 2)
    if strict:
        held = np.zeros(n, dtype=bool)
        held[tr[: np.shape(train["output_dist_params"])[0]] - 1] = True
        if valid is not None:
            held[va[: np.shape(valid["output_dist_params"])[0]] - 1] = True
        _check_values(out_fields, held, source_files, where)

    binned_data = truth = binned_ext = None
    if lfads_input is not None:
        binned_ext = _assemble_input(
            lfads_input.train_ext_input, lfads_input.valid_ext_input, tr, va, n, "ext_input", where
        )
        binned_data = _assemble_input(
            lfads_input.train_data, lfads_input.valid_data, tr, va, n, "data", where
        )
        truth = _assemble_input(
            lfads_input.train_truth, lfads_input.valid_truth, tr, va, n, "truth", where
        )
        if binned_data.shape[1:] != (params.shape[1], n_neurons):
            msg = (
                f"{where}: the input data are {binned_data.shape[1:]} (time, neurons) per trial "
                f"but the posterior files give {(params.shape[1], n_neurons)}"
            )
            raise DataError(msg)

    fields = {KEY_TO_FIELD[k]: v for k, v in assembled.items()}
    return PosteriorMeans(
        dataset=dataset,
        kind=kind,
        output_dist=output_dist,
        bin_width_ms=spike_bin_ms,
        time_ms=_time_vector(params.shape[1], spike_bin_ms, seq_time_ms, seq_bin_ms, where),
        train_step=train_step,
        train_inds=tr,
        valid_inds=va,
        condition_ids=None if condition_ids is None else np.asarray(condition_ids).reshape(-1),
        binned_data=binned_data,
        binned_external_inputs=binned_ext,
        truth=truth,
        raw_counts=raw_counts,
        external_inputs=external_inputs,
        source_files=source_files,
        **out_fields,
        **fields,
    )


def _candidates(files: Any, dataset: str, split: str, kind: str) -> list[Path]:
    """Paths to try in order: the given list, or one path plus its legacy-name fallback."""
    if isinstance(files, str | os.PathLike):
        path = Path(files)
        out = [path]
        # MATLAB falls back to the legacy ..._posterior_sample name; only apply it to
        # the standard name so that explicit custom names are read as given.
        if path.name == posterior_file_name(dataset, split, kind):
            out.append(path.with_name(posterior_file_name(dataset, split, LEGACY_POSTERIOR_KIND)))
        return out
    out = [Path(p) for p in files]
    if not out:
        msg = f"posterior means of {dataset!r}: no {split} file given"
        raise DataError(msg)
    return out


def read_posterior_means(
    train_file: PathLike | Sequence[PathLike],
    valid_file: PathLike | Sequence[PathLike] | None,
    *,
    dataset: str,
    kind: str,
    spike_bin_ms: float,
    train_inds: Any = None,
    valid_inds: Any = None,
    output_dist: str = "poisson",
    input_info: Any = None,
    lfads_input: Any = None,
    condition_ids: Any = None,
    seq_time_ms: Any = None,
    seq_bin_ms: float | None = None,
    raw_counts: Any = None,
    external_inputs: Any = None,
    strict: bool = False,
) -> PosteriorMeans:
    """Read one dataset's posterior output files into :class:`PosteriorMeans`.

    Parameters
    ----------
    train_file, valid_file
        The ``model_runs_<ds>.h5_<split>_<kind>`` file of each split, or a list of
        candidate paths tried in order. A single path with the standard name
        (``layout.posterior_file_name``) falls back to the legacy
        ``..._posterior_sample`` name beside it, as in lfads-run-manager.
        ``valid_file=None`` reads no validation part.
    dataset, kind, spike_bin_ms, ...
        As in :func:`posterior_means_from_arrays`.

    Raises
    ------
    MissingOutputError
        A file is missing; the message lists every path looked for.
    DataError
        Unreadable files, inconsistent keys, shapes or split.
    ConfigError
        Unknown ``kind`` or ``output_dist``.
    """
    if kind not in POSTERIOR_KINDS:
        msg = f"posterior means of {dataset!r}: kind must be one of {POSTERIOR_KINDS}, got {kind!r}"
        raise ConfigError(msg)
    wanted = [("train", train_file)] + ([("valid", valid_file)] if valid_file is not None else [])
    found: dict[str, Path] = {}
    not_found: list[Path] = []
    for split, files in wanted:
        candidates = _candidates(files, dataset, split, kind)
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            not_found.extend(candidates)
        else:
            found[split] = hit
    if not_found:
        listing = ", ".join(str(p) for p in not_found)
        msg = (
            f"posterior means ({kind}) of dataset {dataset!r} not found; looked for: {listing}. "
            "Run posterior sampling first."
        )
        raise MissingOutputError(msg)
    train = read_posterior_file(found["train"])
    valid = read_posterior_file(found["valid"]) if "valid" in found else None
    return posterior_means_from_arrays(
        train,
        valid,
        dataset=dataset,
        kind=kind,
        spike_bin_ms=spike_bin_ms,
        train_inds=train_inds,
        valid_inds=valid_inds,
        output_dist=output_dist,
        input_info=input_info,
        lfads_input=lfads_input,
        condition_ids=condition_ids,
        seq_time_ms=seq_time_ms,
        seq_bin_ms=seq_bin_ms,
        raw_counts=raw_counts,
        external_inputs=external_inputs,
        source_files=tuple(found.values()),
        strict=strict,
    )


def concatenate_over_trials(
    pms: Sequence[PosteriorMeans], *, drop_mismatched: bool = False
) -> PosteriorMeans:
    """Stack several :class:`PosteriorMeans` along the trial axis.

    Use it over datasets of one run (stitching: factors share their space) or
    over trial batches of one dataset. ``train_inds``/``valid_inds`` are shifted
    to index the concatenated trials, and ``dataset_index_by_trial`` records
    each trial's source in ``dataset_names``.

    Parameters
    ----------
    pms
        Objects with the same kind, output distribution, bin width and time vector.
    drop_mismatched
        Set fields that cannot be stacked (different neuron counts, or missing
        in some inputs) to ``None`` instead of raising.

    Raises
    ------
    DataError
        Empty input, incompatible settings, or (without ``drop_mismatched``) a
        field that cannot be stacked.
    """
    pms = list(pms)
    if not pms:
        msg = "concatenate_over_trials needs at least one PosteriorMeans"
        raise DataError(msg)
    first = pms[0]
    for pm in pms[1:]:
        for attr in ("kind", "output_dist", "bin_width_ms"):
            if getattr(pm, attr) != getattr(first, attr):
                msg = (
                    f"cannot concatenate posterior means of {first.dataset!r} and {pm.dataset!r}: "
                    f"{attr} differs ({getattr(first, attr)!r} vs {getattr(pm, attr)!r})"
                )
                raise DataError(msg)
        if pm.time_ms.shape != first.time_ms.shape or not np.allclose(pm.time_ms, first.time_ms):
            msg = (
                f"cannot concatenate posterior means of {first.dataset!r} and {pm.dataset!r}: "
                "their time vectors differ"
            )
            raise DataError(msg)

    stacked: dict[str, np.ndarray | None] = {}
    for name in PER_TRIAL_FIELDS:
        values = [getattr(pm, name) for pm in pms]
        if all(v is None for v in values):
            stacked[name] = None
            continue
        problem = None
        if any(v is None for v in values):
            problem = "is missing in some of them"
        elif len({v.shape[1:] for v in values}) > 1:
            problem = f"has different shapes {[v.shape for v in values]}"
        elif len({v.dtype.kind in "US" for v in values}) > 1:
            problem = "mixes text and numeric labels"
        if problem is None:
            stacked[name] = np.concatenate(values, axis=0)
        elif drop_mismatched and name != "factors":
            stacked[name] = None
        else:
            msg = f"cannot concatenate field {name!r}: it {problem}" + (
                "" if name == "factors" else "; pass drop_mismatched=True to drop it"
            )
            raise DataError(msg)

    names: list[str] = []
    index_parts, train_parts, valid_parts = [], [], []
    offset = 0
    for pm in pms:
        mapping = []
        for ds in pm.dataset_names:
            if ds not in names:
                names.append(ds)
            mapping.append(names.index(ds))
        index_parts.append(np.asarray(mapping, dtype=np.int64)[pm.dataset_index_by_trial])
        train_parts.append(pm.train_inds + offset)
        valid_parts.append(pm.valid_inds + offset)
        offset += pm.n_trials
    steps = {pm.train_step for pm in pms}
    return PosteriorMeans(
        dataset="+".join(names),
        kind=first.kind,
        output_dist=first.output_dist,
        bin_width_ms=first.bin_width_ms,
        time_ms=first.time_ms,
        train_step=steps.pop() if len(steps) == 1 else None,
        train_inds=np.concatenate(train_parts),
        valid_inds=np.concatenate(valid_parts),
        dataset_names=tuple(names),
        dataset_index_by_trial=np.concatenate(index_parts),
        source_files=tuple(p for pm in pms for p in pm.source_files),
        **stacked,
    )
