"""Figures of run results: factors, the stitching PCA, rates vs truth, training curves.

Each function takes prepared arrays (``[trials, time, dim]`` orientation), draws
into the given axes or a new figure, and returns the figure. matplotlib is an
optional extra and is imported only when a function is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import atomic_path
from .._optional import require
from ..exceptions import DataError
from ..results.analysis import shared_pca
from .grid import grid_axes, grid_shape

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..results.fitlog import FitLog

__all__ = [
    "plot_factors_by_condition",
    "plot_rates_vs_truth",
    "plot_stitching_pca",
    "plot_training_curves",
    "save_figure",
]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _pyplot():
    return require("matplotlib.pyplot", "plotting")


def _time_axis(t: int, time_ms: Any) -> tuple[np.ndarray, str]:
    if time_ms is None:
        return np.arange(t), "time bin"
    time = np.asarray(time_ms, dtype=np.float64).reshape(-1)
    if time.size != t:
        msg = f"time_ms has {time.size} entries; the data have {t} time bins"
        raise DataError(msg)
    return time, "time (ms)"


def _label(value: Any) -> str:
    """Condition label without a spurious '.0' for whole numbers stored as floats."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _axes_grid(n: int, axes: Sequence[Axes] | None, size: float = 2.6) -> tuple[Figure, list[Axes]]:
    if axes is not None:
        axes = list(np.ravel(axes))
        if len(axes) < n:
            msg = f"need {n} axes, got {len(axes)}"
            raise DataError(msg)
        return axes[0].figure, axes[:n]
    rows, cols = grid_shape(n)
    fig = _pyplot().figure(figsize=(size * cols + 0.8, size * rows + 0.4))
    return fig, grid_axes(fig, n)


def plot_factors_by_condition(
    factors: np.ndarray,
    condition_ids: Sequence | np.ndarray,
    *,
    time_ms: Sequence[float] | np.ndarray | None = None,
    factor_indices: Sequence[int] | None = None,
    conditions: Sequence | None = None,
    max_conditions: int = 6,
    max_trials_per_condition: int = 10,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Factor traces: one panel per factor, single trials thin and the condition mean thick.

    Parameters
    ----------
    factors
        ``[trials, T, factors]`` (NaN trials, i.e. not in the output files, are skipped).
    condition_ids
        Condition of each trial.
    time_ms
        Start of each bin (x axis); bins are numbered when omitted.
    factor_indices
        Factors to show (default all, at most 8).
    conditions
        Conditions to show (default the first ``max_conditions`` in sorted order).
    max_trials_per_condition
        Single trials drawn per condition.
    axes
        Axes to draw into (one per factor); a new figure otherwise.
    """
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 3:
        msg = f"factors must be [trials, time, factors], got shape {factors.shape}"
        raise DataError(msg)
    ids = np.asarray(condition_ids).reshape(-1)
    if ids.size != factors.shape[0]:
        msg = f"condition_ids has {ids.size} entries; factors have {factors.shape[0]} trials"
        raise DataError(msg)
    time, xlabel = _time_axis(factors.shape[1], time_ms)
    which = (
        list(range(min(factors.shape[2], 8))) if factor_indices is None else list(factor_indices)
    )
    shown = list(np.unique(ids)[:max_conditions]) if conditions is None else list(conditions)
    loaded = ~np.isnan(factors.reshape(factors.shape[0], -1)).all(axis=1)
    fig, axs = _axes_grid(len(which), axes)
    cmap = _pyplot().get_cmap("tab10" if len(shown) <= 10 else "viridis")
    for k, (ax, f) in enumerate(zip(axs, which, strict=True)):
        for j, cond in enumerate(shown):
            colour = cmap(j % 10 if len(shown) <= 10 else j / max(len(shown) - 1, 1))
            trials = np.flatnonzero((ids == cond) & loaded)
            for i in trials[:max_trials_per_condition]:
                ax.plot(time, factors[i, :, f], color=colour, lw=0.5, alpha=0.35)
            if trials.size:
                label = _label(cond) if k == 0 else None
                ax.plot(time, factors[trials, :, f].mean(axis=0), color=colour, lw=2.0, label=label)
        ax.set_title(f"factor {f + 1}")
        ax.set_xlabel(xlabel)
    if shown and axs:
        axs[0].legend(title="condition", fontsize="small", title_fontsize="small")
    fig.tight_layout()
    return fig


def plot_stitching_pca(
    condition_averages: Mapping[str, np.ndarray],
    *,
    ax: Axes | None = None,
    conditions: Sequence | None = None,
) -> Figure:
    """Condition-averaged factors of all datasets projected on the same top two PCs.

    The PCA is fitted on the concatenation of every dataset's condition
    averages, so datasets whose trajectories overlay share one latent space
    (the stitching figure of lfads-run-manager's documentation).

    Parameters
    ----------
    condition_averages
        Dataset name -> ``[conditions, T, factors]`` (same conditions in the same
        order for every dataset, e.g. from ``PosteriorMeans.condition_averaged``).
    ax
        Axes to draw into; a new figure otherwise.
    conditions
        Labels of the conditions (for the title only).

    Each dataset has its own colour and marker; initial conditions (first bin)
    are dots, trajectories are lines.
    """
    for name, avg in condition_averages.items():
        if np.ndim(avg) != 3:
            msg = f"condition averages of {name!r} must be [conditions, T, factors], got {np.shape(avg)}"
            raise DataError(msg)
    pca = shared_pca(condition_averages, n_components=2)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 5.0))
    else:
        fig = ax.figure
    colours = plt.get_cmap("tab10")
    for d, (name, proj) in enumerate(pca.projections.items()):
        colour = colours(d % 10)
        marker = _MARKERS[d % len(_MARKERS)]
        for c in range(proj.shape[0]):
            ax.plot(proj[c, :, 0], proj[c, :, 1], color=colour, lw=1.0, alpha=0.8)
        ax.scatter(
            proj[:, 0, 0], proj[:, 0, 1], color=colour, marker=marker, s=28, zorder=3,
            edgecolor="k", linewidth=0.4, label=name,
        )  # fmt: skip
    ratio = pca.explained_variance_ratio
    ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.0f}% var)")
    ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.0f}% var)")
    n_cond = next(iter(condition_averages.values())).shape[0]
    shown = n_cond if conditions is None else len(conditions)
    ax.set_title(f"condition-averaged factors, {shown} conditions, shared PCs")
    ax.legend(title="dataset (dots: t = 0)", fontsize="small", title_fontsize="small")
    fig.tight_layout()
    return fig


def plot_rates_vs_truth(
    rates: np.ndarray,
    truth: np.ndarray,
    *,
    time_ms: Sequence[float] | np.ndarray | None = None,
    neurons: Sequence[int] | None = None,
    trials: Sequence[int] | None = None,
    unit: str = "expected counts per bin",
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Inferred (solid) vs true (dashed) rates for a few neurons and trials.

    Parameters
    ----------
    rates, truth
        ``[trials, T, neurons]`` in the same units (e.g. ``PosteriorMeans.rates``
        and ``.truth``, both counts per bin).
    neurons
        Neuron indices (default the first four).
    trials
        Trial indices (default three loaded trials spread over the recording).
    unit
        Y-axis label.
    axes
        One axes per neuron; a new figure otherwise.
    """
    rates = np.asarray(rates, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if rates.ndim != 3 or rates.shape != truth.shape:
        msg = f"rates {rates.shape} and truth {truth.shape} must both be [trials, time, neurons]"
        raise DataError(msg)
    time, xlabel = _time_axis(rates.shape[1], time_ms)
    which = list(range(min(rates.shape[2], 4))) if neurons is None else list(neurons)
    if trials is None:
        loaded = np.flatnonzero(~np.isnan(rates.reshape(rates.shape[0], -1)).all(axis=1))
        # spread over the recording: neighbouring trials often share a condition
        trials = list(np.unique(loaded[np.linspace(0, loaded.size - 1, 3).astype(int)]))
    fig, axs = _axes_grid(len(which), axes)
    colours = _pyplot().get_cmap("tab10")
    for k, (ax, n) in enumerate(zip(axs, which, strict=True)):
        for j, i in enumerate(trials):
            colour = colours(j % 10)
            ax.plot(time, rates[i, :, n], color=colour, lw=1.5,
                    label=f"trial {i + 1} inferred" if k == 0 else None)  # fmt: skip
            ax.plot(time, truth[i, :, n], color=colour, lw=1.0, ls="--",
                    label=f"trial {i + 1} true" if k == 0 else None)  # fmt: skip
        valid = np.isfinite(rates[..., n]) & np.isfinite(truth[..., n])
        r = (
            np.corrcoef(rates[..., n][valid], truth[..., n][valid])[0, 1]
            if valid.sum() > 1
            else np.nan
        )
        ax.set_title(f"neuron {n + 1} (r = {r:.2f})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(unit)
    if axs:
        axs[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_training_curves(fit_log: FitLog, *, axes: Sequence[Axes] | None = None) -> Figure:
    """Training curves from a fit log: costs vs step, ramp weights on a twin axis, LVE marked.

    Panel 1: total and reconstruction cost; panel 2: KL cost with the KL and L2
    weights on a twin axis. Train solid, valid dashed; the lowest-validation-error
    row (``fit_log.lve_index``) is a vertical dotted line.

    Parameters
    ----------
    fit_log
        A :class:`~lfads_runs.results.fitlog.FitLog`.
    axes
        Two axes to draw into; a new figure otherwise.
    """
    if fit_log.n_epochs == 0:
        msg = "the fit log has no rows to plot"
        raise DataError(msg)
    if axes is None:
        fig, axs = _pyplot().subplots(2, 1, figsize=(7, 6), sharex=True)
        axs = list(axs)
    else:
        axs = list(np.ravel(axes))
        if len(axs) < 2:
            msg = f"plot_training_curves needs 2 axes, got {len(axs)}"
            raise DataError(msg)
        fig = axs[0].figure
    step = fit_log.steps
    has_valid = fit_log.has_validation
    top, bottom = axs[0], axs[1]
    for name, colour in (("total", "C0"), ("recon", "C1")):
        top.plot(step, getattr(fit_log, f"{name}_train"), color=colour, label=f"{name} train")
        if has_valid:
            top.plot(step, getattr(fit_log, f"{name}_valid"), color=colour, ls="--",
                     label=f"{name} valid")  # fmt: skip
    bottom.plot(step, fit_log.kl_train, color="C2", label="kl train")
    if has_valid:
        bottom.plot(step, fit_log.kl_valid, color="C2", ls="--", label="kl valid")
    bottom.plot(step, fit_log.l2, color="C4", label="l2")
    twin = bottom.twinx()
    twin.plot(step, fit_log.kl_weight, color="0.4", lw=1.0, label="kl weight")
    twin.plot(step, fit_log.l2_weight, color="0.7", lw=1.0, ls=":", label="l2 weight")
    twin.set_ylabel("weight")
    twin.set_ylim(-0.05, 1.1 * max(1.0, float(np.nanmax(fit_log.kl_weight))))
    lve = fit_log.lve_index
    if lve is not None:
        for ax in (top, bottom):
            ax.axvline(step[lve], color="k", ls=":", lw=1.0)
        top.plot(step[lve], fit_log.total_valid[lve], "k*", ms=10,
                 label=f"lowest valid (step {step[lve]})")  # fmt: skip
    top.set_ylabel("cost")
    bottom.set_ylabel("cost")
    bottom.set_xlabel("step")
    top.legend(fontsize="small")
    lines, labels = bottom.get_legend_handles_labels()
    lines2, labels2 = twin.get_legend_handles_labels()
    bottom.legend(lines + lines2, labels + labels2, fontsize="small")
    top.set_title(f"training ({fit_log.n_epochs} epochs)")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> None:
    """Save ``fig`` atomically; the format comes from the file suffix (e.g. ``.png``)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
