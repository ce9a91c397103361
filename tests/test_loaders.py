"""Tests of the dataset loaders (lfads_runs.data.loaders) on small generated files."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from lfads_runs.data.dataset import DatasetData
from lfads_runs.data.loaders import LOADERS, SUFFIX_KINDS, load_dataset, load_from_options
from lfads_runs.exceptions import ConfigError, DataError, MissingDependencyError
from lfads_runs.io.matfile import write_mat73

RNG = np.random.default_rng(7)
COUNTS = RNG.integers(0, 4, (6, 10, 3))  # trials x time x neurons
RATES = RNG.random((6, 10, 3))
EXT = RNG.random((6, 10, 2))
TIME = np.arange(10) * 2.0 - 6.0
COND = np.array([1, 2, 1, 2, 3, 3])


def test_registry_covers_every_suffix():
    """Every suffix maps to a registered loader."""
    assert set(SUFFIX_KINDS.values()) == set(LOADERS) == {"npz", "hdf5", "mat", "nwb"}


def test_npz_default_keys(tmp_path):
    """Default keys load every field; the bin width comes from the file."""
    p = tmp_path / "s.npz"
    np.savez(
        p,
        counts=COUNTS,
        time_ms=TIME,
        condition_id=COND,
        true_rates=RATES,
        external_inputs=EXT,
        bin_ms=2.0,
    )
    d = load_dataset(p)
    np.testing.assert_array_equal(d.counts, COUNTS)
    np.testing.assert_array_equal(d.time_ms, TIME)
    assert d.bin_ms == 2.0 and d.condition_id.tolist() == COND.tolist()
    assert d.true_rates.shape == (6, 10, 3) and d.n_ext_inputs == 2
    assert str(p) in d.source


def test_npz_key_mapping_strings_and_defaults(tmp_path):
    """keys rename or switch off fields; string conditions; bin from the time vector, else 1 ms."""
    p = tmp_path / "s.npz"
    np.savez(p, y=COUNTS, t=TIME, cond=np.array(["a", "b", "a", "b", "c", "c"]), true_rates=RATES)
    d = load_dataset(
        p, keys={"counts": "y", "time_ms": "t", "condition_id": "cond", "true_rates": None}
    )
    assert d.bin_ms == 2.0 and d.true_rates is None
    assert d.condition_id.dtype.kind == "U" and d.condition_id[4] == "c"
    np.savez(p, counts=COUNTS)
    assert load_dataset(p).bin_ms == 1.0
    assert load_dataset(p, bin_ms=5).bin_ms == 5.0


def test_npz_errors(tmp_path):
    """Missing keys (with a suggestion), object arrays and bad options are named."""
    p = tmp_path / "s.npz"
    np.savez(p, spikez=COUNTS)
    with pytest.raises(DataError, match=r"no counts found .*spikez"):
        load_dataset(p)
    with pytest.raises(
        DataError, match=r"'spikes' for counts not found \(did you mean 'spikez'\?\)"
    ):
        load_dataset(p, keys={"counts": "spikes"})
    with pytest.raises(ConfigError, match="did you mean 'counts'"):
        load_dataset(p, keys={"count": "spikez"})
    with pytest.raises(ConfigError, match="unknown option"):
        load_dataset(p, align_to="x")
    np.savez(p, counts=COUNTS, condition_id=np.array([1, "a"], dtype=object))
    with pytest.raises(DataError, match="object array"):
        load_dataset(p)
    np.savez(p, counts=COUNTS, bin_ms=2.0)
    with pytest.raises(DataError, match="bin_ms = 2 but the configuration says 3"):
        load_dataset(p, bin_ms=3)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(ConfigError, match="suffix"):
        load_dataset(tmp_path / "x.csv")
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="bad.npz"):
        load_dataset(tmp_path / "bad.npz")


def test_hdf5_nested_keys_bytes_conditions_and_orientation(tmp_path):
    """Group paths work, byte-string conditions decode, orientation transposes."""
    p = tmp_path / "s.h5"
    with h5py.File(p, "w") as f:
        f["session/spk"] = np.transpose(COUNTS, (0, 2, 1))  # trials x neurons x time
        f["session/cond"] = np.array([b"L", b"R", b"L", b"R", b"L", b"R"])
        f["time_ms"] = TIME
    d = load_dataset(
        p,
        keys={"counts": "session/spk", "condition_id": "session/cond"},
        orientation="trials_neurons_time",
    )
    np.testing.assert_array_equal(d.counts, COUNTS)
    assert d.condition_id.tolist() == ["L", "R", "L", "R", "L", "R"]
    with pytest.raises(DataError, match="set orientation: trials_neurons_time"):
        load_dataset(p, keys={"counts": "session/spk"})
    with pytest.raises(DataError, match="is a group"):
        load_dataset(p, keys={"counts": "session"})
    (tmp_path / "bad.h5").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read .*bad.h5 as HDF5"):
        load_dataset(tmp_path / "bad.h5")


def _matlab_demo_file(path):
    """dataset001.mat as MATLAB's save -v7.3 lays it out (built with raw h5py)."""
    spikes = np.transpose(COUNTS, (0, 2, 1)).astype(float)  # MATLAB trials x neurons x time
    rates = np.transpose(RATES, (0, 2, 1))
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in {
            "spikes": spikes,
            "true_rates": rates,
            "timeMs": TIME.reshape(-1, 1),
            "conditionId": COND.reshape(-1, 1).astype(float),
            "W": np.ones((3, 3)),
        }.items():
            ds = f.create_dataset(name, data=np.ascontiguousarray(value.T))
            ds.attrs["MATLAB_class"] = np.bytes_("double")
        ds = f.create_dataset(
            "subject", data=np.frombuffer("lorenz".encode("utf-16-le"), np.uint16).reshape(-1, 1)
        )
        ds.attrs["MATLAB_class"] = np.bytes_("char")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM")


def test_mat73_matlab_demo_fields(tmp_path):
    """The MATLAB demo's dataset001.mat loads without key mapping, reoriented to trials x time x neurons."""
    p = tmp_path / "dataset001.mat"
    _matlab_demo_file(p)
    d = load_dataset(p)
    np.testing.assert_array_equal(d.counts, COUNTS)
    np.testing.assert_allclose(d.true_rates, RATES)
    np.testing.assert_array_equal(d.time_ms, TIME)
    assert d.bin_ms == 2.0 and d.condition_id.dtype == np.int64
    assert d.condition_id.tolist() == COND.tolist()


def test_mat73_cellstr_and_struct(tmp_path):
    """Cellstr condition ids and data inside a struct-less file written by our MAT writer."""
    p = tmp_path / "d.mat"
    write_mat73(
        p,
        {
            "counts": np.transpose(COUNTS, (0, 2, 1)).astype(float),
            "conditionId": ["a", "b", "a", "b", "c", "c"],
            "binMs": 5.0,
        },
    )
    d = load_dataset(p)
    assert d.condition_id.tolist() == ["a", "b", "a", "b", "c", "c"] and d.bin_ms == 5.0
    np.testing.assert_array_equal(d.counts, COUNTS)
    d = load_dataset(p, orientation="trials_time_neurons")
    assert d.counts.shape == (6, 3, 10)


def test_old_mat_needs_scipy(tmp_path, monkeypatch):
    """A v5 MAT-file without scipy fails with MissingDependencyError; with scipy it loads."""
    p = tmp_path / "old.mat"
    try:
        import scipy.io as sio
    except ImportError:
        p.write_bytes(b"MATLAB 5.0 MAT-file".ljust(128))
    else:
        sio.savemat(
            p,
            {
                "spikes": np.transpose(COUNTS, (0, 2, 1)),
                "timeMs": TIME[:, None],
                "conditionId": COND[:, None].astype(float),
            },
        )
        d = load_dataset(p)
        np.testing.assert_array_equal(d.counts, COUNTS)
        assert d.condition_id.tolist() == COND.tolist()
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(MissingDependencyError, match="scipy"):
        load_dataset(p)


def test_function_loader(tmp_path):
    """'module:function' is imported from the config folder and its mapping checked."""
    (tmp_path / "myloaders.py").write_text(
        "import numpy as np\n"
        "def load(path, scale=1):\n"
        "    return {'counts': np.ones((3, 4, 2), int) * scale, 'condition_id': ['x', 'y', 'x'], 'bin_ms': 10}\n"
        "def nopath(n):\n"
        "    return {'counts': np.zeros((n, 4, 2), int)}\n"
        "def bad(path):\n"
        "    return {'counts': np.ones((3, 4, 2)), 'spikes': 1}\n"
        "def boom(path):\n"
        "    raise KeyError('trial table')\n"
    )
    d = load_dataset("raw.bin", loader="myloaders:load", base_dir=tmp_path, scale=2)
    assert d.counts.max() == 2 and d.bin_ms == 10 and d.condition_id[1] == "y"
    assert load_dataset(loader="myloaders:nopath", base_dir=tmp_path, n=5).n_trials == 5
    with pytest.raises(DataError, match="unknown fields"):
        load_dataset("x", loader="myloaders:bad", base_dir=tmp_path)
    with pytest.raises(DataError, match="myloaders:boom.*KeyError"):
        load_dataset("x", loader="myloaders:boom", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="has no function"):
        load_dataset("x", loader="myloaders:nope", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot import module"):
        load_dataset("x", loader="not_a_module_xyz:f")
    with pytest.raises(ConfigError, match="package.module:function"):
        load_dataset("x", loader="justname")
    assert load_dataset(loader=lambda: DatasetData(np.zeros((2, 3, 1)))).n_trials == 2


def test_dataset_data_structure_errors():
    """Ragged trials, mismatched fields and uneven time vectors are DataErrors naming the source."""
    with pytest.raises(DataError, match="trial 2 has"):
        DatasetData([np.zeros((5, 2)), np.zeros((4, 2))], source="s1")
    with pytest.raises(DataError, match="columns"):
        DatasetData([np.zeros((5, 2)), np.zeros((5, 3))], source="s1")
    with pytest.raises(DataError, match="s1: true_rates has shape"):
        DatasetData(np.zeros((2, 5, 2)), true_rates=np.zeros((2, 5, 3)), source="s1")
    with pytest.raises(DataError, match="evenly spaced"):
        DatasetData(np.zeros((2, 3, 1)), time_ms=[0, 1, 3])
    with pytest.raises(DataError, match="3 condition ids for 2 trials"):
        DatasetData(np.zeros((2, 3, 1)), condition_id=[1, 2, 3])
    with pytest.raises(DataError, match="mix numbers and text"):
        DatasetData(np.zeros((2, 3, 1)), condition_id=[1, "a"])
    with pytest.raises(DataError, match="trials x time x neurons"):
        DatasetData(np.zeros((3, 1)))
    d = DatasetData(
        [np.ones((4, 2))] * 3, time_ms=[10, 15, 20, 25], condition_id=[1.0, np.nan, 2.0]
    )
    assert d.counts.shape == (3, 4, 2) and d.bin_ms == 5.0
    assert np.isnan(d.condition_id[1]) and "3 trials x 4 bins x 2 neurons" in repr(d)


def _nwb_file(path):
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(
        session_description="test",
        identifier="id1",
        session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc),
    )
    nwb.add_trial_column("move_onset_time", "movement onset (s)")
    nwb.add_trial_column("condition", "reach target")
    for start, onset, cond in [(0.0, 0.5, "L"), (2.0, 2.3, "R"), (4.0, 4.4, "L")]:
        nwb.add_trial(
            start_time=start, stop_time=start + 1.5, move_onset_time=onset, condition=cond
        )
    spikes = [
        np.sort(RNG.uniform(0, 6, 200)),
        np.sort(RNG.uniform(0, 6, 50)),
        np.array([0.3, 2.31, 4.4]),
    ]
    for st in spikes:
        nwb.add_unit(spike_times=st)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return spikes


def test_nwb_binning(tmp_path):
    """Spike times are binned per trial around align_to, left-closed bins, conditions from a column."""
    p = tmp_path / "s.nwb"
    spikes = _nwb_file(p)
    d = load_dataset(
        p,
        align_to="move_onset_time",
        window_ms=(-200, 300),
        bin_ms=50,
        condition_column="condition",
    )
    assert d.counts.shape == (3, 10, 3) and d.bin_ms == 50
    np.testing.assert_allclose(d.time_ms, np.arange(-200, 300, 50))
    assert d.condition_id.tolist() == ["L", "R", "L"]
    onsets = [0.5, 2.3, 4.4]
    for t, a in enumerate(onsets):
        for u, st in enumerate(spikes):
            edges = a + np.arange(-200, 301, 50) / 1000
            expected = [
                np.sum((st >= lo) & (st < hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)
            ]
            assert d.counts[t, :, u].tolist() == expected
    assert (
        d.counts[2, 4, 2] == 1
    )  # spike exactly at the alignment time falls in the bin starting there
    d = load_dataset(p, bin_ms=100)
    assert d.counts.shape == (3, 15, 3) and d.time_ms[0] == 0
    with pytest.raises(DataError, match="not in the trials table"):
        load_dataset(p, align_to="go_cue_time")
    with pytest.raises(DataError, match="must divide the window"):
        load_dataset(p, window_ms=(0, 125), bin_ms=50)


def test_nwb_needs_pynwb(tmp_path, monkeypatch):
    """Without pynwb, NWB files give MissingDependencyError naming the extra."""
    p = tmp_path / "s.nwb"
    p.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(MissingDependencyError, match=r"lfads_runs\[nwb\]"):
        load_dataset(p)


def test_load_from_options(tmp_path):
    """Configuration options (format, keys, bin_ms, loader_args) map onto the loaders."""
    p = tmp_path / "s.dat"
    with h5py.File(p, "w") as f:
        f["spk"] = COUNTS
    d = load_from_options(p, {"format": "h5", "keys": {"counts": "spk"}, "bin_ms": 4})
    assert d.bin_ms == 4 and d.n_trials == 6
    (tmp_path / "cfgload.py").write_text(
        "import numpy as np\ndef f(n=2):\n    return {'counts': np.zeros((n, 3, 1), int)}\n"
    )
    d = load_from_options(None, {"loader": "cfgload:f", "loader_args": {"n": 4}}, base_dir=tmp_path)
    assert d.n_trials == 4
    with pytest.raises(ConfigError, match="takes loader_args"):
        load_from_options(None, {"loader": "cfgload:f", "bin_ms": 2}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="window_ms or both"):
        load_from_options(tmp_path / "x.nwb", {"nwb": {"start_ms": 0}})


def test_nwb_options_from_config(tmp_path):
    """nwb: {align_to, start_ms, stop_ms, bin_ms} reaches the NWB loader."""
    p = tmp_path / "s.nwb"
    _nwb_file(p)
    d = load_from_options(
        p, {"nwb": {"align_to": "move_onset_time", "start_ms": -100, "stop_ms": 100, "bin_ms": 20}}
    )
    assert d.counts.shape == (3, 10, 3) and d.time_ms[0] == -100
