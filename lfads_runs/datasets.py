"""Datasets (recording sessions) and the collection of them a run collection uses.

Here a dataset is a name, a file and the options telling the loader how to read
it; :mod:`lfads_runs.data` turns it into counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .exceptions import ConfigError
from .names import check_dataset_name


def _freeze(d: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(d or {})


@attrs.frozen(eq=False)
class Dataset:
    """One recording session.

    Parameters
    ----------
    name
        Dataset name (``dataset001``); by default the file stem with ``,`` replaced by ``_``
        (MATLAB ``LFADS.Dataset``).
    path
        The data file (absolute), or ``None`` for datasets produced by a ``loader`` function.
    options
        How to load it: ``loader``, ``keys``, ``format``, ``bin_ms``, ``nwb`` ... (see
        :mod:`lfads_runs.data.loaders`).
    metadata
        Free-form information carried along (subject, date, ...).
    heldout_neurons
        Co-smoothing: neurons the encoders do not read, as 0-based indices or
        ``{"fraction": f, "seed": s}`` (see :mod:`lfads_runs.data.cosmoothing`); None = none.
    """

    name: str = attrs.field(converter=check_dataset_name)
    path: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    options: dict[str, Any] = attrs.field(factory=dict, converter=_freeze)
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_freeze)
    heldout_neurons: list[int] | dict[str, Any] | None = attrs.field(default=None)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None, **kw: Any) -> Dataset:
        path = Path(path)
        return cls(name=name or path.stem.replace(",", "_"), path=path, **kw)

    @property
    def single_run_name(self) -> str:
        """``single_<name>``: MATLAB ``getSingleRunName``."""
        return f"single_{self.name}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return (self.name, self.path) == (other.name, other.path)

    def __hash__(self) -> int:
        return hash((self.name, self.path))


@attrs.frozen
class DatasetCollection:
    """The datasets available to a run collection, by name, in order."""

    path: Path | None = attrs.field(converter=attrs.converters.optional(Path))
    datasets: tuple[Dataset, ...] = attrs.field(converter=tuple)

    def __attrs_post_init__(self) -> None:
        seen = set()
        for d in self.datasets:
            if d.name in seen:
                raise ConfigError(f"duplicate dataset name {d.name!r}")
            seen.add(d.name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets)

    def __getitem__(self, key: str | int) -> Dataset:
        if isinstance(key, int):
            return self.datasets[key]
        for d in self.datasets:
            if d.name == key:
                return d
        raise KeyError(f"no dataset named {key!r}; datasets are: {', '.join(self.names)}")

    def __contains__(self, key: object) -> bool:
        return any(d.name == key for d in self.datasets)

    def __iter__(self) -> Iterator[Dataset]:
        return iter(self.datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    def select(self, names: Iterable[str]) -> tuple[Dataset, ...]:
        return tuple(self[n] for n in names)
