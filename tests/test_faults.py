"""kill -9 at spread-out moments of dump, prepare, train and posterior, and two trains at once.

Each command runs as a real ``lfads-runs`` subprocess in its own session; the
whole process group (queue, fork server, workers) is killed with SIGKILL at
fractions of the command's measured duration, as a node failure would. After
each kill every finished file must still be readable, and after the command is
run again to completion no temporary file may be left and the result must equal
that of an uninterrupted run (training: bit-identical weights, seeded, one thread).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _two_datasets import BASE, tree, write_datasets

from lfads_runs import RunCollection
from lfads_runs._tempfiles import temp_files
from lfads_runs.io.model_params import read_model_params

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

CONFIG = BASE.replace(
    "c_batch_size: 5}",
    "c_batch_size: 5, c_max_epochs: 30, num_samples_posterior: 8, "
    "c_learning_rate_n_to_compare: 100}",
).replace(
    "  - {name: both, datasets: [ds1, ds2]}\n",
    "  - {name: both, datasets: [ds1, ds2]}\n  - {name: one, datasets: [ds1]}\n",
)
SEEDED = ("--seed", "5", "--threads", "1", "--executor", "debug", "-q")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    return write_datasets(tmp_path_factory.mktemp("datasets"))


def start(args: tuple[str, ...], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lfads_runs", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: killpg reaches every child
    )


def run_to_end(args: tuple[str, ...], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lfads_runs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return time.monotonic() - t0, proc


def kill_after(args: tuple[str, ...], cwd: Path, delay: float) -> None:
    proc = start(args, cwd)
    time.sleep(delay)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def finished_files_readable(root: Path) -> None:
    """Everything under the tree that is not a temporary file is complete."""
    for rc_run in RunCollection.from_yaml(root / "config.yaml").all_runs:
        if rc_run.file_model_params.exists():
            read_model_params(rc_run.file_model_params)
        if rc_run.is_prepared:
            rc_run.load_input_info(reload=True)
        kind = rc_run.params.posterior_mean_kind
        files = rc_run.posterior_files(kind)
        if all(f.exists() for split in files.values() for f in split.values()):
            rc_run.load_posterior_means(reload=True)


def no_temp_files(root: Path) -> None:
    left = temp_files(root)
    assert left == [], left


FRACTIONS = (0.15, 0.4, 0.7)


def test_kill_during_prepare(tmp_path, datasets):
    tree(tmp_path, datasets, CONFIG)
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    tree(baseline, datasets, CONFIG)
    duration, _ = run_to_end(("prepare", "config.yaml"), baseline)
    for frac in FRACTIONS:
        kill_after(("prepare", "config.yaml", "--regenerate"), tmp_path, duration * frac)
        finished_files_readable(tmp_path)
    run_to_end(("prepare", "config.yaml"), tmp_path)
    no_temp_files(tmp_path)
    for run, ref in zip(
        RunCollection.from_yaml(tmp_path / "config.yaml").all_runs,
        RunCollection.from_yaml(baseline / "config.yaml").all_runs,
        strict=True,
    ):
        for ds, f in run.input_files.items():
            assert f.read_bytes() == ref.input_files[ds].read_bytes()


def test_kill_during_train_then_resume_is_bit_identical(tmp_path, datasets):
    baseline = tmp_path / "baseline"
    work = tmp_path / "work"
    for d in (baseline, work):
        d.mkdir()
        tree(d, datasets, CONFIG)
    duration, _ = run_to_end(("train", "config.yaml", *SEEDED), baseline)
    for frac in FRACTIONS:
        kill_after(("train", "config.yaml", *SEEDED), work, duration * frac)
        finished_files_readable(work)
    run_to_end(("train", "config.yaml", *SEEDED), work)
    no_temp_files(work)
    for run, ref in zip(
        RunCollection.from_yaml(work / "config.yaml").all_runs,
        RunCollection.from_yaml(baseline / "config.yaml").all_runs,
        strict=True,
    ):
        got, want = (
            read_model_params(run.file_model_params),
            read_model_params(ref.file_model_params),
        )
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_kill_during_dump_and_posterior(tmp_path, datasets):
    tree(tmp_path, datasets, CONFIG)
    run_to_end(("train", "config.yaml", *SEEDED), tmp_path)
    snapshot = tmp_path / "trained"
    shutil.copytree(tmp_path / "runs", snapshot / "runs", symlinks=True)
    dump = ("dump", "config.yaml", "--force", "--checkpoint", "latest")
    duration, _ = run_to_end(dump, tmp_path)
    for frac in FRACTIONS:
        kill_after(dump, tmp_path, duration * frac)
        finished_files_readable(tmp_path)
    run_to_end(dump, tmp_path)
    post = ("posterior", "config.yaml", "--rerun", "--threads", "1", "--executor", "debug", "-q")
    duration, _ = run_to_end(post, tmp_path)
    for frac in FRACTIONS:
        kill_after(post, tmp_path, duration * frac)
        finished_files_readable(tmp_path)
    run_to_end(post, tmp_path)
    no_temp_files(tmp_path)
    for run in RunCollection.from_yaml(tmp_path / "config.yaml").all_runs:
        assert run.load_posterior_means()["ds1"].trial_loaded.all()
        assert run.load_model_trained_params(dump="never").global_step > 0


def test_two_trains_of_one_config_at_once(tmp_path, datasets):
    """Two queues on one config: every run trains exactly once, both exit 0, nothing left."""
    tree(tmp_path, datasets, CONFIG)
    args = ("train", "config.yaml", "--threads", "1", "--json")
    a, b = start(args, tmp_path), start(args, tmp_path)
    outs = [p.communicate(timeout=600) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    assert all("Traceback" not in err for _, err in outs)
    import json

    counts = [json.loads(out)["counts"] for out, _ in outs]
    assert sum(c.get("done", 0) for c in counts) == 2  # each of the 2 runs once
    for run in RunCollection.from_yaml(tmp_path / "config.yaml").all_runs:
        assert run.paths.done_marker.is_file() and run.file_model_params.is_file()
        assert not run.paths.claim_file.exists()
    no_temp_files(tmp_path)


def test_four_prepares_with_regenerate_at_once(tmp_path, datasets):
    """Concurrent `prepare --regenerate` of one config: all succeed, inputs complete, no leftovers."""
    tree(tmp_path, datasets, CONFIG)
    procs = [start(("prepare", "config.yaml", "--regenerate"), tmp_path) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    finished_files_readable(tmp_path)
    assert all(r.is_prepared for r in RunCollection.from_yaml(tmp_path / "config.yaml").all_runs)
    no_temp_files(tmp_path)
