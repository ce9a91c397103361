"""Our engine and readers against the lab's TensorFlow reference files (../shared/fixtures/tf_lfads).

These cases were made independently of this repository (other seeds and trial
counts, TensorFlow's own randomness), so they cross-check what the
repository's own cases (tests/data/tf_lfads) check. The module is collected
only when that folder exists beside the repository: tests/conftest.py lists it
in ``collect_ignore`` otherwise, so a bare clone neither runs nor skips it.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import test_alignment
import test_engine_fidelity as fidelity
import test_lfads_input
import test_model_params
import test_synthetic
import test_tensorbundle
from conftest import SHARED_TF_CASES, SHARED_TF_FIXTURES

from lfads_runs.io.checkpoint_state import read_checkpoint_state
from lfads_runs.io.fitlog import append_fitlog_line, format_fitlog_line, read_fitlog_rows
from lfads_runs.io.posterior_files import read_posterior_file, write_posterior_file
from lfads_runs.results.fitlog import read_fit_log

ROOT = SHARED_TF_FIXTURES


@pytest.mark.parametrize("case", SHARED_TF_CASES)
def test_variable_set_matches_model_params(case):
    fidelity.test_variable_set_matches_model_params(ROOT, case)


@pytest.mark.parametrize("case", SHARED_TF_CASES)
def test_push_mean_matches_tensorflow(case):
    """Train and valid split, every exact key to 1e-5, rates to float32 round-off."""
    fidelity.test_push_mean_matches_tensorflow(ROOT, case)


@pytest.mark.parametrize("case", SHARED_TF_CASES)
def test_lve_checkpoint_equals_model_params(case):
    test_tensorbundle.test_lve_checkpoint_equals_model_params(ROOT, case)


@pytest.mark.parametrize("case", SHARED_TF_CASES)
def test_model_params_reader_and_writer(case, tmp_path):
    test_model_params.test_reader_matches_h5py(ROOT, case)
    test_model_params.test_writer_reproduces_tf_model_params(ROOT, case, tmp_path)


@pytest.mark.parametrize("case", SHARED_TF_CASES)
def test_input_files_round_trip(case, tmp_path):
    test_lfads_input.test_roundtrip_matches_fixture_bytes_layout(ROOT, tmp_path, case)


@pytest.mark.parametrize("case", SHARED_TF_CASES)
def test_fitlog_bytes_and_lve_step(case, tmp_path):
    """Rows format back to TF's bytes; the LVE row is the step of TF's lve checkpoint."""
    src = ROOT / case / "lfadsOutput" / "fitlog.csv"
    rows = read_fitlog_rows(src)
    raw = src.read_bytes()
    assert "".join(format_fitlog_line(r) + "\n" for r in rows).encode() == raw
    for r in rows:
        append_fitlog_line(tmp_path / "fitlog.csv", r)
    assert (tmp_path / "fitlog.csv").read_bytes() == raw
    lve = read_checkpoint_state(ROOT / case / "lfadsOutput", "checkpoint_lve")
    assert read_fit_log(src).step_lve == int(lve.model_checkpoint_path.name.rsplit("-", 1)[1])


@pytest.mark.parametrize("case", SHARED_TF_CASES)
def test_posterior_files_round_trip(case, tmp_path):
    files = sorted((ROOT / case / "lfadsOutput").glob("model_runs_*"))
    assert files
    for i, src in enumerate(files):
        data = read_posterior_file(src)
        write_posterior_file(tmp_path / f"copy{i}", data)
        back = read_posterior_file(tmp_path / f"copy{i}")
        with h5py.File(src, "r") as f:
            assert list(back) == list(data) and set(back) == set(f)
            for key, arr in back.items():
                assert arr.dtype == f[key].dtype and arr.shape == f[key].shape
                np.testing.assert_array_equal(arr, f[key][()])


def test_synthetic_generator_reproduces_stitch_data():
    """lfads_runs.synthetic.lorenz with the lab's seed and sizes gives its data exactly."""
    flags = json.loads((ROOT / "shared_stitch2" / "flags.json").read_text())
    test_synthetic.check_reproduces_stitch_case(ROOT / "shared_stitch2", flags["synthetic_data"])


def test_alignment_reproduces_stitch_inputs():
    """compute_alignment on the lab's counts gives its alignment matrices and biases."""
    test_alignment.check_alignment_reproduces_case(ROOT / "shared_stitch2")
