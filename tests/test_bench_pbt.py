"""benchmarks/bench_pbt.py keeps its test trials out of everything a method sees."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pbt.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pbt", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(**kw) -> argparse.Namespace:
    base = {
        "conditions": 4,
        "trials": 3,
        "test_trials": 2,
        "population": 4,
        "generations": 2,
        "epochs_per_generation": 3,
        "burn_in": 0,
    }
    return argparse.Namespace(**{**base, **kw})


def test_test_trials_are_new_repeats_of_the_same_conditions(bench):
    data, test = bench.make_data(0, _args())
    for ds, ts in zip(data.datasets, test.datasets, strict=True):
        assert ds.counts.shape[0] == 4 * 3 and ts.counts.shape[0] == 4 * 2
        assert sorted(set(ts.condition_id)) == sorted(set(ds.condition_id)) == [1, 2, 3, 4]
        for c in (1, 2, 3, 4):  # same latent trajectory, new Poisson draws
            a = ds.latents[ds.condition_id == c][0]
            np.testing.assert_array_equal(ts.latents[ts.condition_id == c][0], a)
        for trial in ts.counts:
            assert not any(np.array_equal(trial, other) for other in ds.counts)


def test_input_files_hold_no_test_trial(bench, tmp_path):
    args = _args()
    data, test = bench.make_data(1, args)
    cfg = bench.write_collection(tmp_path, 1, args, data)
    text = cfg.read_text()
    assert "metric: valid_cobps" in text and "metric_window: 3" in text
    assert "burn_in_generations: 0" in text
    for ds, ts in zip(data.datasets, test.datasets, strict=True):
        with h5py.File(tmp_path / "data" / f"{ds.name}.h5", "r") as f:
            written = f["counts"][()]
        np.testing.assert_array_equal(written, ds.counts)
        assert written.shape[0] + ts.counts.shape[0] == 4 * 5


def test_the_written_collection_loads_with_its_burn_in(bench, tmp_path):
    from lfads_runs import RunCollection

    args = _args(generations=10, burn_in=4)
    data, _ = bench.make_data(0, args)
    spec = RunCollection.from_yaml(bench.write_collection(tmp_path, 0, args, data)).options["tune"]
    assert (spec.burn_in_generations, spec.generations, spec.population) == (4, 10, 4)
    assert spec.metric == bench.METRIC and spec.metric_window == 3
