"""configs/lorenz_single.yaml and configs/lorenz_stitching.yaml work as they are.

Both generate their data with the ``lorenz_dataset`` loader function, so they
need no data files. Preparing the full-size stitching collection takes most
of a minute (it writes ~5000 trials four times); the stitching config is
prepared here with its sizes shrunk, and checked to equal the demo's full
settings, whose full-size preparation ``lfads-runs demo`` performs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lfads_runs import ConfigError, RunCollection
from lfads_runs.data.loaders import load_from_options
from lfads_runs.data.synthetic import lorenz, lorenz_dataset
from lfads_runs.demo import FULL
from lfads_runs.io.lfads_input import read_lfads_input

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _copy(tmp_path: Path, name: str, shrink: bool = False) -> Path:
    """The config in tmp_path/configs, so that its ``root: ../runs`` lands in tmp_path."""
    folder = tmp_path / "configs"
    folder.mkdir(exist_ok=True)
    dst = folder / name
    shutil.copy(CONFIGS / name, dst)
    if shrink:
        text = dst.read_text()
        for old, new in [
            ("n_conditions: 65", "n_conditions: 8"),
            ("trials_per_condition: [28, 29, 21]", "trials_per_condition: [10, 12, 9]"),
            ("c_batch_size: 50", "c_batch_size: 12"),
        ]:
            assert old in text
            text = text.replace(old, new)
        dst.write_text(text)
    return dst


def test_lorenz_dataset_loader_returns_one_dataset_of_the_shared_set():
    opts = dict(n_datasets=3, n_conditions=4, trials_per_condition=[2, 3, 2],
                n_neurons=[5, 6, 7], duration_ms=100, bin_ms=10, seed=4)  # fmt: skip
    full = lorenz(**opts)
    for i, name in enumerate(("dataset001", "dataset002", "dataset003")):
        by_name = lorenz_dataset(name, **opts)
        by_index = lorenz_dataset(i + 1, **opts)
        ref = full.datasets[i]
        np.testing.assert_array_equal(by_name.counts, ref.counts)
        np.testing.assert_array_equal(by_index.counts, ref.counts)
        np.testing.assert_array_equal(by_name.condition_id, ref.condition_id)
        np.testing.assert_array_equal(by_name.true_rates, ref.true_rates)
        assert by_name.bin_ms == 10
    with pytest.raises(ConfigError, match="no dataset 'dataset009'"):
        lorenz_dataset("dataset009", **opts)
    with pytest.raises(ConfigError, match="index 4 out of range 1..3"):
        lorenz_dataset(4, **opts)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['n_neuron'\]"):
        lorenz_dataset("dataset001", n_neuron=3)


@pytest.mark.parametrize("name", ["lorenz_single.yaml", "lorenz_stitching.yaml"])
def test_configs_load_as_they_are(name):
    rc = RunCollection.from_yaml(CONFIGS / name)
    assert rc.path == (CONFIGS.parent / "runs" / rc.name).resolve()
    assert rc.datasets.names == ("dataset001", "dataset002", "dataset003")
    for d in rc.datasets:
        assert d.path is None and d.options["loader_args"]["dataset"] == d.name
        assert d.options["loader_args"]["seed"] == 0
    (p,) = rc.params
    assert (p.c_factors_dim, p.c_gen_dim, p.c_ic_enc_dim, p.c_co_dim) == (8, 64, 64, 0)
    assert p.c_batch_size == 50 and p.spike_bin_ms == 20


def test_stitching_config_is_the_demo_collection():
    """Same data (loader args) and parameters as ``lfads-runs demo`` (full)."""
    rc = RunCollection.from_yaml(CONFIGS / "lorenz_stitching.yaml")
    assert [s.name for s in rc.run_specs] == [
        "single_dataset001", "single_dataset002", "single_dataset003", "all",
    ]  # fmt: skip
    args = rc.datasets["dataset001"].options["loader_args"]
    assert args["n_conditions"] == FULL.n_conditions
    assert tuple(args["trials_per_condition"]) == FULL.trials_per_condition
    assert tuple(args["n_neurons"]) == FULL.n_neurons
    assert (args["duration_ms"], args["bin_ms"]) == (FULL.duration_ms, FULL.bin_ms)
    assert args["mean_rate_hz"] == FULL.mean_rate_hz
    demo = type(rc.params[0]).from_mapping(FULL.params)
    assert rc.params[0].param_hash == demo.param_hash
    assert rc.params[0].data_hash == demo.data_hash


@pytest.mark.slow
def test_single_config_prepares_as_it_is(tmp_path):
    rc = RunCollection.from_yaml(_copy(tmp_path, "lorenz_single.yaml"))
    (run,) = rc.prepare()
    assert run.is_prepared and run.path.is_relative_to(tmp_path)
    inp = read_lfads_input(run.input_files["dataset001"])
    assert inp.train_data.shape == (1456, 50, 35) and inp.valid_data.shape == (364, 50, 35)
    assert inp.alignment_matrix_cxf is None  # one dataset, no single-dataset alignment
    assert run.model_spec().num_steps == 50


def test_stitching_config_prepares(tmp_path):
    """As it is except for smaller sizes: every run spec, alignment matrices for 'all'."""
    rc = RunCollection.from_yaml(_copy(tmp_path, "lorenz_stitching.yaml", shrink=True))
    runs = rc.prepare()
    assert [r.name for r in runs] == [s.name for s in rc.run_specs]
    assert all(r.is_prepared for r in runs)
    stitched = rc.find_runs("all", 1)
    sizes = {}
    for name in stitched.dataset_names:
        inp = read_lfads_input(stitched.input_files[name])
        assert inp.alignment_matrix_cxf.shape == (inp.train_data.shape[2], 8)
        sizes[name] = inp.train_data.shape[0] + inp.valid_data.shape[0]
    assert sizes == {"dataset001": 80, "dataset002": 96, "dataset003": 72}
    # each entry loads its own dataset of the shared set
    d2 = rc.datasets["dataset002"]
    data = load_from_options(d2.path, d2.options)
    assert data.n_neurons == 26 and data.n_trials == 96
