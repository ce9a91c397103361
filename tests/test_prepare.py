"""Tests of data preparation (lfads_runs.data.prepare): input files, idempotency, links, bad input."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from conftest import manifest, n_trials

from lfads_runs.data.dataset import DatasetData
from lfads_runs.data.prepare import (
    input_file_names,
    link_inputs,
    prepare_datasets,
    prepared_status,
)
from lfads_runs.data.synthetic import lorenz
from lfads_runs.exceptions import ConfigError, DataError
from lfads_runs.io.input_info import read_input_info
from lfads_runs.io.lfads_input import find_input_files, read_lfads_input

KW = dict(
    spike_bin_ms=10,
    train_to_test_ratio=4,
    batch_size=16,
    output_dist="poisson",
    factors_dim=6,
    use_alignment_matrix=True,
    use_single_dataset_alignment_matrix=False,
    alignment_approach="regressGlobalPCs",
    alignment_extra_args=None,
    data_hash="RE1kuL",
)


def _kw(case):
    """KW with the split of a reference case."""
    return {**KW, "train_to_test_ratio": manifest(case)["synthetic_data"]["train_to_test_ratio"]}


def _layout(path):
    with h5py.File(path, "r") as f:
        return {
            k: (d.shape, d.dtype, d.compression, d.compression_opts, d.shuffle, d.chunks)
            for k, d in f.items()
        }


def _fixture_datasets(case):
    """The original trials of a reference case, rebuilt from its input files and truth.h5."""
    out = []
    for path in sorted((case / "lfadsInput").glob("lfads_*.h5")):
        name = path.stem.removeprefix("lfads_")
        inp = read_lfads_input(path)
        inds = [inp.train_inds.astype(int) - 1, inp.valid_inds.astype(int) - 1]

        def whole(train, valid, inds=inds):
            if train is None:
                return None
            arr = np.empty((train.shape[0] + valid.shape[0], *train.shape[1:]), train.dtype)
            arr[inds[0]], arr[inds[1]] = train, valid
            return arr

        with h5py.File(case / "truth.h5", "r") as f:
            cid = f[name]["condition_id"][()]
        data = DatasetData(
            whole(inp.train_data, inp.valid_data),
            bin_ms=10,
            condition_id=cid,
            true_rates=whole(inp.train_truth, inp.valid_truth),
            external_inputs=whole(inp.train_ext_input, inp.valid_ext_input),
        )
        out.append((name, data))
    return out


def test_reproduces_stitch_fixture_inputs(tf_fixtures, tmp_path):
    """Prepared files equal stitch2's input files: keys, dtypes, shapes, filters, values."""
    case = tf_fixtures / "stitch2"
    res = prepare_datasets(_fixture_datasets(case), out_dir=tmp_path / "data", **_kw("stitch2"))
    assert res.written == ("dataset001", "dataset002") and res.alignment is not None
    ours = find_input_files(tmp_path / "data")
    assert list(ours) == ["dataset001.h5", "dataset002.h5"]
    for ds, path in ours.items():
        ref = case / "lfadsInput" / f"lfads_{ds}"
        assert _layout(path) == _layout(ref)
        with h5py.File(path, "r") as a, h5py.File(ref, "r") as b:
            for k in b:
                np.testing.assert_allclose(a[k][()], b[k][()], rtol=0, atol=1e-12, err_msg=k)
    info = read_input_info(tmp_path / "data" / "inputInfo_dataset002.mat")
    n = n_trials("stitch2", "dataset002")["all"]
    r = manifest("stitch2")["synthetic_data"]["datasets"][1]["repeats_per_condition"]
    assert info.data_hash == "RE1kuL" and info.counts.shape == (n, 50, 23)
    assert info.true_rates.shape == (n, 50, 23)
    assert info.condition_id[: r + 1].tolist() == [1] * r + [2]
    assert res["dataset002"].summary.n_neurons == 23


@pytest.mark.parametrize("case", ["ctrl1", "gauss1", "extin1"])
def test_reproduces_single_dataset_fixtures(tf_fixtures, tmp_path, case):
    """Single-dataset Poisson, Gaussian and external-input cases reproduce their input files exactly."""
    dist = "gaussian" if "gauss" in case else "poisson"
    kw = {**_kw(case), "output_dist": dist, "factors_dim": 5, "ext_input_dim": int("extin" in case)}
    prepare_datasets(_fixture_datasets(tf_fixtures / case), out_dir=tmp_path, **kw)
    ref = tf_fixtures / case / "lfadsInput" / "lfads_dataset001.h5"
    assert _layout(tmp_path / "lfads_dataset001.h5") == _layout(ref)
    with h5py.File(tmp_path / "lfads_dataset001.h5", "r") as a, h5py.File(ref, "r") as b:
        for k in b:
            np.testing.assert_array_equal(a[k][()], b[k][()])


def _lorenz(n_datasets=2, trials=6, duration=40, seed=0):
    d = lorenz(
        n_datasets=n_datasets,
        n_conditions=5,
        trials_per_condition=trials,
        n_neurons=[7, 9][:n_datasets],
        duration_ms=duration,
        bin_ms=1,
        mean_rate_hz=50,
        seed=seed,
    )
    return [(x.name, x.to_dataset_data()) for x in d.datasets]


SMALL = {**KW, "spike_bin_ms": 2, "batch_size": 4, "factors_dim": 3}


def test_rebinned_lorenz(tmp_path):
    """1-ms data rebinned to 2 ms: summed counts and truth, conversion factor 1/2, raw counts in inputInfo."""
    data = _lorenz()
    res = prepare_datasets(data, out_dir=tmp_path, **SMALL)
    inp = read_lfads_input(tmp_path / "lfads_dataset002.h5")
    raw = data[1][1]
    assert inp.train_data.shape == (24, 20, 9) and inp.valid_data.shape == (6, 20, 9)
    np.testing.assert_array_equal(inp.valid_data[1], raw.counts[5].reshape(20, 2, 9).sum(1))
    np.testing.assert_allclose(inp.train_truth[0], raw.true_rates[1].reshape(20, 2, 9).sum(1))
    assert inp.conversion_factor.tolist() == [0.5]
    assert inp.alignment_matrix_cxf.shape == (9, 3)
    info = read_input_info(tmp_path / "inputInfo_dataset002.mat")
    np.testing.assert_array_equal(info.counts, raw.counts)
    assert info.bin_ms == 1.0 and info.time_ms.size == 40
    assert res.alignment.global_pcs.shape == (3, 20, 5)


def test_idempotent_regenerate_and_hash_mismatch(tmp_path):
    """Up-to-date files are kept; regenerate rewrites; another hash is an error unless regenerate."""
    data = _lorenz()
    prepare_datasets(data, out_dir=tmp_path, **SMALL)
    files = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = prepare_datasets(data, out_dir=tmp_path, **SMALL)
    assert again.written == () and again.kept == ("dataset001", "dataset002")
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert all(
        s.state == "ok"
        for s in prepared_status(tmp_path, ["dataset001", "dataset002"], "RE1kuL").values()
    )
    (tmp_path / "inputInfo_dataset001.mat").unlink()
    assert prepared_status(tmp_path, ["dataset001"], "data_RE1kuL")["dataset001"].state == "partial"
    part = prepare_datasets(data, out_dir=tmp_path, **SMALL)
    assert part.written == ("dataset001",)
    assert (tmp_path / "lfads_dataset002.h5").stat().st_mtime_ns == stamps[
        tmp_path / "lfads_dataset002.h5"
    ]
    with pytest.raises(DataError, match="another data hash.*RE1kuL.*expected ZZZZZZ.*regenerate"):
        prepare_datasets(data, out_dir=tmp_path, **{**SMALL, "data_hash": "ZZZZZZ"})
    res = prepare_datasets(
        data, out_dir=tmp_path, regenerate=True, **{**SMALL, "data_hash": "data_ZZZZZZ"}
    )
    assert res.written == ("dataset001", "dataset002")
    assert read_input_info(tmp_path / "inputInfo_dataset002.mat").data_hash == "ZZZZZZ"


@pytest.mark.parametrize(
    ("value", "match"),
    [(np.nan, "'dataset002'.*NaN"), (-1.0, "'dataset002'.*negative"), (0.5, "'dataset002'.*whole")],
)
def test_bad_values_write_nothing(tmp_path, value, match):
    """A bad value in the second dataset fails before anything is written."""
    data = _lorenz()
    counts = data[1][1].counts.astype(float)
    counts[3, 2, 1] = value
    data[1] = ("dataset002", DatasetData(counts, bin_ms=1, condition_id=data[1][1].condition_id))
    with pytest.raises(DataError, match=match):
        prepare_datasets(data, out_dir=tmp_path, **SMALL)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_other_bad_inputs(tmp_path):
    """Too few trials, indivisible bins, unequal lengths, missing condition ids, ext-input mismatch."""
    data = _lorenz()
    with pytest.raises(DataError, match="'dataset001': 30 trials.*more than c_batch_size = 6"):
        prepare_datasets(data, out_dir=tmp_path, **{**SMALL, "batch_size": 6})
    with pytest.raises(
        DataError, match="'dataset001': spike_bin_ms = 2.5 ms is not an integer multiple"
    ):
        prepare_datasets(data, out_dir=tmp_path, **{**SMALL, "spike_bin_ms": 2.5})
    short = [
        data[0],
        (
            "dataset002",
            DatasetData(data[1][1].counts[:, :30], condition_id=data[1][1].condition_id),
        ),
    ]
    with pytest.raises(DataError, match="same number of time bins.*dataset001: 20, dataset002: 15"):
        prepare_datasets(short, out_dir=tmp_path, **SMALL)
    nocond = [data[0], ("dataset002", DatasetData(data[1][1].counts))]
    with pytest.raises(DataError, match="'dataset002' has no condition ids"):
        prepare_datasets(nocond, out_dir=tmp_path, **SMALL)
    prepare_datasets(
        nocond, out_dir=tmp_path / "noalign", **{**SMALL, "use_alignment_matrix": False}
    )
    with pytest.raises(DataError, match="0 external inputs but c_ext_input_dim is 1"):
        prepare_datasets(data, out_dir=tmp_path, ext_input_dim=1, **SMALL)
    with pytest.raises(ConfigError, match="duplicate"):
        prepare_datasets([data[0], data[0]], out_dir=tmp_path, **SMALL)
    with pytest.raises(ConfigError, match="output_dist"):
        prepare_datasets(data, out_dir=tmp_path, **{**SMALL, "output_dist": "poison"})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["noalign"]


def test_gaussian_and_single_dataset_alignment(tmp_path):
    """Gaussian data are float64; single-dataset alignment is zero-padded to factors_dim."""
    data = _lorenz(n_datasets=1)
    name, d = data[0]
    noisy = DatasetData(
        d.counts + np.random.default_rng(0).normal(size=d.counts.shape),
        bin_ms=1,
        condition_id=d.condition_id,
    )
    kw = {
        **SMALL,
        "output_dist": "gaussian",
        "factors_dim": 12,
        "use_single_dataset_alignment_matrix": True,
    }
    prepare_datasets([(name, noisy)], out_dir=tmp_path, **kw)
    inp = read_lfads_input(tmp_path / "lfads_dataset001.h5")
    assert inp.train_data.dtype == np.float64 and inp.conversion_factor is None
    assert inp.alignment_matrix_cxf.shape == (7, 12) and np.all(
        inp.alignment_matrix_cxf[:, 7:] == 0
    )
    with pytest.raises(DataError, match="for Poisson output"):
        prepare_datasets(
            [(name, noisy)], out_dir=tmp_path / "p", **{**kw, "output_dist": "poisson"}
        )


def test_link_inputs(tmp_path):
    """Relative links into the shared folder; kept when correct; replaced when wrong."""
    data = _lorenz(n_datasets=1)
    src = tmp_path / "data_RE1kuL" / "single"
    prepare_datasets(data, out_dir=src, **SMALL)
    dst = tmp_path / "param_X" / "single" / "lfadsInput"
    links = link_inputs(src, dst, input_file_names("dataset001"))
    h5 = links["lfads_dataset001.h5"]
    assert h5.is_symlink() and os.readlink(h5) == "../../../data_RE1kuL/single/lfads_dataset001.h5"
    assert h5.resolve() == (src / "lfads_dataset001.h5").resolve()
    assert find_input_files(dst) == {"dataset001.h5": h5}
    (dst / "inputInfo_dataset001.mat").unlink()
    (dst / "inputInfo_dataset001.mat").symlink_to("elsewhere.mat")
    link_inputs(src, dst, input_file_names("dataset001"))
    assert read_input_info(dst / "inputInfo_dataset001.mat").data_hash == "RE1kuL"
    with pytest.raises(DataError, match="prepare the data first"):
        link_inputs(src, dst, ["lfads_nope.h5"])


def test_link_inputs_copies_without_symlinks(tmp_path, monkeypatch):
    """Where symlinks are refused the files are copied, and refreshed when the source changes."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.h5").write_bytes(b"one")

    def refuse(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", refuse)
    out = link_inputs(src, tmp_path / "dst", ["a.h5"])
    assert not out["a.h5"].is_symlink() and out["a.h5"].read_bytes() == b"one"
    (src / "a.h5").write_bytes(b"second")
    link_inputs(src, tmp_path / "dst", ["a.h5"])
    assert out["a.h5"].read_bytes() == b"second"
