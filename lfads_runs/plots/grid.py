"""Panels in a grid: how many rows and columns, and the axes of a figure laid out so."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import DataError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["grid_axes", "grid_shape"]


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n`` panels, filled row by row, at most ``max_cols`` wide.

    Raises
    ------
    DataError
        ``n`` < 1: there is nothing to draw.
    """
    if n < 1:
        raise DataError(f"nothing to draw: {n} panels asked for")
    cols = min(n, max_cols)
    return -(-n // cols), cols


def grid_axes(fig: Figure, n: int, max_cols: int = 4) -> list[Axes]:
    """``n`` axes of ``fig`` in a :func:`grid_shape` grid; the unused cells are hidden."""
    rows, cols = grid_shape(n, max_cols)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]
