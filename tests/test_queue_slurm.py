"""The Slurm executor end to end through submitit's local cluster (real job processes)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("submitit")

from _queue_helpers import attempts, cli, load, make_config, state, wait_for  # noqa: E402

from lfads_runs.executors import get_executor  # noqa: E402
from lfads_runs.runstate import QUEUED, RUNNING  # noqa: E402

pytestmark = pytest.mark.slow


def test_slurm_executor_local_cluster(tmp_path):
    """One submitit job per run; job ids recorded; same skip rule on a second pass."""
    cfg = make_config(
        tmp_path,
        n_params=1,
        extra="slurm:\n  cluster: local\n  time: 10\n  cpus_per_task: 1\n",
    )
    proc = cli("train", str(cfg), "--executor", "slurm", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["executor"] == "slurm" and res["summary"] == "2 done, 0 skipped, 0 failed"
    rc = load(cfg)
    for run, out in zip(rc.all_runs, res["runs"], strict=True):
        st = state(run)
        assert st["executor"] == "slurm" and st["job_id"] == out["job_id"] and st["job_id"]
        assert st["state"] == "done" and st["threads"] == 1 and run.paths.done_marker.is_file()
        log = run.paths.log_file.read_text()
        assert "executor slurm" in log and "Epoch:2" in log  # job output in lfads.out
    assert (rc.path / "slurm_logs").is_dir()
    again = cli("train", str(cfg), "--executor", "slurm", "--slurm-cluster", "local", "--json")
    assert json.loads(again.stdout)["summary"] == "0 done, 2 skipped, 0 failed"
    assert all(attempts(r) == 1 for r in rc.all_runs)


def test_submitted_jobs_are_followed_by_status(tmp_path):
    """wait=False returns after submission; status shows queued/running, then done."""
    cfg = make_config(tmp_path, n_params=1, run_specs=("single_dataset001",))
    rc = load(cfg)
    (run,) = rc.all_runs
    ex = get_executor("slurm", folder=str(tmp_path / "logs"), cluster="local", wait=False)
    res = rc.train(executor=ex, quiet=True)
    assert res.summary() == "0 done, 0 skipped, 0 failed, 1 submitted"
    assert res.exit_code == 0
    (o,) = res.outcomes
    assert o.job_id and o.status == "submitted"
    assert run.state().state in (QUEUED, RUNNING, "done")
    wait_for(lambda: run.state().state == "done", 120, "the job to finish", interval=0.2)
    st = state(run)
    assert st["job_id"] == o.job_id and st["executor"] == "slurm"
