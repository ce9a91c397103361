"""Tests of lfads_runs.results.export: one HDF5 file per run, optional NWB."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import manifest

from lfads_runs.exceptions import DataError, MissingDependencyError
from lfads_runs.io.lfads_input import read_lfads_input
from lfads_runs.results.export import EXPORT_FORMAT, export_run, export_run_nwb
from lfads_runs.results.fitlog import read_fit_log
from lfads_runs.results.posterior_means import read_posterior_means

CASE = "stitch2"
DATASETS = ("dataset001", "dataset002")


def _pms(root, kind="posterior_push_mean"):
    case = root / CASE
    out = {}
    for ds in DATASETS:
        with h5py.File(case / "truth.h5", "r") as f:
            cond = f[ds]["condition_id"][()]
        o = case / "lfadsOutput"
        out[ds] = read_posterior_means(
            o / f"model_runs_{ds}.h5_train_{kind}", o / f"model_runs_{ds}.h5_valid_{kind}",
            dataset=ds, kind=kind, spike_bin_ms=10, condition_ids=cond,
            lfads_input=read_lfads_input(case / "lfadsInput" / f"lfads_{ds}.h5"),
        )  # fmt: skip
    return out


def _trained_params(root):
    """Weights from the fixture's model_params, keyed like ModelTrainedParameters.as_dict()."""
    with h5py.File(root / CASE / "lfadsOutput" / "model_params", "r") as f:
        return {
            "gen_to_factors_W": f["LFADS_gen_gen_2_fac_W:0"][()],
            "factors_to_logrates_W": {
                ds: f[f"LFADS_glm_fac_2_logrates_{ds}.h5_W:0"][()] for ds in DATASETS
            },
            "dataset_names": list(DATASETS),
            "num_datasets": 2,
            "ic_enc_fwd_t0": None,
        }


PARAMS = {
    "run_name": "all",
    "param_hash": "param_abc123",
    "c_factors_dim": 6,
    "c_learning_rate_init": 0.01,
    "c_do_train_readin": True,
    "datasets": ["dataset001", "dataset002"],
    "nested": {"a": np.int64(3), "b": (1.5, 2.5)},
}


def test_export_run_layout(tf_fixtures, tmp_path):
    """Posterior means, weights, fit log and parameters land in one self-describing file."""
    pms = _pms(tf_fixtures)
    log = read_fit_log(tf_fixtures / CASE / "lfadsOutput" / "fitlog.csv")
    params = _trained_params(tf_fixtures)
    path = export_run(
        tmp_path / "export" / "run.h5", posterior_means=pms, trained_params=params,
        fit_log=log, params_attrs=PARAMS,
    )  # fmt: skip
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["run.h5"]
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == EXPORT_FORMAT and f.attrs["format_version"] == 1
        stored = json.loads(f.attrs["run_params_json"])
        assert stored["nested"] == {"a": 3, "b": [1.5, 2.5]} and stored["datasets"] == list(
            DATASETS
        )
        assert f.attrs["c_factors_dim"] == 6 and f.attrs["param_hash"] == "param_abc123"
        assert bool(f.attrs["c_do_train_readin"]) is True
        assert sorted(f["posterior_means"]) == list(DATASETS)
        for ds, pm in pms.items():
            g = f["posterior_means"][ds]
            np.testing.assert_array_equal(g["factors"][()], pm.factors)
            np.testing.assert_array_equal(g["rates"][()], pm.rates)
            np.testing.assert_array_equal(g["train_inds"][()], pm.train_inds)
            np.testing.assert_array_equal(g["condition_ids"][()], pm.condition_ids)
            np.testing.assert_array_equal(g["binned_data"][()], pm.binned_data)
            assert g["rates"].attrs["units"] == "expected spike counts per bin of bin_width_ms"
            assert g.attrs["kind"] == "posterior_push_mean" and g.attrs["counts_to_hz"] == 100.0
            assert g.attrs["bin_width_ms"] == 10.0
            assert g.attrs["train_step"] == manifest(CASE)["lve_step"]
        mp = f["model_params"]
        np.testing.assert_array_equal(mp["gen_to_factors_W"][()], params["gen_to_factors_W"])
        np.testing.assert_array_equal(
            mp["factors_to_logrates_W"]["dataset002"][()],
            params["factors_to_logrates_W"]["dataset002"],
        )
        assert [s.decode() for s in mp["dataset_names"][()]] == list(DATASETS)
        assert mp.attrs["num_datasets"] == 2 and "ic_enc_fwd_t0" not in mp
        fl = f["fitlog"]
        np.testing.assert_array_equal(fl["total_valid"][()], log.total_valid)
        assert fl.attrs["step_lve"] == manifest(CASE)["lve_step"]
        assert fl.attrs["n_epochs"] == manifest(CASE)["fitlog"]["rows"]


def test_export_optional_parts_and_atomicity(tf_fixtures, tmp_path):
    """Missing parts are skipped; a value that cannot be stored leaves the old file intact."""
    path = tmp_path / "run.h5"
    export_run(path, posterior_means=None, params_attrs={"run_name": "x"})
    with h5py.File(path, "r") as f:
        assert list(f) == [] and f.attrs["run_name"] == "x"
    before = path.read_bytes()
    with pytest.raises(DataError, match="model_params bad"):
        export_run(path, posterior_means=_pms(tf_fixtures), trained_params={"bad": np.array([1j])})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]
    with pytest.raises(DataError, match="as_dict"):
        export_run(path, posterior_means=None, trained_params=object())


def test_nwb_export(tf_fixtures, tmp_path):
    """With pynwb, each dataset's posterior means become a per-trial table in an NWB file."""
    try:
        import pynwb
    except ImportError:
        with pytest.raises(MissingDependencyError, match="nwb"):
            export_run_nwb(tmp_path / "run.nwb", posterior_means=_pms(tf_fixtures))
        pytest.skip("pynwb not installed (extra 'nwb')")
    pms = _pms(tf_fixtures)
    path = export_run_nwb(tmp_path / "run.nwb", posterior_means=pms, params_attrs=PARAMS)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        module = nwb.processing["lfads"]
        assert '"c_factors_dim": 6' in module.description
        for ds, pm in pms.items():
            table = module[f"posterior_means_{ds}"]
            assert len(table) == pm.n_trials
            np.testing.assert_array_equal(table["factors"].data[:], pm.factors)
            np.testing.assert_array_equal(table["rates"].data[:], pm.rates)
            np.testing.assert_array_equal(table["condition_id"].data[:], pm.condition_ids)
            splits = [s.decode() if isinstance(s, bytes) else s for s in table["split"].data[:]]
            assert splits[0] == "valid" and splits[1] == "train"
