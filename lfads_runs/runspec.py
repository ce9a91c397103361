"""Run specs: a named subset of a collection's datasets (MATLAB ``LFADS.RunSpec``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np

from .datasets import Dataset, DatasetCollection
from .exceptions import ConfigError
from .names import check_name

__all__ = ["RunSpec"]


def _dataset_refs(ds: Any) -> tuple[str | int, ...]:
    if isinstance(ds, str | Dataset) or _is_integer(ds):
        ds = [ds]
    out: list[str | int] = []
    for d in ds:
        if isinstance(d, Dataset):
            out.append(d.name)
        elif _is_integer(d):
            out.append(int(d))
        elif isinstance(d, str):
            out.append(d)
        else:
            raise ConfigError(
                f"a run spec's datasets are names, Dataset objects or 1-based indices, got {d!r}"
            )
    return tuple(out)


@attrs.frozen
class RunSpec:
    """A named subset of the collection's datasets (MATLAB ``LFADS.RunSpec``).

    ``datasets`` holds names, :class:`Dataset` objects or **1-based** indices into
    the collection's datasets (MATLAB ``RunSpec(name, dc, datasetIdx)``); indices
    are turned into names when the spec is added to a collection (or by
    :meth:`resolve`).
    """

    name: str = attrs.field(converter=lambda n: check_name(n, "run spec name"))
    datasets: tuple[str, ...] = attrs.field(converter=_dataset_refs)

    def __attrs_post_init__(self) -> None:
        if not self.datasets:
            raise ConfigError(f"run spec {self.name!r} has no datasets")
        if len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"run spec {self.name!r} lists a dataset twice: {self.datasets}")

    def resolve(self, datasets: DatasetCollection) -> RunSpec:
        """This spec with every dataset given by name, checked against ``datasets``."""
        names = []
        for d in self.datasets:
            if isinstance(d, int):
                if not 1 <= d <= len(datasets):
                    raise ConfigError(
                        f"run spec {self.name!r}: dataset index {d} is out of range; the "
                        f"collection has {len(datasets)} datasets (indices are 1-based)"
                    )
                names.append(datasets[d - 1].name)
            elif d not in datasets:
                raise ConfigError(
                    f"run spec {self.name!r} names unknown dataset {d!r}; "
                    f"datasets are: {', '.join(datasets.names)}"
                )
            else:
                names.append(d)
        return RunSpec(self.name, names)

    def select_datasets_by_name(self, names: str | Iterable[str]) -> RunSpec:
        """A spec of the same name with ``names`` as its datasets (MATLAB ``selectDatasetsByName``)."""
        return RunSpec(self.name, [names] if isinstance(names, str) else list(names))

    def select_datasets_by_index(self, indices: Any) -> RunSpec:
        """A spec with the collection's datasets at 1-based ``indices`` (``selectDatasetsByIndex``)."""
        idx = np.atleast_1d(np.asarray(indices))
        if idx.dtype == bool:
            idx = np.flatnonzero(idx) + 1
        return RunSpec(self.name, [int(i) for i in idx])


def _is_integer(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)
