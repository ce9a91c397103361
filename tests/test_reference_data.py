"""The repository's own TensorFlow reference cases (tests/data/tf_lfads) and the tool that makes them."""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
import pytest
from conftest import ROOT, TF_CASES, TF_FIXTURES, manifest, n_trials, true_rates

sys.path.insert(0, str(ROOT / "tools"))
import make_tf_reference as mtr  # noqa: E402

#: The issue's budget for the committed reference data.
MAX_TOTAL_BYTES = 6 * 1024 * 1024


def _tf_bool(v):
    return {"true": True, "false": False}.get(v, v)


@pytest.mark.parametrize("case", TF_CASES)
def test_manifest_describes_the_files(tf_fixtures, case):
    """Files, checkpoints, key counts and trial counts in the manifest are those on disk."""
    m = manifest(case)
    root = tf_fixtures / case
    on_disk = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    assert on_disk == m["files"]
    out = root / "lfadsOutput"
    for prefix in (m["lve_checkpoint"], m["latest_checkpoint"]):
        assert (out / f"{prefix}.index").is_file() and (
            out / f"{prefix}.data-00000-of-00001"
        ).is_file()
    assert m["lve_checkpoint"] == f"lfads_vae_lve.ckpt-{m['lve_step']}"
    assert m["latest_checkpoint"] == f"lfads_vae.ckpt-{m['latest_step']}"
    assert m["lve_step"] in m["lve_history_steps"]
    with h5py.File(out / "model_params", "r") as f:
        assert len(f) == m["model_params_keys"]
        assert int(f["LFADS_global_step:0"][()]) == m["lve_step"]
    assert m["commands_order"] == [
        "train", "posterior_push_mean", "posterior_sample_and_average", "write_model_params"
    ]  # fmt: skip
    assert m["tensorflow_version"].startswith("2.15") and len(m["lfads_commit"]) == 40
    for ds in m["synthetic_data"]["datasets"]:
        with h5py.File(root / "lfadsInput" / f"lfads_{ds['name']}.h5", "r") as f:
            n = n_trials(case, ds["name"])
            assert f["train_data"].shape == (n["train"], 50, ds["neurons"])
            assert f["valid_data"].shape[0] == n["valid"] > m["flags"]["train"]["batch_size"]
    assert len((out / "fitlog.csv").read_text().splitlines()) == m["fitlog"]["rows"]


@pytest.mark.parametrize("case", TF_CASES)
def test_hyperparameters_files_hold_the_manifest_flags(tf_fixtures, case):
    """What LFADS wrote in hyperparameters-<lve step>.txt agrees with every flag passed to it."""
    m = manifest(case)
    hps = json.loads(
        (tf_fixtures / case / "lfadsOutput" / f"hyperparameters-{m['lve_step']}.txt").read_text()
    )
    flags = m["flags"]["write_model_params"]
    assert hps["kind"] == "write_model_params"
    compared = 0
    for key, value in flags.items():
        if key in hps and key not in ("data_dir", "lfads_save_dir"):
            got = _tf_bool(hps[key])
            if key == "num_steps_for_gen_ic":  # LFADS caps it at the trial length
                value = min(value, m["synthetic_data"]["T"])
            assert got == value or (isinstance(value, float) and got == pytest.approx(value)), key
            compared += 1
    assert compared >= 40
    assert sorted(hps["dataset_names"]) == sorted(
        f"{d['name']}.h5" for d in m["synthetic_data"]["datasets"]
    )


def test_committed_data_is_small():
    """The reference cases stay within the size budget; no leftover work folders."""
    total = sum(p.stat().st_size for p in TF_FIXTURES.rglob("*") if p.is_file())
    assert total <= MAX_TOTAL_BYTES, f"{total / 2**20:.2f} MiB"
    assert sorted(p.name for p in TF_FIXTURES.iterdir()) == sorted(TF_CASES)


def test_source_fixes_must_match_exactly():
    """Each syntax fix applies as often as stated, or the tool names the file and the text."""
    files = {name: "" for name in mtr.LFADS_FILES}
    for name, old, _, count in mtr.SOURCE_FIXES:
        files[name] += old * count + "\n"
    patched = mtr.patch_source(files)
    assert "import tensorflow.compat.v1 as tf" in patched["lfads.py"]
    assert "np.Inf" not in patched["lfads.py"] and "iteritems" not in patched["plot_lfads.py"]
    files["utils.py"] = files["utils.py"].replace("open(data_fname,'wb')", "")
    with pytest.raises(
        mtr.ReferenceError, match=r"utils\.py: expected 1 x \"open\(data_fname,'wb'\)\", found 0"
    ):
        mtr.patch_source(files)


def test_case_data_recipes(tmp_path):
    """The tool's data: its split, truth in original order, the pulse input and the Gaussian values."""
    info = mtr.make_case_data("extin1", mtr.CASES["extin1"], tmp_path / "extin1")
    every = info["train_to_test_ratio"] + 1
    with h5py.File(tmp_path / "extin1" / "truth.h5", "r") as t:
        g = t["dataset001"]
        ext, pulse, drive = g["ext_input"][()], g["pulse_bin"][()], g["ext_drive"][()]
        assert "rates" not in g  # the input file holds them
        rates = true_rates(tmp_path / "extin1", "dataset001")
        np.testing.assert_array_equal(g["valid_inds"][()], np.arange(1, ext.shape[0] + 1, every))
        logr = g["latents"][()] @ g["readout_W"][()].T + g["readout_b"][()]
        np.testing.assert_allclose(np.log(rates), logr + drive[..., None] * g["ext_gain"][()])
    assert (ext.sum(axis=(1, 2)) == 1).all()
    np.testing.assert_array_equal(np.argmax(ext[..., 0], axis=1) + 1, pulse)
    assert pulse.min() >= 6 and pulse.max() <= 40
    with h5py.File(tmp_path / "extin1" / "lfadsInput" / "lfads_dataset001.h5", "r") as f:
        np.testing.assert_array_equal(f["valid_ext_input"][()], ext[::every])
        np.testing.assert_array_equal(f["valid_truth"][()], rates[::every])
        assert f["train_data"].dtype == np.int64

    mtr.make_case_data("gauss1", mtr.CASES["gauss1"], tmp_path / "gauss1")
    with h5py.File(tmp_path / "gauss1" / "lfadsInput" / "lfads_dataset001.h5", "r") as f:
        data, truth = f["train_data"][()], f["train_truth"][()]
    assert data.dtype == np.float64 and (data < 0).any()
    noise = data - 2.0 * truth
    assert abs(noise.std() - 0.5) < 0.05 and abs(noise.mean()) < 0.05
