"""Figures of trained weights: the generator recurrent matrix and the read-out matrices.

These are the two figures of lfads-run-manager's documentation (docs/trained-params.md:
``generator_W.png`` and ``readout_matrices.png``). matplotlib is imported only
when a function is called; :func:`save_param_figures` draws on plain
``matplotlib.figure.Figure`` objects, so it works headless without touching
the pyplot backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._optional import require
from .results import save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..collection import Run
    from ..trained_params import ModelTrainedParameters

__all__ = [
    "plot_generator_matrix",
    "plot_readout_matrices",
    "save_param_figures",
    "GENERATOR_FIGURE",
    "READOUT_FIGURE",
]

GENERATOR_FIGURE = "generator_W.png"
READOUT_FIGURE = "readout_matrices.png"
_CMAP = "RdBu_r"  # diverging: negative blue, positive red, zero white


def _limit(*arrays: np.ndarray) -> float:
    m = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    return m if m > 0 else 1.0


def _new_axes(n: int, figsize: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    plt = require("matplotlib.pyplot", "plotting trained parameters")
    fig, axs = plt.subplots(1, n, figsize=figsize, squeeze=False)
    return fig, list(axs[0])


def plot_generator_matrix(params: ModelTrainedParameters, ax: Axes | None = None) -> Figure:
    """Heat map of the generator's recurrent candidate matrix ``gen_gengru_rh_to_c_W``.

    Rows are the input units (the reset-gated state), columns the output units
    (W is stored ``[in, out]``); the colour scale is symmetric around 0.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding ``ax`` (a new one when ``ax`` is None).
    """
    w = params.gen_gengru_rh_to_c_W
    if w is None:
        raise ValueError("these parameters have no gen_gengru_rh_to_c_W")
    if ax is None:
        fig, (ax,) = _new_axes(1, (5.2, 4.5))
    fig = ax.figure
    lim = _limit(w)
    im = ax.imshow(w, cmap=_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax)
    ax.set_title("Generator recurrent weights (gen_gengru_rh_to_c_W)")
    ax.set_xlabel("generator unit (output)")
    ax.set_ylabel("generator unit (input)")
    return fig


def plot_readout_matrices(params: ModelTrainedParameters, axes: Any | None = None) -> Figure:
    """One heat map per dataset of its read-out matrix, factors x neurons.

    Poisson models show ``factors_to_logrates_W``, Gaussian models
    ``factors_to_means_W``. All panels share one symmetric colour scale.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the panels (a new one when ``axes`` is None).

    Raises
    ------
    ValueError
        The model has no read-out matrices (single dataset with F = D: identity
        read-out), or ``axes`` has fewer panels than datasets.
    """
    name = "factors_to_logrates_W" if not params.is_gaussian else "factors_to_means_W"
    mats = getattr(params, name)
    if mats is None:
        raise ValueError("these parameters have no read-out matrices (identity read-out)")
    n = len(mats)
    if axes is None:
        fig, axes = _new_axes(n, (min(4.0 * n, 16.0), 3.6))
    axes = list(np.ravel(axes))
    if len(axes) < n:
        raise ValueError(f"need {n} axes (one per dataset), got {len(axes)}")
    fig = axes[0].figure
    lim = _limit(*mats)
    im = None
    for ax, ds, w in zip(axes, params.dataset_names, mats, strict=False):
        im = ax.imshow(w, cmap=_CMAP, vmin=-lim, vmax=lim, interpolation="nearest", aspect="auto")
        ax.set_title(f"{ds}: {name}", fontsize="small")
        ax.set_xlabel("neuron")
        ax.set_ylabel("factor")
    fig.colorbar(im, ax=axes[:n])
    return fig


def save_param_figures(
    params: ModelTrainedParameters | Run, out_dir: str | os.PathLike, *, dpi: int = 120
) -> list[Path]:
    """Write ``generator_W.png`` and ``readout_matrices.png`` into ``out_dir`` (headless).

    ``params`` is the trained weights, or a run whose weights are loaded
    (:meth:`~lfads_runs.Run.load_model_trained_params`). The read-out figure is
    skipped when the model has none (identity read-out). Files are written atomically.

    Returns
    -------
    list of Path
        The files written.
    """
    mfig = require("matplotlib.figure", "plotting trained parameters")
    if hasattr(params, "load_model_trained_params"):  # a Run (duck-typed: plots sit above it)
        params = params.load_model_trained_params()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig = mfig.Figure(figsize=(5.2, 4.5), layout="constrained")
    plot_generator_matrix(params, fig.add_subplot())
    save_figure(fig, out_dir / GENERATOR_FIGURE, dpi=dpi)
    written.append(out_dir / GENERATOR_FIGURE)

    mats = params.factors_to_means_W if params.is_gaussian else params.factors_to_logrates_W
    if mats is not None:
        n = len(mats)
        fig = mfig.Figure(figsize=(min(4.0 * n, 16.0), 3.6), layout="constrained")
        plot_readout_matrices(params, fig.subplots(1, n, squeeze=False)[0])
        save_figure(fig, out_dir / READOUT_FIGURE, dpi=dpi)
        written.append(out_dir / READOUT_FIGURE)
    return written
