"""Neural Latents Benchmark HDF5 files: the tensors of ``nlb_tools.make_tensors`` and
submission files.

Tensor files hold ``[trials, time, neurons]`` arrays at the top level (or in a
group named after the dataset, as NLB's evaluation targets do). A submission
file holds one group per dataset with ``eval_rates_heldin``,
``eval_rates_heldout``, ``train_rates_heldin``, ``train_rates_heldout`` and,
with forward prediction, ``eval_rates_heldin_forward`` and
``eval_rates_heldout_forward``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from .._atomic import atomic_path
from ..exceptions import DataError, MissingOutputError

__all__ = ["read_nlb_arrays", "write_nlb_submission"]


def read_nlb_arrays(path: str | os.PathLike, group: str | None = None) -> dict[str, np.ndarray]:
    """Every dataset (array) at the top of ``path`` or of its group ``group``.

    Raises
    ------
    MissingOutputError
        No such file.
    DataError
        Not an HDF5 file, or no such group.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingOutputError(f"NLB tensor file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not an HDF5 file ({exc})") from None
    with f:
        node = f
        if group is not None:
            if group not in f or not isinstance(f[group], h5py.Group):
                groups = [k for k in f if isinstance(f[k], h5py.Group)]
                raise DataError(f"{path}: no group {group!r}; groups: {groups or 'none'}")
            node = f[group]
        return {k: np.asarray(v[()]) for k, v in node.items() if isinstance(v, h5py.Dataset)}


def write_nlb_submission(
    path: str | os.PathLike, groups: Mapping[str, Mapping[str, np.ndarray]]
) -> None:
    """Write a submission file (one group per dataset) atomically; ``"w-"``: never overwrites.

    Raises
    ------
    DataError
        The file exists already.
    """
    path = Path(path)
    if path.exists():
        raise DataError(f"{path} exists; remove it or choose another submission file name")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, arrays in groups.items():
            g = f.create_group(name)
            for key, a in arrays.items():
                g.create_dataset(key, data=np.asarray(a, dtype=np.float64))
