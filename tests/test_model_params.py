"""model_params HDF5 files: reader against TF's files, writer reproducing them from checkpoints."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from conftest import TF_CASES, manifest

from lfads_runs.exceptions import MissingOutputError, ModelParamsError
from lfads_runs.io.checkpoint_state import read_checkpoint_state
from lfads_runs.io.model_params import (
    GLOBAL_STEP_KEY,
    is_adam_key,
    read_model_params,
    write_model_params,
)
from lfads_runs.io.tensorbundle import read_bundle


def _raw(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def _storage(path) -> dict[str, tuple]:
    """Per key: dtype, shape, layout, filters, chunks, compression, attribute count."""
    with h5py.File(path, "r") as f:
        assert len(f.attrs) == 0
        out = {}
        for k in f:
            d = f[k]
            assert isinstance(d, h5py.Dataset)
            pl = d.id.get_create_plist()
            out[k] = (
                d.dtype,
                d.shape,
                pl.get_layout(),
                pl.get_nfilters(),
                d.chunks,
                d.compression,
                len(d.attrs),
            )
        return out


@pytest.mark.parametrize("case", TF_CASES)
def test_reader_matches_h5py(tf_fixtures, case):
    """Every key of TF's model_params reads back bit-equal, with file dtype and shape."""
    path = tf_fixtures / case / "lfadsOutput" / "model_params"
    raw = _raw(path)
    got = read_model_params(path)
    assert list(got) == sorted(raw)
    for k, v in raw.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert got[k].tobytes() == v.tobytes(), k
    no_adam = read_model_params(path, exclude_adam=True)
    assert set(no_adam) == {k for k in raw if "Adam" not in k}
    assert no_adam[GLOBAL_STEP_KEY].dtype == np.int64


@pytest.mark.parametrize("case", TF_CASES)
def test_writer_reproduces_tf_model_params(tf_fixtures, case, tmp_path):
    """Dumping the LVE TF checkpoint gives TF's model_params: keys, dtypes, shapes, bits, storage."""
    out = tf_fixtures / case / "lfadsOutput"
    prefix = read_checkpoint_state(out, "checkpoint_lve").model_checkpoint_path
    dest = tmp_path / "model_params"
    write_model_params(dest, read_bundle(prefix))
    ref, mine = _raw(out / "model_params"), _raw(dest)
    assert set(mine) == set(ref)
    for k in ref:
        assert mine[k].dtype == ref[k].dtype and mine[k].shape == ref[k].shape, k
        assert mine[k].tobytes() == ref[k].tobytes(), k
    assert _storage(dest) == _storage(out / "model_params")
    assert [p.name for p in tmp_path.iterdir()] == ["model_params"]


def test_subset_and_missing_names(tf_fixtures):
    """names reads only those keys, in that order; an absent key is a ModelParamsError."""
    path = tf_fixtures / "ctrl1" / "lfadsOutput" / "model_params"
    got = read_model_params(path, ["LFADS_gen_gen_2_fac_W:0", GLOBAL_STEP_KEY])
    assert list(got) == ["LFADS_gen_gen_2_fac_W:0", GLOBAL_STEP_KEY]
    assert int(got[GLOBAL_STEP_KEY]) == manifest("ctrl1")["lve_step"]
    with pytest.raises(ModelParamsError, match="missing key.*LFADS_nope:0") as e:
        read_model_params(path, ["LFADS_nope:0"])
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    """A missing file is a MissingOutputError naming it."""
    with pytest.raises(MissingOutputError, match="model_params"):
        read_model_params(tmp_path / "model_params")


def test_truncated_file(tf_fixtures, tmp_path):
    """A truncated copy is a ModelParamsError naming the file, not an h5py OSError."""
    src = tf_fixtures / "stitch2" / "lfadsOutput" / "model_params"
    dst = tmp_path / "model_params"
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ModelParamsError) as e:
        read_model_params(dst)
    assert str(dst) in str(e.value)
    dst.write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelParamsError, match="cannot be opened as HDF5"):
        read_model_params(dst)


def test_non_flat_file(tmp_path):
    """A group inside model_params is reported."""
    p = tmp_path / "model_params"
    with h5py.File(p, "w") as f:
        f.create_group("LFADS")
    with pytest.raises(ModelParamsError, match="flat"):
        read_model_params(p)


def test_other_storage_is_read_correctly(tmp_path):
    """Chunked+compressed, compact, empty and big-endian datasets take the h5py path correctly."""
    p = tmp_path / "mp"
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 20)).astype(np.float32)
    with h5py.File(p, "w") as f:
        f.create_dataset("gz:0", data=a, compression="gzip", shuffle=True)
        f.create_dataset("be:0", data=a.astype(">f4"))
        f.create_dataset("empty:0", data=np.zeros((0, 4), np.float32))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        sid = h5py.h5s.create_simple((3,))
        dsid = h5py.h5d.create(f.id, b"compact:0", h5py.h5t.NATIVE_FLOAT, sid, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(3, dtype=np.float32))
        f.create_dataset("plain:0", data=a)
    got = read_model_params(p)
    for k in ("gz:0", "be:0", "plain:0"):
        np.testing.assert_array_equal(got[k], a)
        assert got[k].dtype.isnative
    assert got["empty:0"].shape == (0, 4)
    np.testing.assert_array_equal(got["compact:0"], [0, 1, 2])


def test_writer_dtypes_and_order(tmp_path):
    """float64 is stored as float32, global_step as int64; keys keep the given order."""
    p = tmp_path / "model_params"
    write_model_params(
        p,
        {
            "LFADS/global_step": np.int32(12),
            "LFADS/gen/gen_2_fac/W": np.ones((3, 2)),
            "LFADS/learning_rate": 0.01,
        },
    )
    with h5py.File(p, "r") as f:
        assert f[GLOBAL_STEP_KEY].dtype == np.int64 and f[GLOBAL_STEP_KEY][()] == 12
        assert f["LFADS_gen_gen_2_fac_W:0"].dtype == np.float32
        assert f["LFADS_learning_rate:0"].shape == ()
        order = sorted(f, key=lambda k: f[k].id.get_offset())
    assert order == [GLOBAL_STEP_KEY, "LFADS_gen_gen_2_fac_W:0", "LFADS_learning_rate:0"]


def test_writer_rejects_bad_input_and_leaves_nothing(tmp_path, monkeypatch):
    """Key collisions, non-numeric values and a crash mid-write leave no file behind."""
    p = tmp_path / "model_params"
    with pytest.raises(ModelParamsError, match="two tensors map to the HDF5 key"):
        write_model_params(p, {"LFADS/a/b": np.ones(1), "LFADS/a_b": np.ones(1)})
    with pytest.raises(ModelParamsError, match="cannot store dtype"):
        write_model_params(p, {"LFADS/s": np.array(["x"])})
    with pytest.raises(ModelParamsError, match="integer scalar"):
        write_model_params(p, {"LFADS/global_step": np.float32(1)})
    calls = []

    def boom(self, name, **kw):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return orig(self, name, **kw)

    orig = h5py.Group.create_dataset
    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_model_params(p, {"LFADS/a": np.ones(2), "LFADS/b": np.ones(2)})
    assert list(tmp_path.iterdir()) == []


def test_existing_file_replaced_atomically(tf_fixtures, tmp_path):
    """Writing over an existing model_params replaces it whole."""
    p = tmp_path / "model_params"
    shutil.copy(tf_fixtures / "stitch2" / "lfadsOutput" / "model_params", p)
    write_model_params(p, {"LFADS/global_step": np.int64(3)})
    assert list(read_model_params(p)) == [GLOBAL_STEP_KEY]


def test_is_adam_key():
    """Adam slot keys are recognised like lfads-run-manager does."""
    assert is_adam_key("LFADS_LFADS_gen_gen_2_fac_W_Adam_1:0")
    assert not is_adam_key("LFADS_gen_gen_2_fac_W:0")
