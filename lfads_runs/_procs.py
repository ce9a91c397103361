"""Processes on any OS: the cores this one may use; is another alive, stop or kill one
(with its process group on POSIX).

POSIX has ``kill(pid, 0)``, process groups and SIGKILL; Windows has none of
them (there ``os.kill`` with any signal but the console events *terminates*
the process, so it must never be used as a liveness probe).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

__all__ = ["pid_alive", "stop_process", "kill_process", "usable_cores", "CAN_FORK"]

#: Whether ``os.fork`` exists (not on Windows): the queue's fork server needs it.
CAN_FORK = hasattr(os, "fork")

#: SIGKILL where it exists; Windows' os.kill terminates the process for any signal.
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)


def usable_cores() -> int | None:
    """The cores this process may run on (Linux: its affinity), else the machine's
    count; None where the OS cannot tell."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (zombies count as dead)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    # A zombie (exited, not yet reaped by its parent) no longer trains anything. Only Linux
    # has /proc/<pid>/stat; elsewhere a zombie counts as alive until its parent reaps it.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _pid_alive_windows(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = ctypes.c_void_p
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        # Access denied: it exists (another user's); anything else: no such process.
        return ctypes.get_last_error() == access_denied
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(ctypes.c_void_p(handle), ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(ctypes.c_void_p(handle))


def _signal(pid: int, sig: int, group: bool) -> None:
    if group and hasattr(os, "killpg"):
        try:
            os.killpg(pid, sig)  # the child leads its own session (and its bash children)
            return
        except ProcessLookupError:  # not yet a session leader, or gone
            pass
        except PermissionError:
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop_process(pid: int, *, group: bool = True) -> None:
    """Ask ``pid`` (and its process group, on POSIX) to stop: SIGTERM, or termination on Windows."""
    _signal(pid, signal.SIGTERM, group)


def kill_process(pid: int, *, group: bool = True) -> None:
    """Kill ``pid`` (and its process group, on POSIX) at once."""
    _signal(pid, _KILL, group)
