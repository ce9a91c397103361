"""Deprecated path of :mod:`lfads_runs.actions.figures` (named in earlier documentation).

Import the figure functions from :mod:`lfads_runs.actions.figures`; this module only
re-exports them so scripts written against the old path keep working.
"""

from __future__ import annotations

import warnings

from .actions.figures import (
    FIGURES,
    run_alignment,
    save_alignment_figure,
    save_factor_figures,
    save_fitlog_figure,
    save_pca_figure,
    save_rate_figures,
    save_run_figures,
)

__all__ = [
    "FIGURES",
    "run_alignment",
    "save_alignment_figure",
    "save_factor_figures",
    "save_fitlog_figure",
    "save_param_figures",  # noqa: F822 (through __getattr__, loads matplotlib on use)
    "save_pca_figure",
    "save_rate_figures",
    "save_run_figures",
]

warnings.warn(
    "lfads_runs.run_figures is now lfads_runs.actions.figures",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> object:
    if name == "save_param_figures":
        from .actions import figures

        return figures.save_param_figures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
