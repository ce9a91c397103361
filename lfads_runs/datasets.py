"""Datasets (recording sessions) and the collection of them a run collection uses.

Here a dataset is a name, a file and the options telling the loader how to read
it; :mod:`lfads_runs.data` turns it into counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ._filecache import file_identity
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
    _info_cache: dict[str, Any] = attrs.field(init=False, factory=dict, repr=False)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None, **kw: Any) -> Dataset:
        path = Path(path)
        return cls(name=name or path.stem.replace(",", "_"), path=path, **kw)

    @property
    def single_run_name(self) -> str:
        """``single_<name>``: MATLAB ``getSingleRunName``."""
        return f"single_{self.name}"

    def read_data(self, base_dir: str | Path | None = None) -> Any:
        """The dataset's trials as :class:`~lfads_runs.data.DatasetData`, read with its options."""
        from .data import load_from_options

        return load_from_options(self.path, self.options, base_dir=base_dir)

    def load_info(self, base_dir: str | Path | None = None, reload: bool = False) -> DatasetInfo:
        """Subject, date, trials and channels (MATLAB ``loadInfo``), read once and cached.

        Counts come from the data (:meth:`read_data`); ``subject`` and ``date`` from
        ``metadata``. The cache is dropped when the file changes (inode, size or mtime).
        Override :meth:`read_info` in a subclass to read them another way.
        """
        key = _file_identity(self.path, base_dir)
        if reload or self._info_cache.get("key") != key or "info" not in self._info_cache:
            self._info_cache["info"] = self.read_info(base_dir)
            self._info_cache["key"] = key
        return self._info_cache["info"]

    def read_info(self, base_dir: str | Path | None = None) -> DatasetInfo:
        """Uncached :meth:`load_info`: counts from the data; subject and date from
        ``metadata``, else from ``subject`` and ``datetime``/``date`` text variables of a
        ``.mat`` file (as MATLAB's demo datasets hold them)."""
        data = self.read_data(base_dir)
        found = dict(self.metadata)
        if (
            self.path is not None
            and self.path.suffix.lower() == ".mat"
            and "loader" not in self.options
        ):
            from .io.matfile import read_mat

            path = Path(base_dir) / self.path if base_dir is not None else self.path
            for key, value in read_mat(path, ["subject", "datetime", "date"]).items():
                if isinstance(value, str):
                    found.setdefault(key, value)
        return DatasetInfo(
            name=self.name,
            subject=str(found.get("subject", "")),
            date=str(found.get("date", found.get("datetime", ""))),
            n_trials=int(data.n_trials),
            n_channels=int(data.n_neurons),
            n_time=int(data.n_time),
            bin_ms=float(data.bin_ms),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return (self.name, self.path) == (other.name, other.path)

    def __hash__(self) -> int:
        return hash((self.name, self.path))


def _file_identity(path: Path | None, base_dir: str | Path | None) -> tuple[Any, ...]:
    if path is None:
        return ()
    p = Path(base_dir) / path if base_dir is not None and not path.is_absolute() else path
    return file_identity([p])


@attrs.frozen
class DatasetInfo:
    """What MATLAB ``Dataset.loadInfo`` filled in: one row of the info table."""

    name: str
    subject: str
    date: str
    n_trials: int
    n_channels: int
    n_time: int  #: bins per trial at the file's own bin width
    bin_ms: float


class DatasetInfoTable(tuple):
    """Rows of :class:`DatasetInfo`; ``str()`` prints them as MATLAB's ``getDatasetInfoTable``."""

    _COLUMNS = ("name", "subject", "date", "n_trials", "n_channels")

    def __str__(self) -> str:
        rows = [self._COLUMNS] + [tuple(str(getattr(r, c)) for c in self._COLUMNS) for r in self]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._COLUMNS))]
        return "\n".join(
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
        )


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

    @property
    def n_datasets(self) -> int:
        """MATLAB ``dc.nDatasets``."""
        return len(self.datasets)

    # ------------------------------------------------------------ info (MATLAB loadInfo)
    def load_info(self, reload: bool = False) -> DatasetInfoTable:
        """Read (once) every dataset's :class:`DatasetInfo`; MATLAB ``dc.loadInfo``."""
        return DatasetInfoTable(d.load_info(self.path, reload=reload) for d in self.datasets)

    def get_dataset_info_table(self) -> DatasetInfoTable:
        """The info rows (loaded when needed); ``print()`` them for MATLAB's table."""
        return self.load_info()

    # ------------------------------------------------------------ filtering (new collections)
    def filter_datasets(self, keep: Any) -> DatasetCollection:
        """A collection of the datasets selected by ``keep``: a boolean mask, names or
        1-based indices (MATLAB ``filterDatasets``; MATLAB edits in place, this returns
        a new collection)."""
        items = list(np.asarray(keep).tolist()) if not isinstance(keep, str) else [keep]
        if items and all(isinstance(x, bool) for x in items):
            if len(items) != len(self.datasets):
                raise ConfigError(
                    f"a dataset mask needs {len(self.datasets)} entries, got {len(items)}"
                )
            chosen = [d for d, k in zip(self.datasets, items, strict=True) if k]
        else:
            chosen = []
            for k in items:
                if isinstance(k, int):
                    if not 1 <= k <= len(self.datasets):
                        raise ConfigError(
                            f"dataset index {k} is out of range 1..{len(self.datasets)} (1-based)"
                        )
                    chosen.append(self.datasets[k - 1])
                elif isinstance(k, str) and k in self:
                    chosen.append(self[k])
                else:
                    raise ConfigError(f"no dataset {k!r}; datasets are: {', '.join(self.names)}")
        return DatasetCollection(self.path, tuple(dict.fromkeys(chosen)))

    def filter_having_minimum_trials(self, n_trials: int) -> DatasetCollection:
        """The datasets with at least ``n_trials`` trials (MATLAB ``filterHavingMinimumTrials``)."""
        info = self.load_info()
        return self.filter_datasets([i.n_trials >= n_trials for i in info])

    def filter_having_minimum_trials_for_batch_size(
        self, batch_size: int, train_to_test_ratio: int = 4
    ) -> DatasetCollection:
        """The datasets whose training and validation splits both hold more than
        ``batch_size`` trials (MATLAB ``filterHavingMinimumTrialsForBatchSize``)."""
        from .data.binning import min_trials_for_batch_size

        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size!r}")
        return self.filter_having_minimum_trials(
            min_trials_for_batch_size(int(batch_size), train_to_test_ratio)
        )

    def compute_max_batch_size_for_train_to_ratio(self, train_to_test_ratio: int = 4) -> int:
        """The largest ``c_batch_size`` every dataset can train with (MATLAB
        ``computeMaxBatchSizeForTrainToRatio``): one less than the smallest split; 0 when a
        dataset is too small for any batch."""
        from .data.binning import split_trials

        if not self.datasets:
            raise ConfigError("the dataset collection is empty")
        sizes = []
        for i in self.load_info():
            train, valid = split_trials(i.n_trials, train_to_test_ratio)
            sizes.append(min(train.size, valid.size) - 1)
        return max(0, min(sizes))
