"""file_lock: an exclusive OS lock (filelock) that tries without blocking and dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from lfads_runs._atomic import LockTimeout, file_lock

HOLDER = textwrap.dedent("""
    import sys, time
    from lfads_runs._atomic import file_lock
    with file_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """A separate process that holds the lock on ``tmp_path / 'x.lock'``."""
    path = tmp_path / "x.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield path, proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_try_lock_held_by_another_process_times_out_at_once(holder):
    path, _ = holder
    t0 = time.monotonic()
    with pytest.raises(LockTimeout, match="x.lock"), file_lock(path, timeout=0):
        pass
    assert time.monotonic() - t0 < 5
    with pytest.raises(LockTimeout), file_lock(path, timeout=0.3):
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_lock_is_released_when_the_holder_is_killed(holder):
    path, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with file_lock(path, timeout=5):
        pass


def test_blocks_in_one_process_exclude_each_other(tmp_path):
    """A second thread waits for the first block to end (no shared re-entry)."""
    path = tmp_path / "sub" / "y.lock"  # the folder is created
    order: list[str] = []
    inside = threading.Event()

    def first():
        with file_lock(path):
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    inside.wait(10)
    with pytest.raises(LockTimeout), file_lock(path, timeout=0):
        pass
    with file_lock(path, timeout=30):
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"]


def test_release_keeps_the_lock_file_and_frees_the_lock(tmp_path):
    path = tmp_path / "z.lock"
    with file_lock(path):
        pass
    assert path.exists()  # as with flock before: the file stays, only the lock goes
    with file_lock(path, timeout=0):
        pass


def test_error_in_block_releases_the_lock(tmp_path):
    path = tmp_path / "e.lock"
    with pytest.raises(ValueError), file_lock(path):
        raise ValueError("boom")
    with file_lock(path, timeout=0):
        pass
