"""The ``pbt`` figure: the metric and each searched hyperparameter over generations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._optional import require
from ..exceptions import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..tuning.results import MemberRecord

__all__ = ["plot_pbt"]


def plot_pbt(members: Sequence[MemberRecord], *, log_scale: Sequence[str] = ()) -> Figure:
    """One panel for the metric and one per searched hyperparameter; a line per member.

    A generation in which a member exploited another starts with a dotted segment
    from the donor's previous point, so the lineage is visible.
    ``log_scale`` names hyperparameters drawn on a log axis.
    """
    members = [m for m in members if m.rows]
    if not members:
        raise DataError("the search has no completed generation to plot")
    names = list(members[0].rows[0]["hparams"])
    metric = members[0].rows[0]["metric"]
    n = 1 + len(names)
    fig = require("matplotlib.figure", "plotting").Figure(figsize=(7, 2.2 * n))
    axs = list(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
    by_name = {m.name: m for m in members}

    def series(m: MemberRecord, key: str | None) -> tuple[np.ndarray, np.ndarray]:
        g = np.array([r["generation"] for r in m.rows], dtype=float)
        v = [r["value"] if key is None else r["hparams"].get(key) for r in m.rows]
        return g, np.array([np.nan if x is None else x for x in v], dtype=float)

    for i, m in enumerate(members):
        colour = f"C{i % 10}"
        for ax, key in zip(axs, [None, *names], strict=True):
            g, v = series(m, key)
            ax.plot(g, v, "o", color=colour, ms=3, label=m.name if key is None else None)
            for j in range(1, len(g)):  # no solid line into a generation that exploited
                if not m.rows[j].get("exploited"):
                    ax.plot(g[j - 1 : j + 1], v[j - 1 : j + 1], "-", color=colour, lw=1.2)
            for r, gi, vi in zip(m.rows, g, v, strict=True):
                src = r.get("exploited")
                donor = by_name.get(src["member"]) if src else None
                if donor is None:
                    continue
                prev = [x for x in donor.rows if x["generation"] == src["generation"]]
                if prev:
                    pv = prev[0]["value"] if key is None else prev[0]["hparams"].get(key)
                    if pv is not None:
                        ax.plot([src["generation"], gi], [pv, vi], ":", color=colour, lw=1.0)
    axs[0].set_ylabel(metric)
    axs[0].legend(fontsize="small", ncol=min(4, len(members)))
    for ax, key in zip(axs[1:], names, strict=True):
        ax.set_ylabel(key)
        if key in log_scale:
            ax.set_yscale("log")
    axs[-1].set_xlabel("generation")
    axs[-1].xaxis.set_major_locator(
        require("matplotlib.ticker", "plotting").MaxNLocator(integer=True)
    )
    axs[0].set_title(f"population-based training ({len(members)} members)")
    fig.tight_layout()
    return fig
