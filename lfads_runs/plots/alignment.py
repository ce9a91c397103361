"""How well each dataset's alignment matrix reconstructs the global PCs.

The counterpart of lfads-run-manager's ``plotAlignmentReconstruction``: a grid
of factors (rows) x conditions (columns); each panel shows the global PC
trajectory in black and every dataset's reconstruction (its alignment matrix
applied to its centred condition averages) in colour. Drawn on a bare
matplotlib ``Figure`` (no pyplot state), so it works headless.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._optional import require
from ..exceptions import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..data.alignment import AlignmentResult

__all__ = ["plot_alignment_reconstruction", "save_alignment_reconstruction"]


def _factor_indices(result: AlignmentResult, factors: int | Sequence[int]) -> list[int]:
    if isinstance(factors, int | np.integer):
        idx = list(range(min(int(factors), result.n_components)))
    else:
        idx = [int(f) for f in factors]
    bad = [f for f in idx if not 0 <= f < result.n_components]
    if bad or not idx:
        msg = f"factors {bad or idx} out of range: the alignment has {result.n_components} global PCs (0-based indices)"
        raise DataError(msg)
    return idx


def _condition_indices(result: AlignmentResult, conditions: Sequence | None) -> list[int]:
    n = result.conditions.size
    if conditions is None:
        return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(3, n))})
    lookup = {c: i for i, c in enumerate(result.conditions.tolist())}
    out = []
    for c in conditions:
        key = c.item() if isinstance(c, np.generic) else c
        if key not in lookup:
            msg = f"condition {c!r} is not among the alignment's conditions ({result.conditions.tolist()[:10]}...)"
            raise DataError(msg)
        out.append(lookup[key])
    return out


def plot_alignment_reconstruction(
    result: AlignmentResult,
    factors: int | Sequence[int] = 3,
    conditions: Sequence | None = None,
    *,
    datasets: Sequence[str] | None = None,
    panel_size: tuple[float, float] = (2.6, 1.8),
) -> Figure:
    """Global PCs (black) against each dataset's reconstruction (coloured).

    Parameters
    ----------
    result : AlignmentResult
        From :func:`lfads_runs.data.alignment.compute_alignment`.
    factors : int or sequence of int
        The first ``n`` global PCs, or 0-based PC indices.
    conditions : sequence, optional
        Condition ids to show; default up to three spread over the conditions.
    datasets : sequence of str, optional
        Datasets to draw; default all.

    Returns
    -------
    matplotlib.figure.Figure
    """
    mfig = require("matplotlib.figure", "plotting the alignment reconstruction")
    f_idx = _factor_indices(result, factors)
    c_idx = _condition_indices(result, conditions)
    names = list(result.dataset_names if datasets is None else datasets)
    unknown = [n for n in names if n not in result.reconstructions]
    if unknown:
        msg = f"datasets {unknown} are not in the alignment ({', '.join(result.dataset_names)})"
        raise DataError(msg)
    fig = mfig.Figure(
        figsize=(panel_size[0] * len(c_idx) + 1.5, panel_size[1] * len(f_idx) + 0.8),
        layout="constrained",
    )
    axes = fig.subplots(len(f_idx), len(c_idx), squeeze=False, sharex=True)
    colours = require("matplotlib", "plotting").colormaps[
        "tab10" if len(names) <= 10 else "viridis"
    ]
    t = result.time_ms
    for r, f in enumerate(f_idx):
        for c, ci in enumerate(c_idx):
            ax = axes[r, c]
            for j, name in enumerate(names):
                colour = (
                    colours(j % 10) if len(names) <= 10 else colours(j / max(len(names) - 1, 1))
                )
                ax.plot(t, result.reconstructions[name][f, :, ci], color=colour, lw=1, label=name)
            ax.plot(t, result.global_pcs[f, :, ci], color="k", lw=2, label="global PC")
            if r == 0:
                ax.set_title(f"condition {result.conditions[ci]}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"PC {f + 1}", fontsize=9)
            if r == len(f_idx) - 1:
                ax.set_xlabel("time (ms)", fontsize=9)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def save_alignment_reconstruction(
    result: AlignmentResult,
    path: str | os.PathLike,
    factors: int | Sequence[int] = 3,
    conditions: Sequence | None = None,
    *,
    datasets: Sequence[str] | None = None,
    dpi: int = 120,
) -> Path:
    """Draw :func:`plot_alignment_reconstruction` and save it atomically (format from the suffix)."""
    from .results import save_figure

    fig = plot_alignment_reconstruction(result, factors, conditions, datasets=datasets)
    save_figure(fig, path, dpi=dpi)
    return Path(path)
