"""Data preparation: loading recordings, binning, splitting, alignment and synthetic data.

Typical use::

    from lfads_runs.data import load_dataset, prepare_datasets

    data = [(name, load_dataset(path)) for name, path in files.items()]
    prepare_datasets(data, spike_bin_ms=2, ..., out_dir=run.path_common_data)
"""

from __future__ import annotations

from .alignment import AlignmentResult, compute_alignment
from .binning import rebin_dataset, split_trials, validate_dataset
from .dataset import DatasetData
from .loaders import load_dataset, load_from_options
from .prepare import (
    PreparedData,
    input_file_names,
    link_inputs,
    prepare_datasets,
    prepared_status,
    split_changed,
)
from .synthetic import lorenz, write_lorenz_datasets

__all__ = [
    "AlignmentResult",
    "DatasetData",
    "PreparedData",
    "compute_alignment",
    "input_file_names",
    "link_inputs",
    "load_dataset",
    "load_from_options",
    "lorenz",
    "prepare_datasets",
    "prepared_status",
    "rebin_dataset",
    "split_changed",
    "split_trials",
    "validate_dataset",
    "write_lorenz_datasets",
]
