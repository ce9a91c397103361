"""The installed version of lfads_runs (``lfads_runs.__version__``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("lfads_runs")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
