"""Synthetic Lorenz datasets (``lfads_runs.synthetic.lorenz``); see :mod:`lfads_runs.data.synthetic`."""

from .data.synthetic import (
    LorenzData,
    LorenzDataset,
    lorenz,
    lorenz_trajectories,
    write_lorenz_datasets,
)

__all__ = ["LorenzData", "LorenzDataset", "lorenz", "lorenz_trajectories", "write_lorenz_datasets"]
