"""The Python counterpart of the MATLAB package ``+LorenzExperiment``: how a lab plugs its data in.

MATLAB users subclass ``LFADS.Dataset`` (``loadInfo``) and ``LFADS.Run``
(``generateCountsForDataset``); the same two hooks here:

- :class:`LorenzDataset` reads subject, date, trial and channel counts from the file;
- :class:`LorenzRun` turns a MATLAB-style file (``spikes`` trials x neurons x time,
  ``timeMs``, ``conditionId``, ``true_rates``) into the record the loaders return.

:func:`generate_demo_datasets` writes such files (``LFADS.Utils.generateDemoDatasets``).
``drive_script_multisession.py`` uses all three; a YAML file names the run class as
``run_class: "lorenz_experiment:LorenzRun"`` (found next to the YAML file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lfads_runs import Dataset, Run
from lfads_runs.data.synthetic import lorenz
from lfads_runs.datasets import DatasetInfo
from lfads_runs.io.matfile import read_mat, write_mat73


def generate_demo_datasets(
    path: str | Path,
    n_datasets: int = 3,
    *,
    n_conditions: int = 65,
    trials_per_condition: int | Sequence[int] = (28, 29, 21),
    n_neurons: int | Sequence[int] = (35, 26, 35),
    duration_ms: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """``dataset00N.mat`` files laid out like ``LFADS.Utils.generateDemoDatasets`` writes them."""
    data = lorenz(
        n_datasets=n_datasets,
        n_conditions=n_conditions,
        trials_per_condition=trials_per_condition,
        n_neurons=n_neurons,
        duration_ms=duration_ms,
        mean_rate_hz=20.0,
        seed=seed,
    )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for d in data.datasets:
        file = out / f"{d.name}.mat"
        write_mat73(
            file,
            {
                "spikes": np.transpose(d.counts, (0, 2, 1)).astype(
                    float
                ),  # trials x neurons x time
                "timeMs": d.time_ms.reshape(-1, 1).astype(float),
                "conditionId": d.condition_id.reshape(-1, 1).astype(float),
                "true_rates": np.transpose(d.true_rates, (0, 2, 1)),
                "subject": "lorenz_example",
                "datetime": "2018-01-31",
            },
        )
        files.append(file)
    return files


class LorenzDataset(Dataset):
    """MATLAB ``LorenzExperiment.Dataset``: ``loadInfo`` reads the file's own fields."""

    def read_info(self, base_dir: str | Path | None = None) -> DatasetInfo:
        m = read_mat(self._file(base_dir), ["spikes", "subject", "datetime"])
        n_trials, n_channels, n_time = m["spikes"].shape
        return DatasetInfo(
            name=self.name,
            subject=str(m["subject"]),
            date=str(m["datetime"]),
            n_trials=n_trials,
            n_channels=n_channels,
            n_time=n_time,
            bin_ms=1.0,
        )

    def _file(self, base_dir: str | Path | None) -> Path:
        assert self.path is not None
        return self.path if base_dir is None else Path(base_dir) / self.path


class LorenzRun(Run):
    """MATLAB ``LorenzExperiment.Run``: ``generateCountsForDataset`` returns the spikes."""

    def generate_counts_for_dataset(self, dataset: Dataset, mode: str) -> dict[str, Any]:
        assert dataset.path is not None
        base = self.collection.datasets.path
        file = dataset.path if base is None else Path(base) / dataset.path
        m = read_mat(file, ["spikes", "timeMs", "conditionId", "true_rates"])
        return {
            "counts": np.transpose(m["spikes"], (0, 2, 1)),  # to trials x time x neurons
            "time_ms": np.ravel(m["timeMs"]),
            "condition_id": np.ravel(m["conditionId"]).astype(int),
            "true_rates": np.transpose(m["true_rates"], (0, 2, 1)),
        }
