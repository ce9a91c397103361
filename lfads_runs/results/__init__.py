"""Results of trained runs: posterior means, fit logs and export.

Arrays follow the numpy/TensorFlow orientation ``[trials, time, dim]`` (MATLAB's
lfads-run-manager used ``dim x time x trials``).
"""

from __future__ import annotations

from .fitlog import FitLog, read_fit_log

__all__ = ["FitLog", "read_fit_log"]
