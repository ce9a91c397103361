"""Results of trained runs: posterior means, fit logs and export.

Arrays follow the numpy/TensorFlow orientation ``[trials, time, dim]`` (MATLAB's
lfads-run-manager used ``dim x time x trials``).
"""

from __future__ import annotations

from .analysis import SharedPCA, shared_pca
from .export import export_run, export_run_nwb
from .fitlog import FitLog, read_fit_log
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
    "concatenate_over_trials",
    "export_run",
    "export_run_nwb",
    "posterior_means_from_arrays",
    "read_fit_log",
    "read_posterior_means",
    "shared_pca",
]
