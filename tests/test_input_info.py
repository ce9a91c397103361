"""Tests of the MATLAB v7.3 writer/reader (io.matfile) and inputInfo files (io.input_info)."""

from __future__ import annotations

import sys

import attrs
import h5py
import numpy as np
import pytest

from lfads_runs.exceptions import DataError, MissingDependencyError
from lfads_runs.io.input_info import (
    InputInfo,
    read_input_info,
    read_input_info_hash,
    write_input_info,
)
from lfads_runs.io.matfile import read_mat, write_mat73


def _matlab_class(ds):
    return ds.attrs["MATLAB_class"].decode()


def _info(cid, n=7, T=5, N=3, truth=True, ext=True):
    rng = np.random.default_rng(0)
    return InputInfo(
        train_inds=[2, 3, 4, 5, 7],
        valid_inds=[1, 6],
        data_hash="AbC123",
        time_ms=np.arange(T) * 2.0 - 4,
        bin_ms=2.0,
        condition_id=cid,
        counts=rng.integers(0, 4, (n, T, N)),
        true_rates=rng.random((n, T, N)) if truth else None,
        external_inputs=rng.random((n, T, 2)) if ext else None,
    )


def test_mat73_header_and_layout(tmp_path):
    """The file has MATLAB's 512-byte header, MATLAB_class attributes and reversed dimensions."""
    path = tmp_path / "v.mat"
    write_mat73(
        path,
        {
            "x": np.arange(6.0).reshape(2, 3),
            "s": "héllo",
            "c": ["a", "bb"],
            "b": np.array([True, False]),
            "e": np.zeros((0, 3)),
            "n": 5,
            "u": np.uint16(7),
        },
    )
    head = path.read_bytes()[:512]
    assert head.startswith(b"MATLAB 7.3 MAT-file, Platform: ")
    assert b"HDF5 schema 1.00 ." in head[:116]
    assert head[124:128] == b"\x00\x02IM" and head[128:] == b"\x00" * 384
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        assert f["x"].shape == (3, 2) and _matlab_class(f["x"]) == "double"
        np.testing.assert_array_equal(f["x"][()], np.arange(6.0).reshape(2, 3).T)
        assert (
            f["s"].dtype == np.uint16 and f["s"].shape == (5, 1) and _matlab_class(f["s"]) == "char"
        )
        assert f["s"].attrs["MATLAB_int_decode"] == 2
        assert _matlab_class(f["c"]) == "cell" and f["c"].shape == (1, 2)
        assert _matlab_class(f[f["c"][0, 1]]) == "char"
        assert _matlab_class(f["b"]) == "logical" and f["b"].dtype == np.uint8
        assert f["e"].attrs["MATLAB_empty"] == 1
        assert _matlab_class(f["n"]) == "double" and _matlab_class(f["u"]) == "uint16"
    back = read_mat(path)
    np.testing.assert_array_equal(back["x"], np.arange(6.0).reshape(2, 3))
    assert back["s"] == "héllo"
    assert back["c"].shape == (2, 1) and back["c"][1, 0] == "bb"
    assert back["b"].tolist() == [[True], [False]]
    assert (
        back["e"].shape == (0, 3) and back["n"].tolist() == [[5.0]] and back["u"].dtype == np.uint16
    )
    assert set(read_mat(path, names=["x", "zz"])) == {"x"}


def test_mat73_rejects_bad_names_and_leaves_nothing(tmp_path):
    """Invalid names or values raise and leave no file behind."""
    with pytest.raises(ValueError, match="valid MATLAB variable name"):
        write_mat73(tmp_path / "a.mat", {"1x": 1})
    with pytest.raises(TypeError, match="structs"):
        write_mat73(tmp_path / "a.mat", {"x": 1, "y": {"a": 1}})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cid", [[1, 1, 2, 2, 3, 3, 3], ["a", "b", "a", "c", "b", "", "a"], None])
def test_input_info_roundtrip(tmp_path, cid):
    """All fields round-trip, with numeric, string or no condition ids."""
    info = _info(cid)
    path = tmp_path / "inputInfo_ds.mat"
    write_input_info(path, info)
    back = read_input_info(path)
    assert back.train_inds.tolist() == [2, 3, 4, 5, 7] and back.valid_inds.tolist() == [1, 6]
    assert back.data_hash == "AbC123" and back.bin_ms == 2.0
    np.testing.assert_array_equal(back.time_ms, info.time_ms)
    np.testing.assert_array_equal(back.counts, info.counts)
    np.testing.assert_array_equal(back.true_rates, info.true_rates)
    np.testing.assert_array_equal(back.external_inputs, info.external_inputs)
    if cid is None:
        assert back.condition_id is None
    else:
        assert back.condition_id.tolist() == cid
    assert read_input_info_hash(path) == "AbC123"
    with h5py.File(path, "r") as f:  # what MATLAB sees: neurons x time x trials, all trials
        assert f["counts"].shape == (7, 5, 3) and f["truth"].shape == (7, 5, 3)
        assert f["externalInputs"].shape == (7, 5, 2)
        assert f["trainInds"].shape == (5, 1) and _matlab_class(f["validInds"]) == "double"


def test_input_info_shape_errors(tmp_path):
    """Arrays that do not match the split or time vector are rejected, nothing written."""
    info = _info([1] * 6, n=6)
    with pytest.raises(DataError, match="6 condition ids for 7 trials"):
        write_input_info(
            tmp_path / "i.mat",
            attrs.evolve(info, counts=None, true_rates=None, external_inputs=None),
        )
    with pytest.raises(DataError, match="counts has shape"):
        write_input_info(tmp_path / "i.mat", attrs.evolve(info, condition_id=None))
    assert list(tmp_path.iterdir()) == []


def _matlab_style_file(path, n_trials=3):
    """An inputInfo file laid out the way MATLAB's save -v7.3 writes it (built with raw h5py)."""
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 5, (4, 6, n_trials)).astype(float)  # MATLAB: N x T x trials
    with h5py.File(path, "w", userblock_size=512) as f:

        def put(name, data, cls, **attrs):
            ds = f.create_dataset(name, data=data)
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
            for k, v in attrs.items():
                ds.attrs[k] = v
            return ds

        put("trainInds", np.array([[2.0], [3.0]]), "double")  # 1 x 2 row in MATLAB
        put("validInds", np.array([[1]], dtype=np.uint16), "uint16")
        put(
            "paramInputDataHash",
            np.frombuffer("Xy12Zz".encode("utf-16-le"), np.uint16).reshape(6, 1),
            "char",
            MATLAB_int_decode=np.int32(2),
        )
        put("seq_timeVector", np.arange(6.0).reshape(1, 6), "double")
        put("seq_binSizeMs", np.array([[1.0]]), "double")
        refs = f.create_group("#refs#")
        rr = []
        for i, s in enumerate(["left", "right", "left"]):
            d = refs.create_dataset(
                f"b{i}", data=np.frombuffer(s.encode("utf-16-le"), np.uint16).reshape(-1, 1)
            )
            d.attrs["MATLAB_class"] = np.bytes_("char")
            rr.append(d.ref)
        ds = f.create_dataset(
            "conditionId", data=np.array([rr], dtype=h5py.ref_dtype), dtype=h5py.ref_dtype
        )
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
        put("counts", np.ascontiguousarray(counts.T), "double")
        put("truth", np.ascontiguousarray(counts[:, :, 0].T) + 0.5, "double")  # first trial only
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM")
    return counts


def test_reads_matlab_written_file(tmp_path):
    """A MATLAB-layout file: uint16 validInds, cellstr conditionId, first-trial-only truth."""
    path = tmp_path / "inputInfo_dataset001.mat"
    counts = _matlab_style_file(path)
    info = read_input_info(path)
    assert info.train_inds.tolist() == [2, 3] and info.valid_inds.tolist() == [1]
    assert info.data_hash == "Xy12Zz" and info.bin_ms == 1.0
    assert info.condition_id.tolist() == ["left", "right", "left"]
    np.testing.assert_array_equal(info.counts, np.transpose(counts, (2, 1, 0)))
    assert info.true_rates is None and info.extras["truth"].shape == (4, 6)
    assert read_input_info_hash(path) == "Xy12Zz"


def test_missing_and_foreign_files(tmp_path):
    """Missing files, non-inputInfo files and garbage give DataError naming the file."""
    with pytest.raises(DataError, match="does not exist"):
        read_input_info(tmp_path / "none.mat")
    assert read_input_info_hash(tmp_path / "none.mat") is None
    write_mat73(tmp_path / "other.mat", {"x": 1})
    with pytest.raises(DataError, match="'trainInds' is missing"):
        read_input_info(tmp_path / "other.mat")
    (tmp_path / "junk.txt").write_bytes(b"hello")
    with pytest.raises(DataError, match="neither an HDF5"):
        read_mat(tmp_path / "junk.txt")


def test_old_mat_without_scipy(tmp_path, monkeypatch):
    """A pre-v7.3 MAT-file without scipy raises MissingDependencyError naming the file."""
    path = tmp_path / "old.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file, Platform: GLNXA64".ljust(128, b" "))
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(MissingDependencyError, match="old.mat"):
        read_mat(path)


def test_old_mat_with_scipy(tmp_path):
    """With scipy, v5 MAT-files read into the same kinds of values."""
    sio = pytest.importorskip("scipy.io")
    path = tmp_path / "inputInfo_x.mat"
    counts = np.arange(24.0).reshape(2, 3, 4)  # MATLAB N x T x trials
    sio.savemat(
        path,
        {
            "trainInds": np.array([[2.0, 3.0, 4.0]]),
            "validInds": np.array([[1]], dtype=np.uint16),
            "paramInputDataHash": "abcdef",
            "seq_timeVector": np.arange(3.0)[:, None],
            "seq_binSizeMs": 1.0,
            "conditionId": np.array([["a"], ["b"], ["a"], ["c"]], dtype=object),
            "counts": counts,
        },
    )
    info = read_input_info(path)
    assert info.data_hash == "abcdef" and info.valid_inds.tolist() == [1]
    assert info.condition_id.tolist() == ["a", "b", "a", "c"]
    np.testing.assert_array_equal(info.counts, np.transpose(counts, (2, 1, 0)))
