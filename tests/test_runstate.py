"""Claims, state files and run states derived from files (no training here)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfads_runs import layout as L
from lfads_runs._procs import pid_alive
from lfads_runs.claims import ClaimHandle, acquire_claim, break_stale_claim, hostname, read_claim
from lfads_runs.executors.queuefile import queued_run_paths, read_queue_file, update_queue
from lfads_runs.executors.state import derive_state
from lfads_runs.runstate import (
    DONE,
    FAILED,
    NOT_PREPARED,
    PREPARED,
    QUEUED,
    RUNNING,
    STALE,
    log_tail,
    write_state,
)


def paths(tmp_path: Path) -> L.RunPaths:
    layout = L.CollectionLayout(tmp_path, "rc")
    p = layout.run_paths("all", "param_abcdef", "data_uvwxyz")
    p.path.mkdir(parents=True)
    return p


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_claim(p: L.RunPaths, host: str, pid: int, age_s: float = 0.0) -> None:
    rec = {"host": host, "pid": pid, "started": time.time() - age_s, "token": "x" * 32}
    p.claim_file.write_text(json.dumps(rec))
    t = time.time() - age_s
    os.utime(p.claim_file, (t, t))


def test_claim_is_exclusive_and_released(tmp_path):
    """A second claim on a held run returns the holder; release frees it."""
    p = paths(tmp_path)
    first = acquire_claim(p, executor="test")
    assert isinstance(first, ClaimHandle)
    rec = json.loads(p.claim_file.read_text())
    assert rec["host"] == hostname() and rec["pid"] == os.getpid() and rec["executor"] == "test"
    second = acquire_claim(p)
    assert not isinstance(second, ClaimHandle)
    assert second.pid == os.getpid() and not second.is_stale()
    first.release()
    assert not p.claim_file.exists()
    again = acquire_claim(p)
    assert isinstance(again, ClaimHandle)
    again.release()


def test_release_never_removes_someone_elses_claim(tmp_path):
    """An owner whose claim was broken (and re-taken) leaves the new claim alone."""
    p = paths(tmp_path)
    mine = acquire_claim(p)
    assert isinstance(mine, ClaimHandle)
    p.claim_file.unlink()
    write_claim(p, hostname(), os.getppid())
    mine.release()
    assert read_claim(p.claim_file).pid == os.getppid()


def test_dead_pid_claim_is_stale_and_broken(tmp_path):
    """A claim whose process is gone (same host) is stale; the next claimant breaks it."""
    p = paths(tmp_path)
    write_claim(p, hostname(), dead_pid())
    assert read_claim(p.claim_file).is_stale()
    assert derive_state(p, ["dataset001"])[0] == STALE
    h = acquire_claim(p)
    assert isinstance(h, ClaimHandle) and h.claim.pid == os.getpid()
    h.release()


def test_other_host_claim_uses_the_heartbeat(tmp_path):
    """Claims from another host are live while their heartbeat is recent, stale after."""
    p = paths(tmp_path)
    write_claim(p, "elsewhere.example", 12345)
    assert not read_claim(p.claim_file).is_stale()
    assert not isinstance(acquire_claim(p), ClaimHandle)
    assert break_stale_claim(p) is None and p.claim_file.exists()
    write_claim(p, "elsewhere.example", 12345, age_s=3600)
    assert read_claim(p.claim_file).is_stale(stale_after=600)
    assert break_stale_claim(p, stale_after=600).host == "elsewhere.example"
    assert not p.claim_file.exists()


def test_heartbeat_touches_the_claim(tmp_path):
    """The owner's heartbeat thread keeps the claim's mtime fresh."""
    p = paths(tmp_path)
    h = acquire_claim(p, heartbeat_s=0.05)
    assert isinstance(h, ClaimHandle)
    old = time.time() - 100
    os.utime(p.claim_file, (old, old))
    time.sleep(0.3)
    assert time.time() - read_claim(p.claim_file).heartbeat < 5
    h.release()


def test_unreadable_claim_is_stale(tmp_path):
    """A claim file with foreign content can be broken instead of blocking forever."""
    p = paths(tmp_path)
    p.claim_file.write_text("not json")
    assert read_claim(p.claim_file).is_stale()
    h = acquire_claim(p)
    assert isinstance(h, ClaimHandle)
    h.release()


def _race(path: str, barrier, results) -> None:
    layout = L.CollectionLayout(Path(path), "rc")
    p = layout.run_paths("all", "param_abcdef", "data_uvwxyz")
    barrier.wait()
    got = acquire_claim(p)
    results.put(isinstance(got, ClaimHandle))
    time.sleep(0.5)  # hold it while the others try


def test_concurrent_claims_have_one_winner(tmp_path):
    """Eight processes claiming at the same instant: exactly one wins."""
    paths(tmp_path)
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), barrier, results)) for _ in range(8)]
    for pr in procs:
        pr.start()
    wins = [results.get(timeout=30) for _ in procs]
    for pr in procs:
        pr.join(30)
    assert sum(wins) == 1


def test_states_derived_from_files(tmp_path):
    """not prepared -> prepared -> queued -> running -> stale / failed -> done."""
    p = paths(tmp_path)
    layout = L.CollectionLayout(tmp_path, "rc")
    ds = ["dataset001"]
    assert derive_state(p, ds)[0] == NOT_PREPARED
    p.path_lfads_input.mkdir()
    p.input_file("dataset001").write_bytes(b"x")
    assert derive_state(p, ds)[0] == PREPARED

    update_queue(
        layout,
        {
            "id": "q1",
            "host": hostname(),
            "pid": os.getpid(),
            "state": "running",
            "runs": [{"path": str(p.path), "state": "queued"}],
        },
    )
    assert str(p.path) in queued_run_paths(layout)
    assert derive_state(p, ds, queued=True)[0] == QUEUED
    update_queue(
        layout,
        {
            "id": "q1",
            "host": hostname(),
            "pid": dead_pid(),
            "state": "running",
            "runs": [{"path": str(p.path), "state": "queued"}],
        },
    )
    assert queued_run_paths(layout) == set()  # a dead queue queues nothing

    h = acquire_claim(p)
    state, reason = derive_state(p, ds)
    assert state == RUNNING and str(os.getpid()) in reason
    h.release()
    write_claim(p, hostname(), dead_pid())
    assert derive_state(p, ds)[0] == STALE
    p.claim_file.unlink()

    write_state(
        p.state_file,
        {
            "state": "failed",
            "failed_stage": "train",
            "exit_code": 1,
            "error": "DataError: counts are negative",
        },
    )
    state, reason = derive_state(p, ds)
    assert state == FAILED and "train" in reason and "negative" in reason
    write_state(p.state_file, {"state": "interrupted", "stage": "train"})
    state, reason = derive_state(p, ds)
    assert state == PREPARED and "interrupted" in reason
    write_state(
        p.state_file,
        {
            "state": "submitted",
            "job_id": str(dead_pid()),
            "cluster": "local",
            "submit_host": hostname(),
        },
    )
    state, reason = derive_state(p, ds)  # the job died before the run started
    assert state == FAILED and "before the run started" in reason
    write_state(
        p.state_file,
        {
            "state": "submitted",
            "job_id": str(os.getpid()),
            "cluster": "local",
            "submit_host": hostname(),
        },
    )
    assert derive_state(p, ds)[0] == QUEUED
    p.done_marker.write_text("done\n")
    assert derive_state(p, ds) == (DONE, "")


def test_queue_file_keeps_live_and_recent_queues(tmp_path):
    """Updates replace a queue's record; dead queues are marked gone and pruned."""
    layout = L.CollectionLayout(tmp_path, "rc")
    for i in range(15):
        update_queue(
            layout,
            {
                "id": f"old{i}",
                "host": hostname(),
                "pid": dead_pid(),
                "state": "running",
                "started_ts": float(i),
                "runs": [],
            },
        )
    update_queue(
        layout,
        {
            "id": "me",
            "host": hostname(),
            "pid": os.getpid(),
            "state": "running",
            "started_ts": 100.0,
            "runs": [],
        },
    )
    queues = read_queue_file(layout)
    ids = [q["id"] for q in queues]
    assert "me" in ids and len(ids) <= 11
    assert all(q["state"] == "gone" for q in queues if q["id"] != "me")


def test_log_tail(tmp_path):
    """The last non-empty lines, tolerant of a missing file and of carriage returns."""
    f = tmp_path / "lfads.out"
    assert log_tail(f) == []
    f.write_text("".join(f"line {i}\n" for i in range(100)) + "bar 1\rbar 2\r\n\n")
    tail = log_tail(f, 5)
    assert tail == ["line 97", "line 98", "line 99", "bar 1", "bar 2"]


def test_pid_alive():
    """Our own pid is alive, a reaped child's is not."""
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(0)


@pytest.mark.parametrize("content", ["", "{}", '{"host": 1}'])
def test_partial_claim_content_is_breakable(tmp_path, content):
    """Claims missing fields are treated as stale, never as a crash."""
    p = paths(tmp_path)
    p.claim_file.write_text(content)
    assert read_claim(p.claim_file).is_stale()
