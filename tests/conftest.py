"""Shared test fixtures.

The TensorFlow-LFADS reference cases are the repository's own: tests/data/tf_lfads,
made by tools/make_tf_reference.py with the original LFADS. Each case has a
manifest.json (flags, seeds, trial counts, checkpoint steps, key counts); tests
read such expectations from it with :func:`manifest` rather than writing them out.

When the lab's reference files exist beside the repository
(../shared/fixtures/tf_lfads), test_shared_reference.py checks our engine and
readers against them too. Without them that module is left out of collection
(``collect_ignore``), so a bare clone runs, and passes, every test it collects.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TF_FIXTURES = ROOT / "tests" / "data" / "tf_lfads"
TF_CASES = ("stitch2", "ctrl1", "gauss1", "extin1")

SHARED_TF_FIXTURES = (ROOT.parent / "shared" / "fixtures" / "tf_lfads").resolve()
SHARED_TF_CASES = ("shared_stitch2", "shared_ctrl1", "shared_gauss1", "shared_extin1")

# Tests compare runs bit for bit; a thread count that follows the machine's load would
# make that depend on what else runs (tests/test_thread_governor.py turns it on where it tests it).
os.environ["LFADS_RUNS_ADAPT_THREADS"] = "0"

collect_ignore = [] if SHARED_TF_FIXTURES.is_dir() else ["test_shared_reference.py"]


@functools.cache
def manifest(case: str) -> dict:
    """The manifest.json of one of the repository's reference cases."""
    return json.loads((TF_FIXTURES / case / "manifest.json").read_text())


def n_trials(case: str, dataset: str = "dataset001") -> dict[str, int]:
    """{'all', 'train', 'valid'} trial counts of one dataset of a case."""
    ds = next(d for d in manifest(case)["synthetic_data"]["datasets"] if d["name"] == dataset)
    return {"all": ds["n_trials"], "train": ds["n_train"], "valid": ds["n_valid"]}


def lve_checkpoint(case: str) -> Path:
    """Prefix of the lowest-validation-error checkpoint LFADS's posterior runs loaded."""
    return TF_FIXTURES / case / "lfadsOutput" / manifest(case)["lve_checkpoint"]


def latest_checkpoint(case: str) -> Path:
    """Prefix of the latest regular checkpoint of a case."""
    return TF_FIXTURES / case / "lfadsOutput" / manifest(case)["latest_checkpoint"]


def true_rates(case_dir: Path, dataset: str) -> np.ndarray:
    """True rates of every trial of a case's dataset, in original trial order.

    The lab's cases store them in truth.h5; the repository's keep them only in the
    input file (train_truth, valid_truth, to stay small), put back in order here.
    """
    with h5py.File(case_dir / "truth.h5", "r") as f:
        if "rates" in f[dataset]:
            return f[dataset]["rates"][()]
    with h5py.File(case_dir / "lfadsInput" / f"lfads_{dataset}.h5", "r") as f:
        train, valid = (f[k][()].astype(int) - 1 for k in ("train_inds", "valid_inds"))
        out = np.full((train.size + valid.size, *f["train_truth"].shape[1:]), np.nan)
        out[train], out[valid] = f["train_truth"][()], f["valid_truth"][()]
    assert not np.isnan(out).any(), f"{case_dir}: train_inds and valid_inds miss trials"
    return out


@pytest.fixture(scope="session")
def tf_fixtures() -> Path:
    """Folder of the TensorFlow LFADS reference cases (read-only: copy before writing)."""
    missing = [c for c in TF_CASES if not (TF_FIXTURES / c / "manifest.json").is_file()]
    if missing:
        pytest.fail(f"reference cases {missing} missing under {TF_FIXTURES}")
    return TF_FIXTURES
