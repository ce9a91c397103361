"""``lfads-runs train / posterior / status`` as real subprocesses: output, JSON, exit codes."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("torch")

from _queue_helpers import cli, load, make_config  # noqa: E402

pytestmark = pytest.mark.slow


def test_train_table_and_status_table(tmp_path):
    """Results on stdout (one line per run + summary), progress on stderr; status table."""
    cfg = make_config(tmp_path, n_params=1)
    proc = cli("train", str(cfg), "--max-parallel", "2", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "2 done, 0 skipped, 0 failed"
    assert all(line.startswith("done ") for line in lines[:-1]) and len(lines) == 3
    assert "start" in proc.stderr and "queue: 2/2 finished" in proc.stderr
    status = cli("status", str(cfg))
    assert status.returncode == 0
    head, *rows = status.stdout.strip().splitlines()
    assert head.split()[:4] == ["run", "spec", "#", "param"] and len(rows) == 2
    assert all(" done " in r for r in rows)
    quiet = cli("train", str(cfg), "-q")
    assert quiet.stderr == "" and quiet.stdout.strip().endswith("0 done, 2 skipped, 0 failed")


def test_dry_run_and_usage_errors(tmp_path):
    """--dry-run plans without writing; bad options exit 2 with a message."""
    cfg = make_config(tmp_path, n_params=1)
    proc = cli("train", str(cfg), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["dry_run"] and res["counts"]["planned"] == 2
    assert not (tmp_path / "runs").exists()
    proc = cli("train", str(cfg), "--runs-per-gpu", "0")
    assert proc.returncode == 2 and "runs-per-gpu" in proc.stderr
    proc = cli("train", str(cfg), "--partition", "gpu", "--executor", "local")
    assert proc.returncode == 2 and "--executor slurm" in proc.stderr
    proc = cli("train", str(cfg), "--param", "7")
    assert proc.returncode == 2 and "parameter set" in proc.stderr


def test_posterior_command_for_trained_runs(tmp_path):
    """``lfads-runs posterior``: untrained runs skipped; trained ones get push-mean files."""
    cfg = make_config(tmp_path, n_params=1)
    rc = load(cfg)
    trained = rc.find_runs("single_dataset001", 1)
    assert trained.train(executor="debug", threads=1, quiet=True).n_done == 1
    t0 = time.time()
    proc = cli("posterior", str(cfg), "--kind", "posterior_push_mean", "--threads", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    by = {r["run_spec"]: r for r in res["runs"]}
    assert by["all"]["status"] == "skipped" and "not trained" in by["all"]["reason"]
    assert by["single_dataset001"]["status"] == "done"
    files = trained.posterior_files("posterior_push_mean")["dataset001"]
    assert all(f.stat().st_mtime >= t0 for f in files.values())
    assert trained.paths.done_marker_posterior_only.is_file()
    again = json.loads(cli("posterior", str(cfg), "--kind", "posterior_push_mean", "--json").stdout)
    assert again["counts"]["skipped"] == 2


@pytest.mark.parametrize("command", ["train", "posterior", "status", "scripts"])
def test_help(command):
    """Every command documents itself."""
    proc = cli(command, "--help")
    assert proc.returncode == 0 and "CONFIG" in proc.stdout
