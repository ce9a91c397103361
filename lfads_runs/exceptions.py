"""Every exception lfads_runs raises on purpose.

Each subclass also inherits the builtin a caller would naturally catch, so
``except ValueError`` still works for configuration mistakes.
"""

from __future__ import annotations

__all__ = [
    "LfadsRunsError",
    "ConfigError",
    "RunNotFoundError",
    "MissingOutputError",
    "RunFailedError",
    "MissingDependencyError",
    "ModelParamsError",
    "ModelParamsUnavailable",
    "CheckpointError",
    "DataError",
    "RunBusyError",
    "OutputError",
    "LfadsRunsWarning",
]


class LfadsRunsError(Exception):
    """Base class of all lfads_runs errors."""


class ConfigError(LfadsRunsError, ValueError):
    """A configuration (YAML file or RunParams value) is invalid."""


class RunNotFoundError(LfadsRunsError, KeyError):
    """``find_runs`` found no run spec or parameter set matching the query."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingOutputError(LfadsRunsError, FileNotFoundError):
    """An output file a loader needs does not exist (yet)."""


class RunFailedError(LfadsRunsError, RuntimeError):
    """A run (training, posterior sampling or dump) failed."""


class MissingDependencyError(LfadsRunsError, ImportError):
    """An optional dependency (an extra) is needed for this feature."""


class ModelParamsError(LfadsRunsError, ValueError):
    """A ``model_params`` file does not match the model its run describes."""


class ModelParamsUnavailable(MissingOutputError):
    """Neither ``model_params`` nor any checkpoint to produce it exists."""


class CheckpointError(LfadsRunsError, ValueError):
    """A checkpoint (TensorFlow TensorBundle or ours) is corrupt or incomplete."""


class DataError(LfadsRunsError, ValueError):
    """Input data (counts, time vectors, condition ids, files) are unusable."""


class RunBusyError(LfadsRunsError, RuntimeError):
    """A live process holds the run (its claim), so it cannot be changed now."""


class OutputError(LfadsRunsError, OSError):
    """An output folder or file cannot be created (a file in the way, no permission, disk full)."""


class LfadsRunsWarning(UserWarning):
    """Warnings issued by lfads_runs."""
