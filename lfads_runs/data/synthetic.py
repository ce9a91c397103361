"""Synthetic Lorenz datasets for demos, documentation and tests.

Our implementation of lfads-run-manager's stitching demo recipe
(``generateDemoDatasets``, run-manager.md §10.1): a set of Lorenz trajectories,
one per condition, shared by every dataset; each dataset reads them out through
its own random loading matrix and draws Poisson spikes. Because all datasets
share the latent trajectories, they can be stitched.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np

from ..exceptions import ConfigError
from ..io.h5arrays import H5Array, H5Group, write_arrays
from .dataset import DatasetData

__all__ = [
    "LorenzDataset",
    "LorenzData",
    "lorenz",
    "lorenz_dataset",
    "lorenz_trajectories",
    "write_lorenz_datasets",
    "DOCUMENTED_DEMO_TRIALS_PER_CONDITION",
    "DOCUMENTED_DEMO_NEURONS",
]

#: Trials per condition and channel counts of the three demo datasets in the
#: lfads-run-manager documentation (1820, 1885 and 1365 trials of 65 conditions).
DOCUMENTED_DEMO_TRIALS_PER_CONDITION = (28, 29, 21)
DOCUMENTED_DEMO_NEURONS = (35, 26, 35)


@attrs.frozen(eq=False)
class LorenzDataset:
    """One synthetic dataset (session), trials in condition-major order."""

    name: str
    counts: np.ndarray  #: int64, trials x time x neurons
    condition_id: np.ndarray  #: int64, 1-based, one per trial
    true_rates: np.ndarray  #: float64 expected counts per bin, trials x time x neurons
    latents: np.ndarray  #: float64 normalised Lorenz state per bin, trials x time x 3
    readout_W: np.ndarray  #: neurons x 3
    readout_b: np.ndarray  #: (neurons,), log expected count per bin
    time_ms: np.ndarray  #: start of each bin (ms)
    bin_ms: float

    def to_dataset_data(self) -> DatasetData:
        """The counts, time base, condition ids and true rates as :class:`DatasetData`."""
        return DatasetData(
            self.counts,
            bin_ms=self.bin_ms,
            time_ms=self.time_ms,
            condition_id=self.condition_id,
            true_rates=self.true_rates,
            source=f"synthetic Lorenz {self.name}",
        )


@attrs.frozen(eq=False)
class LorenzData:
    """Result of :func:`lorenz`: shared condition latents and the per-dataset data."""

    condition_latents: np.ndarray  #: conditions x time x 3 (normalised, binned)
    initial_states: np.ndarray  #: conditions x 3, the draws before burn-in
    datasets: tuple[LorenzDataset, ...]
    bin_ms: float
    mean_rate_hz: float

    def __getitem__(self, name: str) -> LorenzDataset:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)


def lorenz_trajectories(
    initial_states: np.ndarray,
    n_steps: int,
    *,
    burn_in_steps: int = 500,
    dt: float = 0.006,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
) -> np.ndarray:
    """Forward-Euler Lorenz trajectories for many initial states at once.

    Uses the Lorenz equations dx/dt = σ(y − x), dy/dt = x(ρ − z) − y,
    dz/dt = xy − βz. (The MATLAB demo omits the −y term of the second
    equation; this implementation keeps it.)

    Parameters
    ----------
    initial_states : (n, 3) array
    n_steps : int
        Samples to return after the burn-in; the first is the state after
        ``burn_in_steps`` Euler steps.

    Returns
    -------
    (n, n_steps, 3) array
    """
    x = np.array(initial_states, dtype=np.float64, copy=True)
    out = np.empty((x.shape[0], n_steps, 3))
    for i in range(burn_in_steps + n_steps):
        if i >= burn_in_steps:
            out[:, i - burn_in_steps] = x
        X, Y, Z = x[:, 0], x[:, 1], x[:, 2]
        dx = np.stack([sigma * (Y - X), X * (rho - Z) - Y, X * Y - beta * Z], axis=1)
        x = x + dt * dx
    return out


def _per_dataset(value: int | Sequence[int], n: int, what: str) -> list[int]:
    if isinstance(value, int | np.integer):
        vals = [int(value)] * n
    else:
        vals = [int(v) for v in value]
        if len(vals) != n:
            msg = f"{what}: {len(vals)} values given for {n} datasets"
            raise ConfigError(msg)
    if any(v < 1 for v in vals):
        msg = f"{what} must be at least 1, got {vals}"
        raise ConfigError(msg)
    return vals


def lorenz(
    *,
    n_datasets: int = 3,
    n_conditions: int = 65,
    trials_per_condition: int | Sequence[int] = DOCUMENTED_DEMO_TRIALS_PER_CONDITION,
    n_neurons: int | Sequence[int] = DOCUMENTED_DEMO_NEURONS,
    duration_ms: int = 1000,
    bin_ms: int = 1,
    mean_rate_hz: float = 5.0,
    seed: int | np.random.Generator | None = 0,
    burn_in_steps: int = 500,
    dt: float = 0.006,
    binarize: bool = False,
    names: Sequence[str] | None = None,
) -> LorenzData:
    """Synthetic stitching datasets driven by shared Lorenz trajectories.

    Recipe (lfads-run-manager's ``generateDemoDatasets``, run-manager.md §10.1):

    1. One initial state per condition, N(0, 1) per coordinate plus (0, 0, 25).
    2. Forward Euler with dt = 0.006 (σ = 10, ρ = 28, β = 8/3), each step
       counting as 1 ms; ``burn_in_steps`` steps are discarded, then
       ``duration_ms`` steps are kept. The y-equation is the correct
       dy/dt = x(ρ − z) − y (the MATLAB demo drops the −y term).
    3. Each condition's trajectory is normalised per coordinate: the time mean
       is subtracted, then it is divided by its maximum absolute value, so it
       lies in [−1, 1] (MATLAB divides by the maximum, leaving the minimum
       unbounded).
    4. The latent of a bin is the mean of its ``bin_ms`` 1-ms states.
    5. Per dataset, a read-out W (neurons x 3) with magnitudes uniform in
       [1, 2) and random signs, and bias b = log(mean_rate_hz · bin_ms / 1000);
       true rate = exp(clip(W z + b, −20, 20)) expected counts per bin.
    6. Counts are independent Poisson draws per trial, bin and neuron
       (``binarize=True`` keeps only 0/1 like the MATLAB demo). All repeats of
       a condition share the same rates; trials are condition-major.

    Random numbers come from ``numpy.random.default_rng(seed)`` in this order:
    initial states, then per dataset its W and its counts. (With seed 101,
    17 conditions, 5 trials per condition, 20 and 23 neurons, 500 ms, 10 ms
    bins and 20 Hz this reproduces the ``shared_stitch2`` reference data.)

    Parameters
    ----------
    n_datasets, n_conditions : int
    trials_per_condition, n_neurons : int or sequence of int
        One value for all datasets or one per dataset. The defaults are the
        sizes of the documented demo datasets (for ``n_datasets=3``).
    duration_ms : int
        Trial length in milliseconds (1-ms Euler steps); a multiple of ``bin_ms``.
    bin_ms : int
        Bin width of the returned counts.
    mean_rate_hz : float
        Firing rate at a latent of zero.
    seed : int, Generator or None
    burn_in_steps : int
    dt : float
    binarize : bool
    names : sequence of str, optional
        Dataset names; default ``dataset001``, ``dataset002``, …

    Returns
    -------
    LorenzData

    Raises
    ------
    ConfigError
        Inconsistent sizes.
    """
    if n_datasets < 1 or n_conditions < 1:
        msg = f"need at least one dataset and one condition, got {n_datasets} and {n_conditions}"
        raise ConfigError(msg)
    bin_ms = int(bin_ms)
    if bin_ms < 1 or duration_ms < bin_ms or duration_ms % bin_ms:
        msg = f"duration_ms ({duration_ms}) must be a positive multiple of bin_ms ({bin_ms})"
        raise ConfigError(msg)
    if mean_rate_hz <= 0:
        msg = f"mean_rate_hz must be positive, got {mean_rate_hz}"
        raise ConfigError(msg)
    trials = _per_dataset(trials_per_condition, n_datasets, "trials_per_condition")
    neurons = _per_dataset(n_neurons, n_datasets, "n_neurons")
    if names is None:
        names = [f"dataset{i + 1:03d}" for i in range(n_datasets)]
    elif len(names) != n_datasets:
        msg = f"{len(names)} names given for {n_datasets} datasets"
        raise ConfigError(msg)

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x0 = rng.standard_normal((n_conditions, 3)) + np.array([0.0, 0.0, 25.0])
    traj = lorenz_trajectories(x0, duration_ms, burn_in_steps=burn_in_steps, dt=dt)
    traj = traj - traj.mean(axis=1, keepdims=True)
    traj = traj / np.abs(traj).max(axis=1, keepdims=True)
    T = duration_ms // bin_ms
    cond_latents = traj.reshape(n_conditions, T, bin_ms, 3).mean(axis=2)
    time_ms = np.arange(T, dtype=np.float64) * bin_ms
    b_value = np.log(mean_rate_hz * bin_ms / 1000.0)

    datasets = []
    for name, n_per, n_neu in zip(names, trials, neurons, strict=True):
        W = rng.uniform(1.0, 2.0, (n_neu, 3)) * np.sign(rng.standard_normal((n_neu, 3)))
        b = np.full(n_neu, b_value)
        cond_rates = np.exp(np.clip(cond_latents @ W.T + b, -20.0, 20.0))  # C x T x N
        cond = np.repeat(np.arange(n_conditions), n_per)
        rates = cond_rates[cond]
        counts = rng.poisson(rates).astype(np.int64)
        if binarize:
            counts = (counts > 0).astype(np.int64)
        datasets.append(
            LorenzDataset(
                name=str(name),
                counts=counts,
                condition_id=(cond + 1).astype(np.int64),
                true_rates=rates,
                latents=cond_latents[cond],
                readout_W=W,
                readout_b=b,
                time_ms=time_ms.copy(),
                bin_ms=float(bin_ms),
            )
        )
    return LorenzData(
        condition_latents=cond_latents,
        initial_states=x0,
        datasets=tuple(datasets),
        bin_ms=float(bin_ms),
        mean_rate_hz=float(mean_rate_hz),
    )


def write_lorenz_datasets(data: LorenzData, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write each dataset to ``<out_dir>/<name>.h5`` in the loaders' default keys.

    Keys: ``counts``, ``time_ms``, ``condition_id``, ``true_rates``, ``bin_ms``
    (read by :func:`lfads_runs.data.loaders.load_dataset`), plus ``latents``,
    ``readout_W``, ``readout_b`` and the shared ``condition_latents`` for
    reference. Each file is written atomically.

    Returns
    -------
    dict
        Dataset name -> file path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ds in data.datasets:
        path = out_dir / f"{ds.name}.h5"
        members = {
            "counts": H5Array(ds.counts, compress=True),
            "true_rates": H5Array(ds.true_rates, compress=True),
            "latents": H5Array(ds.latents, compress=True),
            "time_ms": H5Array(ds.time_ms),
            "condition_id": H5Array(ds.condition_id),
            "bin_ms": H5Array(ds.bin_ms),
            "readout_W": H5Array(ds.readout_W),
            "readout_b": H5Array(ds.readout_b),
            "condition_latents": H5Array(data.condition_latents),
        }
        description = (
            "synthetic Lorenz dataset (lfads_runs.data.synthetic.lorenz); "
            "counts are trials x time x neurons"
        )
        write_arrays(path, H5Group({"description": description}, members))
        paths[ds.name] = path
    return paths


def lorenz_dataset(dataset: str | int = "dataset001", **options: object) -> DatasetData:
    """One dataset of :func:`lorenz`, as a configuration ``loader`` function.

    Every call regenerates the whole set from the same ``seed`` and returns one
    dataset of it, so several YAML entries that share ``loader_args`` (except
    ``dataset``) get datasets driven by the same Lorenz conditions, as
    stitching needs::

        datasets:
          items:
            - name: dataset001
              loader: "lfads_runs.data.synthetic:lorenz_dataset"
              loader_args: {dataset: dataset001, n_datasets: 3, seed: 0}

    Parameters
    ----------
    dataset : str or int
        Dataset name (``dataset001`` ...) or 1-based index.
    **options
        Keyword arguments of :func:`lorenz` (``n_datasets``, ``n_conditions``,
        ``trials_per_condition``, ``n_neurons``, ``duration_ms``, ``bin_ms``,
        ``mean_rate_hz``, ``seed``, ...). ``seed`` defaults to 0.

    Returns
    -------
    DatasetData
        Counts, time base, condition ids and true rates of that dataset.

    Raises
    ------
    ConfigError
        Unknown option, or no dataset of that name or index.
    """
    allowed = set(inspect.signature(lorenz).parameters)
    unknown = sorted(set(options) - allowed)
    if unknown:
        msg = f"lorenz_dataset: unknown option(s) {unknown}; allowed: {', '.join(sorted(allowed))}"
        raise ConfigError(msg)
    data = lorenz(**options)  # type: ignore[arg-type]
    names = [d.name for d in data.datasets]
    if isinstance(dataset, int) and not isinstance(dataset, bool):
        if not 1 <= dataset <= len(names):
            msg = f"lorenz_dataset: dataset index {dataset} out of range 1..{len(names)}"
            raise ConfigError(msg)
        return data.datasets[dataset - 1].to_dataset_data()
    if dataset not in names:
        msg = f"lorenz_dataset: no dataset {dataset!r}; the generated ones are {names}"
        raise ConfigError(msg)
    return data[str(dataset)].to_dataset_data()
