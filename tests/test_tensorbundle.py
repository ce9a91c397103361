"""TensorBundle (TF checkpoint V2) reader and writer against TensorFlow's own files."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import TF_CASES, TF_FIXTURES, manifest

from lfads_runs.exceptions import CheckpointError
from lfads_runs.io import tensorbundle as tb
from lfads_runs.io.crc32c import crc32c, unmask
from lfads_runs.model_spec import hdf5_key


def _all_prefixes() -> list[str]:
    return sorted(str(p)[: -len(".index")] for p in TF_FIXTURES.glob("*/lfadsOutput/*.index"))


def _lve_prefix(out: Path) -> Path:
    line = next(
        ln for ln in (out / "checkpoint_lve").read_text().splitlines() if ln.startswith("model_")
    )
    return out / Path(line.split('"')[1]).name


def _copy_ckpt(prefix: Path, dst: Path) -> Path:
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(f"{prefix}{suffix}", dst / f"ckpt{suffix}")
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst / "ckpt"


def test_fixture_checkpoints_found():
    """Every checkpoint file pair the manifests list is found, and nothing else."""
    listed = {
        str(TF_FIXTURES / case / f)[: -len(".index")]
        for case in TF_CASES
        for f in manifest(case)["files"]
        if f.endswith(".index")
    }
    assert len(listed) >= 2 * len(TF_CASES)  # the lve and the latest checkpoint of each case
    assert sorted(listed) == _all_prefixes()


@pytest.mark.parametrize("prefix", _all_prefixes(), ids=lambda p: "/".join(Path(p).parts[-3::2]))
def test_rewrite_is_byte_identical(prefix, tmp_path):
    """Reading a TF checkpoint and writing it back reproduces TF's .index and .data exactly."""
    tensors = tb.read_bundle(prefix)
    out = tmp_path / "copy.ckpt-1"
    tb.write_bundle(out, tensors)
    assert tb.index_path(out).read_bytes() == tb.index_path(prefix).read_bytes()
    assert tb.data_path(out).read_bytes() == tb.data_path(prefix).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "copy.ckpt-1.data-00000-of-00001",
        "copy.ckpt-1.index",
    ]


@pytest.mark.parametrize("case", TF_CASES)
def test_lve_checkpoint_equals_model_params(tf_fixtures, case):
    """Every tensor of the LVE checkpoint is bit-identical to TF's model_params entry."""
    out = tf_fixtures / case / "lfadsOutput"
    tensors = tb.read_bundle(_lve_prefix(out))
    with h5py.File(out / "model_params", "r") as f:
        assert set(f) == {hdf5_key(k) for k in tensors}
        for name, value in tensors.items():
            ref = f[hdf5_key(name)][()]
            assert value.dtype == ref.dtype, name
            assert value.shape == ref.shape, name
            assert value.tobytes() == ref.tobytes(), name
    assert tensors["LFADS/global_step"].dtype == np.int64
    assert tensors["LFADS/global_step"].shape == ()


def test_index_metadata(tf_fixtures):
    """bundle_index decodes dtype, shape, offsets (key order, dense) and the stored CRCs."""
    prefix = _lve_prefix(tf_fixtures / "stitch2" / "lfadsOutput")
    info = tb.bundle_index(prefix)
    names = list(info)
    assert names == sorted(names, key=lambda s: s.encode())
    offset = 0
    data = tb.data_path(prefix).read_bytes()
    for i in info.values():
        assert i.offset == offset and i.shard_id == 0
        assert unmask(i.crc32c) == crc32c(data[i.offset : i.offset + i.size])
        offset += i.size
    assert offset == len(data)
    w = info["LFADS/gen/GenGRU/Candidate/rh_2_c/W"]
    assert (w.dtype, w.shape, w.size) == (np.dtype("<f4"), (16, 16), 1024)
    assert info["LFADS/global_step"].dtype == np.dtype("<i8")
    assert tb.read_bundle_header(prefix) == tb.BundleHeader(num_shards=1, producer=1)


def test_read_subset_and_arrays_are_writable(tf_fixtures):
    """names selects tensors in the requested order; arrays are ordinary writable arrays."""
    prefix = _lve_prefix(tf_fixtures / "ctrl1" / "lfadsOutput")
    want = ["LFADS/global_step", "LFADS/con/c0"]
    got = tb.read_bundle(prefix, names=want)
    assert list(got) == want
    assert int(got["LFADS/global_step"]) == manifest("ctrl1")["lve_step"]
    got["LFADS/con/c0"][0, 0] = 1.0
    assert got["LFADS/con/c0"].flags.writeable and got["LFADS/con/c0"].flags.aligned


def test_missing_tensor(tf_fixtures):
    """Asking for a tensor the checkpoint lacks names the tensor and the index file."""
    prefix = _lve_prefix(tf_fixtures / "ctrl1" / "lfadsOutput")
    with pytest.raises(CheckpointError, match=r"'LFADS/nope'.*not in the checkpoint") as e:
        tb.read_bundle(prefix, names=["LFADS/con/c0", "LFADS/nope"])
    assert str(tb.index_path(prefix)) in str(e.value)


def test_crc_mismatch_names_tensor_and_file(tf_fixtures, tmp_path):
    """One flipped bit in the data shard is caught and attributed to its tensor."""
    src = _lve_prefix(tf_fixtures / "ctrl1" / "lfadsOutput")
    prefix = _copy_ckpt(src, tmp_path)
    info = tb.bundle_index(prefix)["LFADS/gen/gen_2_fac/W"]
    data = bytearray(tb.data_path(prefix).read_bytes())
    data[info.offset + 5] ^= 0x04
    tb.data_path(prefix).write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match=r"CRC mismatch for tensor 'LFADS/gen/gen_2_fac/W'"
    ) as e:
        tb.read_bundle(prefix)
    assert str(tb.data_path(prefix)) in str(e.value)
    # Unverified reads succeed (and return the corrupted value).
    assert tb.read_bundle(prefix, verify=False)["LFADS/gen/gen_2_fac/W"].shape == info.shape


def test_truncated_data_shard(tf_fixtures, tmp_path):
    """A short data file names the first tensor that runs past its end."""
    prefix = _copy_ckpt(_lve_prefix(tf_fixtures / "stitch2" / "lfadsOutput"), tmp_path)
    data = tb.data_path(prefix).read_bytes()
    tb.data_path(prefix).write_bytes(data[: len(data) - 10])
    last = list(tb.bundle_index(prefix))[-1]
    with pytest.raises(CheckpointError, match="truncated") as e:
        tb.read_bundle(prefix)
    assert repr(last) in str(e.value) and str(tb.data_path(prefix)) in str(e.value)


def test_missing_shard(tf_fixtures, tmp_path):
    """A missing data file is reported with its path."""
    prefix = _copy_ckpt(_lve_prefix(tf_fixtures / "stitch2" / "lfadsOutput"), tmp_path)
    tb.data_path(prefix).unlink()
    with pytest.raises(CheckpointError, match="does not exist") as e:
        tb.read_bundle(prefix)
    assert str(tb.data_path(prefix)) in str(e.value)


def test_missing_index(tmp_path):
    """A prefix without an index file is a CheckpointError naming the index."""
    with pytest.raises(CheckpointError, match=r"ckpt-3\.index does not exist"):
        tb.read_bundle(tmp_path / "ckpt-3")
    assert not tb.checkpoint_exists(tmp_path / "ckpt-3")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda b: b[:-1] + b"\x00", "bad magic"),
        (lambda b: b[:20], "too short"),
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "CRC mismatch in the data block"),
        (lambda b: b"", "too short"),
    ],
    ids=["magic", "truncated", "block-crc", "empty"],
)
def test_corrupt_index(tf_fixtures, tmp_path, damage, match):
    """Damaged index files raise CheckpointError naming the index file."""
    prefix = _copy_ckpt(_lve_prefix(tf_fixtures / "gauss1" / "lfadsOutput"), tmp_path)
    ipath = tb.index_path(prefix)
    ipath.write_bytes(damage(ipath.read_bytes()))
    with pytest.raises(CheckpointError, match=match) as e:
        tb.read_bundle(prefix)
    assert str(ipath) in str(e.value)


def test_roundtrip_dtypes_and_shapes(tmp_path):
    """Every supported dtype and shape (scalars, empty, big-endian input) round-trips."""
    rng = np.random.default_rng(0)
    tensors = {
        "a/float32": rng.standard_normal((3, 4)).astype(np.float32),
        "a/float64": rng.standard_normal(5),
        "a/float16": rng.standard_normal((2, 2)).astype(np.float16),
        "b/int64_scalar": np.int64(-5),
        "b/int32": np.arange(7, dtype=np.int32),
        "b/uint8": np.arange(9, dtype=np.uint8),
        "b/int8": np.array([-1, 2], dtype=np.int8),
        "b/bool": np.array([True, False, True]),
        "c/empty": np.zeros((0, 3), dtype=np.float32),
        "c/bigendian": np.arange(6, dtype=">f4").reshape(2, 3),
        "c/fortran": np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32)),
        "c/float_scalar": np.float32(0.25),
    }
    prefix = tmp_path / "rt.ckpt-7"
    tb.write_bundle(prefix, tensors)
    back = tb.read_bundle(prefix)
    assert list(back) == sorted(tensors)
    for k, v in tensors.items():
        v = np.asarray(v)
        assert back[k].shape == v.shape, k
        assert back[k].dtype == v.dtype.newbyteorder("="), k
        np.testing.assert_array_equal(back[k], v)
    assert tb.data_path(prefix).stat().st_size == sum(
        np.asarray(v).nbytes for v in tensors.values()
    )


def test_many_tensors_span_several_blocks(tmp_path):
    """An index larger than one 256 kB block is split into blocks and read back."""
    tensors = {f"LFADS/layer_{i:05d}/" + "w" * 60: np.float32(i) for i in range(6000)}
    prefix = tmp_path / "big.ckpt-1"
    tb.write_bundle(prefix, tensors)
    raw = tb.index_path(prefix).read_bytes()
    footer = raw[-48:]
    _, p = tb._varint(footer, 0)
    _, p = tb._varint(footer, p)
    idx_off, p = tb._varint(footer, p)
    idx_size, _ = tb._varint(footer, p)
    index_block = tb._read_block(raw, idx_off, idx_size, Path("x"), "index")
    assert len(list(tb._entries(index_block, Path("x")))) == 2  # two data blocks
    back = tb.read_bundle(prefix)
    assert len(back) == 6000
    assert all(float(back[k]) == float(v) for k, v in tensors.items())


def test_separator_and_successor():
    """LevelDB's bytewise comparator shortening rules."""
    assert tb._separator(b"abcd", b"abzz") == b"abd"
    assert tb._separator(b"abc", b"abd") == b"abc"  # +1 would not be < limit
    assert tb._separator(b"ab", b"abc") == b"ab"  # prefix: unchanged
    assert tb._successor(b"LFADS/z") == b"M"
    assert tb._successor(b"\xff\xffa") == b"\xff\xffb"
    assert tb._successor(b"\xff") == b"\xff"


def test_writer_rejects_bad_input(tmp_path):
    """Empty names and dtypes without a TensorFlow equivalent are refused; nothing is written."""
    with pytest.raises(CheckpointError, match="non-empty"):
        tb.write_bundle(tmp_path / "x", {"": np.float32(1)})
    with pytest.raises(CheckpointError, match="'s'.*cannot be stored"):
        tb.write_bundle(tmp_path / "x", {"s": np.array(["a"])})
    assert list(tmp_path.iterdir()) == []
