"""A helper process that imports the engine once and forks one child process per run.

Importing torch takes over a second; a fresh interpreter per run would pay it
every time. The server (``python -m lfads_runs.executors._forkserver``) imports
the pipeline and the engine, then forks a child for each request it reads on
stdin. Each child is a run of its own: own session, own environment, output
appended to the run's ``lfads.out``, its own exit status (relayed to the queue,
since the server is the child's parent).

Unlike :mod:`multiprocessing`'s fork server this never re-imports the caller's
``__main__`` in the children, so ``rc.train()`` works from any script,
notebook or ``python -``.

Protocol (one JSON object per line): requests ``{"id", "task", "log", "env",
"queue_host", "queue_pid"}``; replies ``{"ready": true}``, ``{"id", "pid"}``,
``{"id", "error"}`` and ``{"exit": pid, "code": n}``. The server stops
accepting work when its stdin closes (the queue ended or died) and exits once
its children have.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["ForkServer", "ForkServerError", "openmp_env", "serve"]


class ForkServerError(RuntimeError):
    """The fork server could not start a run."""


def openmp_env(env: Mapping[str, str], shared: bool) -> dict[str, str]:
    """``env`` with ``OMP_WAIT_POLICY=PASSIVE`` when runs share the cores (``shared``),
    unless the user chose a policy.

    OpenMP threads that spin while waiting make a run many times slower as soon
    as the machine has more busy threads than cores (other runs): a tiny 2-thread
    run took 1.8 s passive against 13-19 s spinning on a loaded 2-core machine.
    A run alone on its cores is faster spinning (bench_train, 2 threads, quiet:
    about 20 % more steps/s), so it keeps OpenMP's default.
    """
    out = dict(env)
    if shared:
        out.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return out


# ---------------------------------------------------------------------------- client
class ForkServer:
    """Client side: starts the server, asks it for children, learns their exit codes."""

    def __init__(self, python: str | None = None, timeout: float = 120.0, shared: bool = False):
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "lfads_runs.executors._forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=openmp_env(os.environ, shared),  # read once, when OpenMP loads in the server
            start_new_session=True,  # Ctrl-C is the queue's business, not the server's
        )
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._ready = False
        self._next = 0
        threading.Thread(target=self._read, name="lfads-forkserver-reader", daemon=True).start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready or self._dead(), timeout):
                raise ForkServerError(f"the fork server did not start within {timeout} s")
            if not self._ready:
                raise ForkServerError(f"the fork server exited with status {self.proc.poll()}")

    def _dead(self) -> bool:
        return self.proc.poll() is not None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                if msg.get("ready"):
                    self._ready = True
                elif "exit" in msg:
                    self._exits[int(msg["exit"])] = int(msg["code"])
                elif "id" in msg:
                    self._replies[int(msg["id"])] = msg
                self._cond.notify_all()
        with self._cond:  # EOF: the server is gone
            self._cond.notify_all()

    def alive(self) -> bool:
        return not self._dead()

    def start(
        self, task_json: str, log: str, env: dict[str, str], queue_host: str, queue_pid: int
    ) -> int:
        """Fork a child that runs ``task_json``; returns its pid."""
        with self._cond:
            rid = self._next
            self._next += 1
        request = {
            "id": rid,
            "task": task_json,
            "log": log,
            "env": env,
            "queue_host": queue_host,
            "queue_pid": queue_pid,
        }
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as exc:
            raise ForkServerError(f"the fork server is gone: {exc}") from None
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self._replies or self._dead(), 60):
                raise ForkServerError("the fork server did not answer within 60 s")
            reply = self._replies.pop(rid, None)
        if reply is None:
            raise ForkServerError(f"the fork server exited with status {self.proc.poll()}")
        if "error" in reply:
            raise ForkServerError(reply["error"])
        return int(reply["pid"])

    def exit_code(self, pid: int) -> int | None:
        """The child's exit status (negative: killed by that signal), or None while it runs."""
        with self._cond:
            if pid in self._exits:
                return self._exits.pop(pid)
        if self._dead():
            from .._procs import pid_alive

            if not pid_alive(pid):  # its parent died before reporting it
                with self._cond:
                    return self._exits.pop(pid, -signal.SIGKILL)
        return None

    def close(self) -> None:
        """Stop accepting work; the server exits once its children have."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()


# ---------------------------------------------------------------------------- server
def _send(msg: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(1, (json.dumps(msg) + "\n").encode())


def _child(req: dict[str, Any]) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(req["env"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        from ..pipeline import RunTask, execute, outcome_exit_code

        outcome = execute(
            RunTask.from_json(req["task"]),
            executor="local",
            queue_host=req["queue_host"],
            queue_pid=req["queue_pid"],
            install_signal_handlers=True,
            watch_pid=req["queue_pid"],  # our parent is the server, which outlives the queue
        )
        code = outcome_exit_code(outcome)
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The server loop (``python -m lfads_runs.executors._forkserver``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import lfads_runs.pipeline  # noqa: F401

    with contextlib.suppress(ImportError):
        import lfads_runs.engine  # noqa: F401  (torch: the slow import we do once)
    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
    children: set[int] = set()
    stdin = sys.stdin.buffer
    accepting = True
    buf = b""
    _send({"ready": True})
    while accepting or children:
        _reap(children)
        if not accepting:
            time.sleep(0.05)
            continue
        ready, _, _ = select.select([stdin], [], [], 0.02)
        if not ready:
            continue
        chunk = os.read(stdin.fileno(), 1 << 16)
        if not chunk:
            accepting = False  # the queue closed the pipe or died
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                req = json.loads(line)
                pid = os.fork()
            except (ValueError, OSError) as exc:
                _send({"id": _rid(line), "error": f"{type(exc).__name__}: {exc}"})
                continue
            if pid == 0:
                _child(req)
            children.add(pid)
            _send({"id": req["id"], "pid": pid})


def _rid(line: bytes) -> int:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return int(json.loads(line)["id"])
    return -1


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        _send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve()
