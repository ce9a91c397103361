"""Results of trained runs: posterior means, fit logs and export.

Arrays follow the numpy/TensorFlow orientation ``[trials, time, dim]`` (MATLAB's
lfads-run-manager used ``dim x time x trials``).
"""

from __future__ import annotations

from .analysis import SharedPCA, shared_pca
from .evaluate import evaluate_run
from .export import export_run, export_run_nwb
from .fitlog import FitLog, read_fit_log
from .nlb_metrics import bits_per_spike, poisson_nll, psth_r2, velocity_r2
from .posterior_means import (
    PosteriorMeans,
    concatenate_over_trials,
    posterior_means_from_arrays,
    read_posterior_means,
)

__all__ = [
    "FitLog",
    "PosteriorMeans",
    "SharedPCA",
    "bits_per_spike",
    "concatenate_over_trials",
    "evaluate_run",
    "export_run",
    "export_run_nwb",
    "poisson_nll",
    "posterior_means_from_arrays",
    "psth_r2",
    "read_fit_log",
    "read_posterior_means",
    "shared_pca",
    "velocity_r2",
]
