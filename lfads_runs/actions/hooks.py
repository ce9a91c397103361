"""Calling a Run subclass's data hooks and checking what they return.

The hooks themselves are methods of :class:`lfads_runs.collection.Run` (MATLAB's
``generateCountsForDataset``, ``modifySequenceDataPostLoading``,
``generateExtraLFADSInputsByDataset``); here they are called the way the pipeline
needs them: any failure or bad return value becomes one DataError that names the
hook and the dataset, before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.dataset import DatasetData
from ..data.loaders import check_loader_result
from ..exceptions import ConfigError, DataError, LfadsRunsError
from ..io.lfads_input import KNOWN_KEYS
from ..io.split_keys import FORWARD_KEY, HELDIN_KEY, HELDOUT_KEY

if TYPE_CHECKING:
    from ..collection import Run
    from ..datasets import Dataset

__all__ = ["call_hook", "extra_inputs", "load_sequence_data", "sequence_data"]


# Keys prepare writes itself: the LfadsInput fields and the co-smoothing split.
_RESERVED = (*KNOWN_KEYS, HELDIN_KEY, HELDOUT_KEY, FORWARD_KEY)


def call_hook(where: str, hook: Callable[..., Any], *args: Any) -> Any:
    """Call a user hook; its own bugs become one DataError naming the hook."""
    try:
        return hook(*args)
    except LfadsRunsError:
        raise
    except Exception as exc:
        raise DataError(f"{where} failed: {type(exc).__name__}: {exc}") from exc


def sequence_data(run: Run, dataset: Dataset, mode: str) -> DatasetData:
    """``generate_counts_for_dataset`` then ``modify_sequence_data_post_loading``, checked."""
    cls = type(run).__qualname__
    where = f"{cls}.generate_counts_for_dataset({dataset.name!r}, {mode!r})"
    data = check_loader_result(
        call_hook(where, run.generate_counts_for_dataset, dataset, mode), where
    )
    where = f"{cls}.modify_sequence_data_post_loading({dataset.name!r})"
    modified = call_hook(where, run.modify_sequence_data_post_loading, dataset, data)
    return check_loader_result(modified, where)


def extra_inputs(run: Run, dataset: Dataset, data: DatasetData) -> dict[str, np.ndarray]:
    """``generate_extra_lfads_inputs_by_dataset``: valid HDF5 names, not a standard key,
    numeric or boolean arrays."""
    where = f"{type(run).__qualname__}.generate_extra_lfads_inputs_by_dataset({dataset.name!r})"
    extra = call_hook(where, run.generate_extra_lfads_inputs_by_dataset, dataset, data)
    if not isinstance(extra, Mapping):
        raise DataError(f"{where} returned {type(extra).__name__}; expected a mapping")
    out = {}
    for key, value in extra.items():
        if not isinstance(key, str) or not key or "/" in key or "\x00" in key or key == ".":
            raise DataError(f"{where}: key {key!r} is not a valid HDF5 dataset name")
        if key in _RESERVED:
            raise DataError(
                f"{where}: key {key!r} collides with a standard LFADS input key "
                f"({', '.join(_RESERVED)})"
            )
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise DataError(f"{where}: {key!r} is not an array: {exc}") from None
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise DataError(
                f"{where}: {key!r} must be a numeric or boolean array, got dtype {arr.dtype}"
            )
        out[key] = arr
    return out


def load_sequence_data(
    run: Run, datasets: Any = None, mode: str = "export"
) -> dict[str, DatasetData]:
    """``Run.load_sequence_data``: the run's datasets through its hooks, nothing cached."""
    if mode not in ("export", "alignment"):
        raise ConfigError(f"mode must be 'export' or 'alignment', got {mode!r}")
    return {
        ds: sequence_data(run, run.collection.datasets[ds], mode)
        for ds in run.select_dataset_names(datasets)
    }
