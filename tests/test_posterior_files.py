"""Tests of lfads_runs.io.posterior_files on the TensorFlow reference files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import TF_CASES, n_trials

from lfads_runs.exceptions import DataError, MissingOutputError
from lfads_runs.io.posterior_files import read_posterior_file, write_posterior_file


def _model_runs_files(root):
    files = []
    for case in TF_CASES:
        files.extend(sorted((root / case / "lfadsOutput").glob("model_runs_*")))
    return files


def test_every_fixture_file_round_trips(tf_fixtures, tmp_path):
    """Reading each TF posterior file and writing it back keeps keys, dtypes, shapes and values."""
    files = _model_runs_files(tf_fixtures)
    # stitch2 keeps both kinds of both splits of two datasets; the others no train-split
    # sample-and-average file
    assert len(files) == 4 * 2 + 3 * 3
    for i, src in enumerate(files):
        data = read_posterior_file(src)
        assert "output_dist_params" in data and "factors" in data
        dst = tmp_path / f"copy{i}"
        write_posterior_file(dst, data)
        back = read_posterior_file(dst)
        assert list(back) == list(data)
        with h5py.File(src, "r") as f:
            for key, arr in back.items():
                assert arr.dtype == np.float64 == f[key].dtype
                assert arr.shape == f[key].shape
                np.testing.assert_array_equal(arr, f[key][()])


def test_written_layout_matches_lfads_write_data(tf_fixtures, tmp_path):
    """Written files are flat, attribute-free, float64, gzip level 4, h5py auto chunks, no shuffle."""
    src = tf_fixtures / "ctrl1" / "lfadsOutput"
    src = src / "model_runs_dataset001.h5_valid_posterior_push_mean"
    data = read_posterior_file(src)
    data["train_steps"] = data["train_steps"].astype(np.int64)  # ints are stored as float64
    dst = tmp_path / "out"
    write_posterior_file(dst, data)
    ref = tmp_path / "ref"
    with h5py.File(ref, "w") as f:  # exactly what utils.write_data does
        for k, v in data.items():
            f.create_dataset(k, data=np.asarray(v, np.float64), compression="gzip")
    with h5py.File(dst, "r") as f, h5py.File(ref, "r") as g:
        assert dict(f.attrs) == {}
        assert sorted(f) == sorted(g)
        for k in f:
            d, r = f[k], g[k]
            assert not d.attrs.keys()
            assert d.dtype == np.float64
            assert (d.compression, d.compression_opts, d.shuffle) == ("gzip", 4, False)
            assert d.chunks == r.chunks
    assert read_posterior_file(dst, keys=["train_steps"])["train_steps"].dtype == np.float64


def test_read_selected_keys_and_errors(tf_fixtures, tmp_path):
    """A key subset is read; missing keys, missing files and non-HDF5 files raise clear errors."""
    src = tf_fixtures / "stitch2" / "lfadsOutput"
    src = src / "model_runs_dataset002.h5_valid_posterior_push_mean"
    sub = read_posterior_file(src, keys=["factors", "costs"])
    assert list(sub) == ["factors", "costs"]
    assert sub["factors"].shape == (n_trials("stitch2", "dataset002")["valid"], 50, 6)
    with pytest.raises(DataError, match="controller_outputs"):
        read_posterior_file(src, keys=["controller_outputs"])
    with pytest.raises(MissingOutputError, match="nope"):
        read_posterior_file(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.write_text("not hdf5")
    with pytest.raises(DataError, match="bad"):
        read_posterior_file(bad)


def test_bad_input_leaves_destination_untouched(tmp_path):
    """Invalid keys or values raise DataError and leave the old file and no temp file behind."""
    dst = tmp_path / "out"
    write_posterior_file(
        dst, {"costs": np.arange(3), "scalar": np.float64(2.5), "empty": np.zeros(0)}
    )
    before = dst.read_bytes()
    with pytest.raises(DataError, match="a/b"):
        write_posterior_file(dst, {"a/b": np.zeros(3)})
    with pytest.raises(DataError, match="names"):
        write_posterior_file(dst, {"names": np.array(["x", "y"])})
    assert dst.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    back = read_posterior_file(dst)
    assert back["scalar"] == 2.5 and back["empty"].shape == (0,)
    np.testing.assert_array_equal(back["costs"], [0.0, 1.0, 2.0])
