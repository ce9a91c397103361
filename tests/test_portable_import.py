"""Every module imports where POSIX-only modules and calls are missing (as on Windows).

The interpreter here is POSIX, so the test takes those away before lfads_runs is
imported: the POSIX-only standard modules cannot be imported, and ``os.fork``,
``os.killpg``, ``os.setsid`` and ``signal.SIGKILL`` are gone. The features that need
them must then say so (or use their portable path), not fail at import.
"""

from __future__ import annotations

import textwrap

import pytest
from _import_blocker import block_imports, run_python

BLOCKED = ["fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "syslog", "posix_ipc"]
NO_POSIX = block_imports(BLOCKED) + textwrap.dedent("""
    import os, signal
    for name in ("fork", "killpg", "setsid", "getpgid", "sched_getaffinity", "getuid"):
        if hasattr(os, name):
            delattr(os, name)
    for name in ("SIGKILL", "SIGCHLD", "SIGHUP"):
        if hasattr(signal, name):
            delattr(signal, name)
""")


def run(code: str):
    return run_python(NO_POSIX, code, timeout=300)


def test_every_module_imports_without_posix_only_modules():
    """All of lfads_runs (engine and plots included) plus the CLI's commands."""
    pytest.importorskip("torch")
    proc = run("""
        import pkgutil, importlib, lfads_runs
        names = []
        for m in pkgutil.walk_packages(lfads_runs.__path__, "lfads_runs."):
            if m.name.endswith("__main__"):
                continue
            importlib.import_module(m.name)
            names.append(m.name)
        from lfads_runs.cli import _commands
        assert "fcntl" not in sys.modules
        print(len(names))
    """)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) > 50  # really walked the package


def test_local_queue_degrades_to_subprocesses_without_fork():
    proc = run("""
        from lfads_runs.exceptions import ConfigError
        from lfads_runs.executors.local import LocalExecutor
        assert LocalExecutor(device="cpu").start_method == "subprocess"
        try:
            LocalExecutor(device="cpu", start_method="forkserver")
        except ConfigError as exc:
            print("error:", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "error: start_method 'forkserver' needs os.fork" in proc.stdout


def test_processes_are_probed_and_killed_without_killpg_or_sigkill():
    proc = run("""
        import subprocess, sys, time
        from lfads_runs._procs import kill_process, pid_alive, stop_process
        for stop in (stop_process, kill_process):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            assert pid_alive(child.pid)
            stop(child.pid)
            child.wait(timeout=30)
            assert not pid_alive(child.pid)
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
