"""Run.prepare / RunCollection.prepare / lfads-runs prepare on real synthetic recordings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import pytest

from lfads_runs import ConfigError, DataError, RunCollection
from lfads_runs.data import lorenz, write_lorenz_datasets

CONFIG = """\
name: lorenz_test
root: ./runs
version: {version}
datasets:
  path: ./data
  items:
    - {{name: dataset001, file: dataset001.h5}}
    - {{name: dataset002, file: dataset002.h5}}
run_specs:
  - {{name: all, datasets: all}}
  - {{name: single_dataset001, datasets: [dataset001]}}
params:
  - {{spikeBinMs: 10, c_batch_size: 8, c_factors_dim: 4, useAlignmentMatrix: true,
      useSingleDatasetAlignmentMatrix: true}}
  - {{spikeBinMs: 10, c_batch_size: 8, c_factors_dim: 4, c_gen_dim: 32}}
"""


@pytest.fixture
def config(tmp_path):
    def make(version=20171107):
        data = lorenz(
            n_datasets=2,
            n_conditions=6,
            trials_per_condition=10,
            n_neurons=[12, 9],
            duration_ms=300,
            seed=3,
        )
        write_lorenz_datasets(data, tmp_path / "data")
        path = tmp_path / "config.yaml"
        path.write_text(CONFIG.format(version=version))
        return path

    return make


def test_prepare_writes_shared_files_and_links(config):
    rc = RunCollection.from_yaml(config())
    rc.prepare()
    stitched = rc.find_runs("all", 1)
    single = rc.find_runs("single_dataset001", 1)
    for run in (stitched, single):
        assert run.is_prepared
        for ds, link in run.input_files.items():
            assert link.is_symlink()
            assert os.readlink(link) == f"../../../{run.data_hash}/{run.name}/lfads_{ds}.h5"
    with h5py.File(stitched.input_files["dataset002"]) as f:
        assert f["train_data"].shape == (48, 30, 9) and f["train_data"].dtype == "int64"
        assert f["alignment_matrix_cxf"].shape == (9, 4)
        assert f["valid_inds"][:3].tolist() == [1.0, 6.0, 11.0]
    with h5py.File(single.input_files["dataset001"]) as f:
        assert f["alignment_matrix_cxf"].shape == (12, 4)  # single-dataset PCA read-in
    # parameter set 2 has the same data hash as neither; its own folder
    other = rc.find_runs("all", 2)
    assert other.data_hash != stitched.data_hash
    assert (rc.path / "summary.txt").is_file()
    assert (
        json.loads((stitched.path.parent / "params.json").read_text())["param_hash"]
        == stitched.param_hash
    )
    info = stitched.load_input_info()["dataset001"]
    assert info.counts.shape == (60, 300, 12) and info.bin_ms == 1.0


def test_prepare_is_idempotent_and_regenerates(config):
    rc = RunCollection.from_yaml(config())
    run = rc.find_runs("all", 1)
    assert run.prepare() is not None
    mtime = run.paths.common_input_file("dataset001").stat().st_mtime_ns
    assert run.prepare() is None  # everything up to date: nothing loaded or written
    assert run.paths.common_input_file("dataset001").stat().st_mtime_ns == mtime
    result = run.prepare(regenerate=True)
    assert set(result.written) == {"dataset001", "dataset002"}


def test_legacy_layout_shares_one_data_folder(config):
    rc = RunCollection.from_yaml(config(version=201801))
    rc.prepare(rc.find_runs(None, 1))
    stitched = rc.find_runs("all", 1)
    single = rc.find_runs("single_dataset001", 1)
    assert stitched.path_common_data == single.path_common_data == rc.path / stitched.data_hash
    assert (
        os.readlink(single.input_files["dataset001"])
        == f"../../../{single.data_hash}/lfads_dataset001.h5"
    )


@pytest.mark.parametrize(("version", "single_aligned"), [(20171107, True), (201801, False)])
def test_which_runs_get_alignment_matrices(config, version, single_aligned):
    """One rule for prepare, the property and the alignment figure: the single-dataset
    matrix is off in legacy collections (version < 20171107) and without the flag."""
    rc = RunCollection.from_yaml(config(version=version))
    runs = {
        (name, p): rc.find_runs(name, p) for name in ("all", "single_dataset001") for p in (1, 2)
    }
    expected = {
        ("all", 1): True,
        ("single_dataset001", 1): single_aligned,
        ("all", 2): False,
        ("single_dataset001", 2): False,
    }
    assert {k: r.uses_alignment for k, r in runs.items()} == expected
    # the legacy layout shares dataset001's input file between the runs: the first
    # to prepare it decides its content, so only the single run is checked there
    for key in (("single_dataset001", 1), ("all", 1))[: 2 if single_aligned else 1]:
        rc.prepare([runs[key]])
        for f in runs[key].input_files.values():
            with h5py.File(f) as h5:
                assert ("alignment_matrix_cxf" in h5) == expected[key], (key, f)
    single = runs[("single_dataset001", 1)]
    if single_aligned:
        assert single.do_multisession_alignment().matrices["dataset001"].shape == (12, 4)
    else:
        with pytest.raises(ConfigError, match="uses no alignment matrices"):
            single.do_multisession_alignment()


def test_bad_data_names_the_dataset_and_writes_nothing(config, tmp_path):
    path = config()
    with h5py.File(tmp_path / "data" / "dataset002.h5", "a") as f:
        counts = f["counts"][()]
        counts[0, 0, 0] = -1
        f["counts"][...] = counts
    rc = RunCollection.from_yaml(path)
    run = rc.find_runs("all", 1)
    with pytest.raises(DataError, match="dataset002"):
        run.prepare()
    assert not run.paths.common_input_file("dataset001").exists()


def test_cli_prepare_json(config):
    path = config()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lfads_runs",
            "prepare",
            str(path),
            "--param",
            "1",
            "--run-spec",
            "all",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["run_spec"], r["param_index"]) for r in rows] == [("all", 1)]
    assert sorted(rows[0]["written"]) == ["dataset001", "dataset002"]
    assert "prepared all" in proc.stderr
