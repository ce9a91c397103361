"""Figures of one run written as PNG files, headless (``lfads-runs plot ...`` and the demo).

Each ``save_*`` function loads what it needs from the run, draws with
:mod:`lfads_runs.plots` on a bare ``matplotlib.figure.Figure`` (no pyplot window
or global state, so it works without a display) and returns the files written.
matplotlib is the ``plot`` extra, imported only when a function is called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._optional import require
from ..exceptions import ConfigError, DataError, MissingOutputError

if TYPE_CHECKING:
    from ..collection import Run
    from ..data.alignment import AlignmentResult

__all__ = [
    "FIGURES",
    "run_alignment",
    "save_alignment_figure",
    "save_factor_figures",
    "save_fitlog_figure",
    "save_param_figures",  # noqa: F822 (plots.params' own, through __getattr__ below)
    "save_pca_figure",
    "save_rate_figures",
    "save_run_figures",
]

#: Figure groups of :func:`save_run_figures`, in order.
FIGURES = ("factors", "pca", "rates", "fitlog", "alignment", "params")

PCA_FIGURE = "stitching_pca.png"
FITLOG_FIGURE = "training_curves.png"
PBT_FIGURE = "pbt.png"
ALIGNMENT_FIGURE = "alignment_reconstruction.png"


def _figure(width: float, height: float):
    return require("matplotlib.figure", "plotting").Figure(figsize=(width, height))


def _save(fig: Any, path: Path, dpi: int) -> Path:
    from ..plots.results import save_figure

    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=dpi)
    return path


def _datasets(run: Run, datasets: Sequence[str] | None) -> list[str]:
    if datasets is None:
        return list(run.dataset_names)
    names = [str(d).removesuffix(".h5") for d in datasets]
    unknown = [d for d in names if d not in run.dataset_names]
    if unknown:
        raise ConfigError(
            f"run {run.name} has no dataset {', '.join(unknown)}; "
            f"its datasets are {', '.join(run.dataset_names)}"
        )
    return names


def save_factor_figures(
    run: Run,
    out_dir: str | os.PathLike,
    *,
    kind: str | None = None,
    datasets: Sequence[str] | None = None,
    max_conditions: int = 6,
    dpi: int = 110,
) -> list[Path]:
    """``factors_<ds>.png``: factor traces per condition (single trials and means) per dataset."""
    from ..plots.grid import grid_axes, grid_shape
    from ..plots.results import plot_factors_by_condition

    pms = run.load_posterior_means(kind)
    written = []
    for ds in _datasets(run, datasets):
        pm = pms[ds]
        ids = pm.condition_ids if pm.condition_ids is not None else np.full(pm.n_trials, "all")
        n = min(pm.n_factors, 8)
        rows, cols = grid_shape(n)
        fig = _figure(2.8 * cols + 0.8, 2.4 * rows + 0.6)
        plot_factors_by_condition(
            pm.factors,
            ids,
            time_ms=pm.time_ms,
            max_conditions=max_conditions,
            axes=grid_axes(fig, n),
        )
        fig.suptitle(f"{run.name} {run.param_hash}: {ds} factors ({pm.kind})", fontsize="medium")
        fig.tight_layout()
        written.append(_save(fig, Path(out_dir) / f"factors_{ds}.png", dpi))
    return written


def save_pca_figure(
    run: Run,
    out_dir: str | os.PathLike,
    *,
    kind: str | None = None,
    datasets: Sequence[str] | None = None,
    max_conditions: int | None = None,
    dpi: int = 110,
) -> list[Path]:
    """``stitching_pca.png``: condition-averaged factors of all datasets on shared top-2 PCs.

    Only conditions present in every dataset are drawn (the first
    ``max_conditions`` of them when given).
    """
    from ..plots.results import plot_stitching_pca

    pms = run.load_posterior_means(kind)
    names = _datasets(run, datasets)
    averages = {}
    for ds in names:
        conds, avg = pms[ds].condition_averaged("factors")
        averages[ds] = dict(zip(conds.tolist(), avg, strict=True))
    common = list(set.intersection(*(set(a) for a in averages.values())))
    numeric = all(isinstance(c, int | float) for c in common)
    common = sorted(common) if numeric else sorted(common, key=str)
    if not common:
        raise DataError(f"the datasets of {run.name} share no condition; nothing to project")
    if max_conditions is not None:
        common = common[:max_conditions]
    stacked = {ds: np.stack([averages[ds][c] for c in common]) for ds in names}
    fig = _figure(6.0, 5.4)
    plot_stitching_pca(stacked, ax=fig.add_subplot(), conditions=common)
    return [_save(fig, Path(out_dir) / PCA_FIGURE, dpi)]


def save_rate_figures(
    run: Run,
    out_dir: str | os.PathLike,
    *,
    kind: str | None = None,
    datasets: Sequence[str] | None = None,
    neurons: Sequence[int] | None = None,
    dpi: int = 110,
) -> list[Path]:
    """``rates_vs_truth_<ds>.png``: inferred vs true rates (counts per bin) per dataset.

    Raises
    ------
    DataError
        A dataset has no true rates (only synthetic data have them).
    """
    from ..plots.grid import grid_axes, grid_shape
    from ..plots.results import plot_rates_vs_truth

    pms = run.load_posterior_means(kind)
    written = []
    for ds in _datasets(run, datasets):
        pm = pms[ds]
        if pm.truth is None or pm.rates is None:
            raise DataError(
                f"{ds} of run {run.name} has no true rates (train_truth/valid_truth in its "
                "input file) or no Poisson rates to compare"
            )
        which = list(range(min(pm.n_neurons or 0, 4))) if neurons is None else list(neurons)
        rows, cols = grid_shape(len(which))
        fig = _figure(3.0 * cols + 0.8, 2.6 * rows + 0.6)
        plot_rates_vs_truth(
            pm.rates,
            pm.truth,
            time_ms=pm.time_ms,
            neurons=which,
            unit=f"counts per {pm.bin_width_ms:g} ms bin",
            axes=grid_axes(fig, len(which)),
        )
        fig.suptitle(f"{run.name} {run.param_hash}: {ds} rates", fontsize="medium")
        fig.tight_layout()
        written.append(_save(fig, Path(out_dir) / f"rates_vs_truth_{ds}.png", dpi))
    return written


def save_fitlog_figure(run: Run, out_dir: str | os.PathLike, *, dpi: int = 110) -> list[Path]:
    """``training_curves.png``: costs and ramp weights by step from ``fitlog.csv``."""
    from ..plots.results import plot_training_curves

    fig = _figure(7.0, 6.0)
    plot_training_curves(run.load_fit_log(), axes=fig.subplots(2, 1, sharex=True))
    return [_save(fig, Path(out_dir) / FITLOG_FIGURE, dpi)]


def save_pbt_figure(run: Run, out_dir: str | os.PathLike, *, dpi: int = 110) -> list[Path]:
    """``pbt.png``: the search's metric and hyperparameters by generation, per member."""
    from ..plots.pbt import plot_pbt
    from ..tuning.results import read_members, search_log_scale

    tune_dir = run.paths.tune_dir
    members = read_members(tune_dir)
    if not members:
        raise MissingOutputError(f"{tune_dir}: no PBT search here (run lfads-runs tune first)")
    fig = plot_pbt(members, log_scale=search_log_scale(tune_dir))
    return [_save(fig, Path(out_dir) / PBT_FIGURE, dpi)]


def run_alignment(run: Run) -> AlignmentResult:
    """Recompute the run's alignment (the matrices ``prepare`` wrote) with its plotting data.

    Raises
    ------
    ConfigError
        The run uses no alignment matrices.
    """
    from ..data import compute_alignment, rebin_dataset

    p = run.params
    if not run.uses_alignment:
        raise ConfigError(
            f"run {run.name} ({run.param_hash}) uses no alignment matrices "
            "(useAlignmentMatrix with several datasets, or useSingleDatasetAlignmentMatrix)"
        )
    # the data prepare() aligns: the run's hooks (generate_counts_for_dataset, ...)
    mode = "alignment" if run.uses_different_data_for_alignment else "export"
    binned = [
        (d.name, rebin_dataset(run._sequence_data(d, mode), p.spike_bin_ms, name=d.name))
        for d in run.datasets
    ]
    return compute_alignment(
        binned,
        factors_dim=int(p.c_factors_dim),
        approach=p.alignment_approach,
        extra_args=p.alignment_extra_args,
    )


def save_alignment_figure(
    run: Run,
    out_dir: str | os.PathLike,
    *,
    alignment: AlignmentResult | None = None,
    factors: int | Sequence[int] = 3,
    conditions: Sequence | None = None,
    dpi: int = 110,
) -> list[Path]:
    """``alignment_reconstruction.png``: global PCs vs each dataset's reconstruction.

    ``alignment`` (e.g. ``PreparedData.alignment`` from ``run.prepare()``) saves
    recomputing it from the data.
    """
    from ..plots.alignment import save_alignment_reconstruction

    result = alignment if alignment is not None else run_alignment(run)
    path = Path(out_dir) / ALIGNMENT_FIGURE
    path.parent.mkdir(parents=True, exist_ok=True)
    return [save_alignment_reconstruction(result, path, factors, conditions, dpi=dpi)]


def save_run_figures(
    run: Run,
    out_dir: str | os.PathLike,
    which: Sequence[str] = FIGURES,
    *,
    kind: str | None = None,
    alignment: AlignmentResult | None = None,
    pca_conditions: int | None = None,
) -> dict[str, list[Path]]:
    """Every figure group in ``which`` (see :data:`FIGURES`); groups a run cannot draw
    (no truth, no alignment) are skipped. ``pca_conditions`` limits the stitching
    figure to the first N shared conditions. Returns group -> files written."""
    out: dict[str, list[Path]] = {}
    for name in which:
        if name not in FIGURES:
            raise ConfigError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
        if name == "factors":
            out[name] = save_factor_figures(run, out_dir, kind=kind)
        elif name == "pca":
            out[name] = save_pca_figure(run, out_dir, kind=kind, max_conditions=pca_conditions)
        elif name == "rates":
            try:
                out[name] = save_rate_figures(run, out_dir, kind=kind)
            except DataError:
                continue
        elif name == "fitlog":
            out[name] = save_fitlog_figure(run, out_dir)
        elif name == "alignment":
            try:
                out[name] = save_alignment_figure(run, out_dir, alignment=alignment)
            except ConfigError:
                continue
        else:
            from ..plots.params import save_param_figures

            out[name] = save_param_figures(run, out_dir, dpi=110)
    return out


def __getattr__(name: str) -> Any:
    # save_param_figures(run, out_dir) is plots.params' own, loaded with matplotlib on first use
    if name == "save_param_figures":
        from ..plots.params import save_param_figures

        return save_param_figures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
