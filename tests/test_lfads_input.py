"""Tests of lfads_runs.io.lfads_input against the TensorFlow reference input files."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from conftest import TF_CASES, manifest, n_trials

from lfads_runs.exceptions import DataError
from lfads_runs.io.lfads_input import (
    LfadsInput,
    find_input_files,
    read_input_summary,
    read_lfads_input,
    write_lfads_input,
)


def _layout(path):
    """Key -> (shape, dtype, compression, level, shuffle, chunks) of a flat HDF5 file."""
    with h5py.File(path, "r") as f:
        return {
            k: (d.shape, d.dtype, d.compression, d.compression_opts, d.shuffle, d.chunks)
            for k, d in f.items()
        }


def test_find_input_files_names_datasets_like_lfads(tf_fixtures, tmp_path):
    """Dataset names drop 'lfads_' and keep '.h5'; other files are ignored."""
    found = find_input_files(tf_fixtures / "stitch2" / "lfadsInput")
    assert list(found) == ["dataset001.h5", "dataset002.h5"]
    (tmp_path / "lfads_b.h5").write_bytes(b"")
    (tmp_path / "lfads_a.h5").write_bytes(b"")
    (tmp_path / "inputInfo_a.mat").write_bytes(b"")
    (tmp_path / ".lfads_a.h5.xyz.tmp").write_bytes(b"")
    (tmp_path / "lfads_dir").mkdir()
    assert list(find_input_files(tmp_path)) == ["a.h5", "b.h5"]
    with pytest.raises(DataError, match="does not exist"):
        find_input_files(tmp_path / "nope")


@pytest.mark.parametrize("case", TF_CASES)
def test_roundtrip_matches_fixture_bytes_layout(tf_fixtures, tmp_path, case):
    """Reading a reference file and writing it back gives the same keys, dtypes, shapes, values and filters."""
    for src in sorted((tf_fixtures / case / "lfadsInput").glob("lfads_*.h5")):
        inp = read_lfads_input(src)
        dst = tmp_path / src.name
        write_lfads_input(dst, inp)
        assert _layout(dst) == _layout(src)
        with h5py.File(src, "r") as a, h5py.File(dst, "r") as b:
            for k in a:
                np.testing.assert_array_equal(a[k][()], b[k][()])
    assert all(p.name.startswith("lfads_") for p in tmp_path.iterdir())  # no temp files left


def test_read_fields_and_summary(tf_fixtures):
    """Fields map to keys; the summary reads shapes only."""
    path = tf_fixtures / "stitch2" / "lfadsInput" / "lfads_dataset002.h5"
    inp = read_lfads_input(path)
    n = n_trials("stitch2", "dataset002")
    assert inp.train_data.dtype == np.int64 and inp.train_data.shape == (n["train"], 50, 23)
    every = manifest("stitch2")["synthetic_data"]["train_to_test_ratio"] + 1
    assert inp.valid_inds[:3].tolist() == [1.0, 1.0 + every, 1.0 + 2 * every]
    assert inp.alignment_matrix_cxf.shape == (23, 6)
    assert inp.conversion_factor.tolist() == [1.0]
    assert inp.train_ext_input is None and inp.extras == {}
    s = read_input_summary(path)
    assert (s.n_train, s.n_valid, s.num_steps, s.n_neurons) == (n["train"], n["valid"], 50, 23)
    assert s.dtype == np.int64 and s.has_alignment_matrix and s.has_alignment_bias
    assert s.ext_input_dim == 0
    s = read_input_summary(tf_fixtures / "extin1" / "lfadsInput" / "lfads_dataset001.h5")
    assert s.ext_input_dim == 1 and not s.has_alignment_matrix
    s = read_input_summary(tf_fixtures / "gauss1" / "lfadsInput" / "lfads_dataset001.h5")
    assert s.dtype == np.float64


def test_dtypes_written(tmp_path):
    """Integer counts become int64, floats float64, logical extras uint8, scalars 1-D."""
    rng = np.random.default_rng(0)
    inp = LfadsInput(
        train_data=rng.integers(0, 3, (4, 5, 2)).astype(np.int32),
        valid_data=rng.integers(0, 3, (2, 5, 2)).astype(np.uint8),
        train_inds=np.array([2, 3, 5, 6], dtype=np.int64),
        valid_inds=np.array([1, 4]),
        conversion_factor=0.5,
        alignment_bias_c=np.array([1, 2], dtype=np.float32),
        extras={"mask": np.array([True, False]), "scalar": np.float32(3)},
    )
    write_lfads_input(tmp_path / "lfads_x.h5", inp)
    lay = _layout(tmp_path / "lfads_x.h5")
    assert lay["train_data"][1] == np.int64 and lay["valid_data"][1] == np.int64
    assert lay["train_inds"][:2] == ((4,), np.float64)
    assert lay["conversion_factor"][:2] == ((1,), np.float64)
    assert lay["alignment_bias_c"][1] == np.float64
    assert lay["mask"][:2] == ((2,), np.uint8)
    assert lay["scalar"][:2] == ((1,), np.float64)
    back = read_lfads_input(tmp_path / "lfads_x.h5")
    np.testing.assert_array_equal(back.train_data, inp.train_data)
    assert set(back.extras) == {"mask", "scalar"}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"valid_data": np.zeros((2, 6, 2), np.int64)}, "differ in time or neurons"),
        ({"train_truth": np.zeros((4, 5, 3))}, "train_truth has shape"),
        ({"train_ext_input": np.zeros((4, 5, 1))}, "given together"),
        ({"alignment_matrix_cxf": np.zeros((3, 4))}, "alignment_matrix_cxf has shape"),
        ({"alignment_bias_c": np.zeros(3)}, "alignment_bias_c has shape"),
        ({"train_inds": np.arange(3.0)}, "train_inds has shape"),
        ({"valid_data": np.zeros((2, 5, 2))}, "both be integer or both float"),
        ({"extras": {"train_data": np.zeros(1)}}, "collide"),
        ({"extras": {"names": np.array(["a", "b"])}}, "numbers or logicals"),
    ],
)
def test_inconsistent_input_rejected_and_nothing_written(tmp_path, change, match):
    """Bad shapes or dtypes raise DataError naming the key, and leave no file."""
    base = dict(train_data=np.zeros((4, 5, 2), np.int64), valid_data=np.zeros((2, 5, 2), np.int64))
    base.update(change)
    with pytest.raises(DataError, match=match):
        write_lfads_input(tmp_path / "lfads_x.h5", LfadsInput(**base))
    assert list(tmp_path.iterdir()) == []


def test_unreadable_files(tmp_path):
    """Missing, non-HDF5 and incomplete files raise DataError naming the file."""
    with pytest.raises(DataError, match="does not exist"):
        read_lfads_input(tmp_path / "missing.h5")
    bad = tmp_path / "lfads_bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="lfads_bad.h5"):
        read_input_summary(bad)
    with h5py.File(tmp_path / "lfads_part.h5", "w") as f:
        f["train_data"] = np.zeros((2, 3, 4))
    with pytest.raises(DataError, match="valid_data"):
        read_lfads_input(tmp_path / "lfads_part.h5")


def test_overwrite_is_atomic(tf_fixtures, tmp_path):
    """Writing over an existing file replaces it; a failed write keeps the old one."""
    src = tf_fixtures / "ctrl1" / "lfadsInput" / "lfads_dataset001.h5"
    dst = tmp_path / "lfads_dataset001.h5"
    shutil.copyfile(src, dst)
    bad = LfadsInput(train_data=np.zeros((2, 3, 4)), valid_data=np.zeros((2, 4, 4)))
    with pytest.raises(DataError):
        write_lfads_input(dst, bad)
    assert _layout(dst) == _layout(src)
    write_lfads_input(
        dst, LfadsInput(train_data=np.zeros((2, 3, 4)), valid_data=np.zeros((1, 3, 4)))
    )
    assert read_input_summary(dst).n_train == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lfads_dataset001.h5"]
