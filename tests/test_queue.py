"""The local queue with real subprocesses and tiny runs on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")

from _queue_helpers import (  # noqa: E402
    attempts,
    cli,
    corrupt_input,
    load,
    make_config,
    queue_process,
    state,
    wait_for,
)

from lfads_runs._procs import pid_alive  # noqa: E402
from lfads_runs.exceptions import ConfigError  # noqa: E402
from lfads_runs.executors import get_executor, train_runs  # noqa: E402
from lfads_runs.executors.local import LocalExecutor, parallel_cpu_runs, parse_gpus  # noqa: E402
from lfads_runs.io.fitlog import read_fitlog_rows  # noqa: E402
from lfads_runs.io.model_params import read_model_params  # noqa: E402
from lfads_runs.io.posterior_files import read_posterior_file  # noqa: E402
from lfads_runs.io.tensorbundle import read_bundle  # noqa: E402

pytestmark = pytest.mark.slow


def intervals(runs) -> list[tuple[float, float]]:
    return [(state(r)["started_ts"], state(r)["ended_ts"]) for r in runs]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    n = best = 0
    for _, d in events:
        n += d
        best = max(best, n)
    return best


def check_outputs_readable(run) -> None:
    """No corrupt file: checkpoints, fit log, posterior files and model_params all read."""
    out = run.path_lfads_output
    for index in out.glob("*.ckpt-*.index"):
        read_bundle(index.with_suffix(""))
    rows = read_fitlog_rows(run.file_fitlog)
    assert [r.epoch for r in rows] == list(range(len(rows)))
    for split in run.posterior_files().values():
        for f in split.values():
            read_posterior_file(f)
    assert read_model_params(run.file_model_params)
    assert not list(out.glob(".*.tmp")) and not list(run.path.glob(".*.tmp"))


def test_parallel_limit_skip_done_and_status(tmp_path):
    """max_parallel 2 never runs more than 2 at once (and does run 2); done runs are skipped."""
    rc = load(make_config(tmp_path, n_params=2))
    runs = rc.all_runs
    res = rc.train(max_parallel=2, quiet=True)
    assert res.summary() == "4 done, 0 skipped, 0 failed" and res.exit_code == 0
    assert max_overlap(intervals(runs)) == 2
    per = max(1, (os.cpu_count() or 1) // 2)
    assert all(state(r)["threads"] == per for r in runs)  # the cores shared by 2 runs
    queue = json.loads(rc.layout.queue_state_file.read_text())["queues"][-1]
    assert queue["state"] == "finished" and {r["state"] for r in queue["runs"]} == {"done"}

    again = rc.train(max_parallel=2, quiet=True)
    assert again.summary() == "0 done, 4 skipped, 0 failed"
    assert all(attempts(r) == 1 for r in runs)

    proc = cli("status", str(rc.source), "--json")
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["counts"] == {"done": 4}
    row = st["runs"][0]
    assert row["state"] == "done" and row["epochs"] == 3 and row["best_valid_cost"] > 0
    assert row["learning_rate"] == 0.01 and row["elapsed_s"] > 0


def test_failing_run_is_reported_and_others_finish(tmp_path):
    """A run with bad data fails with its log tail; the others finish; exit status 1."""
    cfg = make_config(tmp_path, n_params=1)
    rc = load(cfg)
    bad = rc.find_runs("all", 1)
    bad.prepare()
    corrupt_input(bad)
    proc = cli("train", str(cfg), "--max-parallel", "2", "--json")
    assert proc.returncode == 1, proc.stderr
    res = json.loads(proc.stdout)
    assert res["summary"] == "1 done, 0 skipped, 1 failed"
    (failed,) = [r for r in res["runs"] if r["status"] == "failed"]
    assert failed["run_spec"] == "all" and failed["failed_stage"] == "train"
    assert "negative" in failed["error"] and any("negative" in ln for ln in failed["log_tail"])
    assert "FAILED" in proc.stderr and "negative" in proc.stderr  # the tail is shown
    st = json.loads(cli("status", str(cfg), "--json").stdout)
    by_spec = {r["run_spec"]: r for r in st["runs"]}
    assert by_spec["all"]["state"] == "failed" and "negative" in by_spec["all"]["reason"]
    assert by_spec["single_dataset001"]["state"] == "done"


def test_resume_after_the_queue_is_killed(tmp_path):
    """SIGKILL the queue mid-training; its runs stop; a restart finishes every run."""
    cfg = make_config(tmp_path, n_params=2, epochs=40)
    rc = load(cfg)
    runs = rc.all_runs
    q = queue_process(cfg, "--max-parallel", "2")

    def mid_training():
        for r in runs:
            try:
                p = state(r).get("progress") or {}
            except (OSError, ValueError):
                continue
            if p.get("epoch", 0) >= 12:  # a checkpoint exists at epoch 10
                return r
        return None

    wait_for(mid_training, 120, "a run past epoch 12")
    os.kill(q.pid, signal.SIGKILL)
    q.wait()
    # The orphaned runs notice and stop cleanly, releasing their claims.
    wait_for(lambda: not any(r.paths.claim_file.exists() for r in runs), 30, "claims released")
    cut = [r for r in runs if r.paths.state_file.exists() and state(r)["state"] == "interrupted"]
    assert cut and not any(r.paths.done_marker.exists() for r in cut)
    wait_for(lambda: not any(pid_alive(state(r)["pid"]) for r in cut), 30, "runs to exit")

    res = train_runs(runs, max_parallel=2, quiet=True)
    assert res.n_done + res.n_skipped == 4 and res.n_failed == 0
    for r in runs:
        assert r.paths.done_marker.is_file()
        check_outputs_readable(r)
        assert len(read_fitlog_rows(r.file_fitlog)) == 40
    for r in cut:
        assert state(r)["train"]["resumed_from"]  # continued from its checkpoint


def test_two_queues_train_each_run_once(tmp_path):
    """Two queues started together on one collection train every run exactly once."""
    cfg = make_config(tmp_path, n_params=2)
    rc = load(cfg)
    rc.prepare()
    a = queue_process(cfg, "--max-parallel", "1", "--threads", "1", "--json")
    b = queue_process(cfg, "--max-parallel", "1", "--threads", "1", "--json")
    outs = [json.loads(p.communicate(timeout=180)[0]) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0
    done = sum(o["counts"]["done"] for o in outs)
    assert done == 4 and all(o["counts"]["failed"] == 0 for o in outs)
    for r in rc.all_runs:
        assert attempts(r) == 1 and state(r)["attempt"] == 1
        assert r.paths.done_marker.is_file()


def test_sigterm_stops_the_queue_cleanly(tmp_path):
    """SIGTERM to the queue: children stop, every run is resumable, exit status 130."""
    cfg = make_config(tmp_path, n_params=1, epochs=200)
    rc = load(cfg)
    q = queue_process(cfg, "--max-parallel", "1", "--threads", "1", "--json")
    first = rc.all_runs[0]

    def training():
        return first.paths.state_file.exists() and state(first).get("progress")

    wait_for(training, 120, "training to start")
    q.send_signal(signal.SIGTERM)
    out, err = q.communicate(timeout=60)
    assert q.returncode == 130, err
    res = json.loads(out)
    assert res["interrupted"] and res["counts"]["interrupted"] == 2
    assert state(first)["state"] == "interrupted" and state(first)["exit_code"] == 143
    assert not any(r.paths.claim_file.exists() for r in rc.all_runs)
    row = first.state()
    assert row.state == "prepared" and "interrupted" in row.reason


def test_gpu_slots_and_options(tmp_path):
    """GPU slots interleave GPUs, threads divide the cores, bad options are ConfigErrors."""
    ex = LocalExecutor(gpus="0,1", runs_per_gpu=2)
    assert [s.gpu for s in ex.slots] == ["0", "1", "0", "1"]
    assert ex.child_env(ex.slots[1])["CUDA_VISIBLE_DEVICES"] == "1"
    assert LocalExecutor(gpus=[0, 1], runs_per_gpu=2, max_parallel=3).capacity() == 3
    cpu = LocalExecutor(gpus="none", max_parallel=2)
    assert cpu.capacity() == 2 and cpu.child_env(cpu.slots[0])["CUDA_VISIBLE_DEVICES"] == ""
    cores = os.cpu_count() or 1
    auto = LocalExecutor(gpus=[])
    auto.plan(1)  # a lone run gets every core
    assert auto.capacity() == 1 and auto.slots[0].threads == cores
    auto.plan(1000)  # many runs: single-threaded, about one per core
    assert cores <= auto.capacity() <= 2 * cores and auto.slots[0].threads == 1
    auto._cores = 8  # fewer runs than cores: every core still used
    auto.plan(3)
    assert [s.threads for s in auto.slots] == [3, 3, 2]
    assert auto.describe() == "local: 3 parallel runs on the CPU, 2-3 threads each"
    auto._cores = 3
    auto.plan(8)  # 2 rounds of 4 on 3 cores beat 3 rounds of 3 (the last one 2/3 idle)
    assert auto.capacity() == 4 and {s.threads for s in auto.slots} == {1}
    # (runs, cores) -> runs at once: the last round as full as it can be, at most 2x cores.
    cases = {(8, 2): 2, (3, 2): 3, (7, 2): 2, (100, 16): 20, (1, 4): 1, (16, 16): 16}
    assert {k: parallel_cpu_runs(*k) for k in cases} == cases
    assert parse_gpus("") == [] and parse_gpus(3) == ["3"]
    with pytest.raises(ConfigError, match="listed twice"):
        parse_gpus("0,0")
    with pytest.raises(ConfigError, match="runs_per_gpu"):
        LocalExecutor(runs_per_gpu=0)
    with pytest.raises(ConfigError, match="does not take partition.*max_parallel=None"):
        get_executor("local", partition="gpu")
    with pytest.raises(ConfigError, match="unknown executor 'sge'"):
        get_executor("sge")


def test_script_without_main_guard_trains_once(tmp_path):
    """rc.train() at the top level of a script (no __main__ guard) runs each run once."""
    cfg = make_config(tmp_path, n_params=1)
    script = tmp_path / "train_all.py"
    script.write_text(
        "from lfads_runs import RunCollection\n"
        f"res = RunCollection.from_yaml({str(cfg)!r}).train(quiet=True)\n"
        "print(res.summary())\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["2 done, 0 skipped, 0 failed"]
    assert all(attempts(r) == 1 for r in load(cfg).all_runs)


def test_second_ctrl_c_kills(tmp_path):
    """Ctrl-C asks runs to stop; one that does not is killed by a second Ctrl-C, recorded."""
    fake = tmp_path / "run_lfads.py"
    fake.write_text(  # an original run_lfads.py stand-in that ignores SIGTERM
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(os.environ['PIDS'] + str(os.getpid()), 'w').close()\n"
        "print('training', flush=True)\n"
        "time.sleep(120)\n"
    )
    pids = tmp_path / "pids"
    pids.mkdir()
    extra = f"scripts:\n  python: {sys.executable}\n  run_lfads_py: {fake}\n"
    cfg = make_config(tmp_path, n_params=1, extra=extra)
    rc = load(cfg)
    env = dict(os.environ, PIDS=f"{pids}/")
    q = queue_process(cfg, "--engine", "external", "--max-parallel", "2", "--json", env=env)
    wait_for(lambda: len(list(pids.iterdir())) == 2, 120, "both runs training")
    q.send_signal(signal.SIGINT)
    time.sleep(1.0)  # the runs ignore the stop request
    assert q.poll() is None
    q.send_signal(signal.SIGINT)
    out, err = q.communicate(timeout=60)
    assert q.returncode == 130, err
    assert "press Ctrl-C again" in err and "killing 2 runs" in err
    assert json.loads(out)["counts"]["interrupted"] == 2
    for r in rc.all_runs:
        st = state(r)
        assert st["state"] == "interrupted" and not r.paths.claim_file.exists()
        assert not pid_alive(st["pid"])
    for f in pids.iterdir():
        wait_for(lambda f=f: not pid_alive(int(f.name)), 10, "run_lfads.py to die")


def test_run_killed_from_outside_is_a_failure_with_a_reason(tmp_path):
    """A run killed by someone else (OOM killer, kill -9) is failed, with no stale claim."""
    cfg = make_config(tmp_path, n_params=1, epochs=300, run_specs=("single_dataset001",))
    rc = load(cfg)
    (run,) = rc.all_runs
    q = queue_process(cfg, "--json")
    wait_for(lambda: run.paths.state_file.exists() and state(run).get("progress"), 120, "training")
    os.kill(state(run)["pid"], signal.SIGKILL)
    out, err = q.communicate(timeout=60)
    assert q.returncode == 1, err
    (o,) = json.loads(out)["runs"]
    assert o["status"] == "failed" and "killed by signal 9" in o["error"]
    assert o["failed_stage"] == "train"
    assert not run.paths.claim_file.exists()
    row = run.state()
    assert row.state == "failed" and "signal 9" in row.reason
