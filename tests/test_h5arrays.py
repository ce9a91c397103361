"""lfads_runs.io.h5arrays: the reader and writer of plain HDF5 files of named arrays."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lfads_runs.exceptions import DataError
from lfads_runs.io.h5arrays import H5Array, H5Group, open_arrays, read_arrays, write_arrays
from lfads_runs.io.split_keys import read_heldout_count


def _tree() -> H5Group:
    big = np.arange(2000, dtype=np.float32).reshape(20, 10, 10)
    return H5Group(
        {"description": "a test file", "version": 3},
        {
            "counts": H5Array(big, attrs={"units": "counts"}, compress=True),
            "scalar": H5Array(np.float64(2.5), compress=True),
            "empty": H5Array(np.zeros((0, 3)), compress=True),
            "names": H5Array(np.array(["a", "bé"], dtype=object), compress=True),
            "plain": H5Array(np.arange(5)),
            "sub": H5Group({"kind": "x"}, {"w": H5Array(np.eye(2))}),
        },
    )


def test_write_then_read_back(tmp_path):
    path = tmp_path / "out" / "f.h5"
    write_arrays(path, _tree())
    with h5py.File(path, "r") as f:
        assert f.attrs["description"] == "a test file" and f.attrs["version"] == 3
        assert f["counts"].compression == "gzip" and f["counts"].shuffle
        assert f["counts"].compression_opts == 4
        assert f["counts"].attrs["units"] == "counts"
        # HDF5 cannot compress scalars or empty arrays; strings are stored as text
        assert f["scalar"].compression is None and f["empty"].compression is None
        assert f["plain"].compression is None
        assert h5py.check_string_dtype(f["names"].dtype) is not None
        assert f["sub"].attrs["kind"] == "x"
    with open_arrays(path) as reader:
        assert sorted(reader.names) == ["counts", "empty", "names", "plain", "scalar", "sub/w"]
        assert reader.get("missing") is None
        np.testing.assert_array_equal(reader.get("sub/w"), np.eye(2))
        assert reader.get("names").tolist() == ["a", "bé"]  # decoded to str
        with pytest.raises(DataError, match=r"f\.h5: 'sub' is a group, not an array"):
            reader.get("sub")
    got = read_arrays(path, ["counts", "scalar"])
    assert got["counts"].shape == (20, 10, 10) and got["scalar"] == 2.5


def test_read_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "f.h5"
    write_arrays(path, H5Group(members={"a": H5Array(np.ones(3))}))
    with pytest.raises(DataError, match=r"f\.h5: no array 'latents'; the file holds a$"):
        read_arrays(path, ["a", "latents"])
    (tmp_path / "text.h5").write_text("not HDF5")
    with pytest.raises(DataError, match=r"cannot read .*text\.h5 as HDF5"):
        read_arrays(tmp_path / "text.h5", ["a"])
    with pytest.raises(DataError, match=r"cannot read .*absent\.h5 as HDF5"):
        read_arrays(tmp_path / "absent.h5", ["a"])


def test_damaged_chunk_is_one_data_error(tmp_path):
    path = tmp_path / "f.h5"
    write_arrays(path, H5Group(members={"x": H5Array(np.random.rand(50, 40), compress=True)}))
    with h5py.File(path, "r") as f:
        info = f["x"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:  # overwrite the compressed chunk with garbage
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    with open_arrays(path) as reader, pytest.raises(DataError, match="is damaged"):
        reader.get("x")


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.h5"
    write_arrays(path, H5Group({"v": 1}, {"a": H5Array(np.ones(3))}))
    before = path.read_bytes()
    bad = H5Group({"v": 2}, {"a": H5Array(np.ones(3)), "b": H5Array({"not": "an array"})})
    with pytest.raises(TypeError):
        write_arrays(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]  # no temporary file left


def test_read_heldout_count(tmp_path):
    path = tmp_path / "lfads_d.h5"
    write_arrays(path, H5Group(members={"train_data": H5Array(np.zeros((2, 3, 4)))}))
    assert read_heldout_count(path) == 0
    write_arrays(
        path,
        H5Group(
            members={
                "train_data": H5Array(np.zeros((2, 3, 4))),
                "heldout_neurons": H5Array(np.array([1, 3])),
            }
        ),
    )
    assert read_heldout_count(path) == 2
