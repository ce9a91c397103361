"""lfads_runs: run collections for LFADS, compatible with MATLAB lfads-run-manager."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .exceptions import (
    CheckpointError,
    ConfigError,
    DataError,
    LfadsRunsError,
    LfadsRunsWarning,
    MissingDependencyError,
    MissingOutputError,
    ModelParamsError,
    ModelParamsUnavailable,
    RunFailedError,
    RunNotFoundError,
)
from .hparams import Hyperparameters
from .model_spec import DatasetSpec, ModelSpec

try:
    __version__ = version("lfads_runs")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DatasetSpec",
    "Hyperparameters",
    "LfadsRunsError",
    "LfadsRunsWarning",
    "MissingDependencyError",
    "MissingOutputError",
    "ModelParamsError",
    "ModelParamsUnavailable",
    "ModelSpec",
    "RunFailedError",
    "RunNotFoundError",
    "__version__",
]
