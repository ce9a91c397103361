"""Key names of the co-smoothing split in ``lfads_<ds>.h5`` and a cheap reader of it.

:mod:`lfads_runs.data.cosmoothing` explains and validates the split; this module
only names the keys and reads the held-in list (or counts the held-out
neurons) without loading the data.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

__all__ = ["HELDIN_KEY", "HELDOUT_KEY", "FORWARD_KEY", "read_heldin", "read_heldout_count"]

HELDIN_KEY = "heldin_neurons"
HELDOUT_KEY = "heldout_neurons"
FORWARD_KEY = "forward_bins"


def read_heldin(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The held-in neuron indices stored in an input file, or None when it has no split."""
    with h5py.File(path, "r") as f:
        if HELDIN_KEY not in f:
            return None
        return tuple(int(i) for i in np.asarray(f[HELDIN_KEY][()]).reshape(-1))


def read_heldout_count(path: str | os.PathLike) -> int:
    """How many held-out neurons an input file names (0 when it has no split)."""
    with h5py.File(path, "r") as f:
        return int(f[HELDOUT_KEY].size) if HELDOUT_KEY in f else 0
