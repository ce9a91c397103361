"""lfads_runs: run collections for LFADS, compatible with MATLAB lfads-run-manager.

The management layer imports with the core dependencies only; the PyTorch
engine (:mod:`lfads_runs.engine`) and the plots (:mod:`lfads_runs.plots`) load
on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .collection import Run, RunCollection, load_config
from .datasets import Dataset, DatasetCollection
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
    OutputError,
    RunBusyError,
    RunFailedError,
    RunNotFoundError,
)
from .hparams import Hyperparameters
from .model_spec import DatasetSpec, ModelSpec
from .params import RunParams, param_field
from .results.fitlog import FitLog
from .results.posterior_means import PosteriorMeans
from .runspec import RunSpec
from .trained_params import ModelTrainedParameters

_LAZY_SUBMODULES = {"engine", "plots"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lfads_runs' has no attribute {name!r}")


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetCollection",
    "DatasetSpec",
    "FitLog",
    "Hyperparameters",
    "LfadsRunsError",
    "LfadsRunsWarning",
    "MissingDependencyError",
    "MissingOutputError",
    "ModelParamsError",
    "ModelParamsUnavailable",
    "OutputError",
    "ModelSpec",
    "ModelTrainedParameters",
    "PosteriorMeans",
    "Run",
    "RunCollection",
    "RunBusyError",
    "RunFailedError",
    "RunNotFoundError",
    "RunParams",
    "RunSpec",
    "__version__",
    "load_config",
    "param_field",
]
