"""The collection's queue file: which queues run (or ran) and what each did to its runs.

``lfads_runs.queue.json`` holds a list of queue records (newest last). Each
record says which executor ran it, on which host and pid, when, the state of
every run it was given (queued, running, done, skipped, failed, interrupted,
submitted) and the final counts. Several queues may share a collection, so
every update is a short read-modify-write under the collection's queue lock,
written atomically. ``lfads-runs status`` reads it to show runs that a live
queue still has to start as *queued*.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

from .. import layout as L
from .._atomic import LockTimeout, atomic_write_json, file_lock
from .._procs import pid_alive
from ..claims import hostname, now_iso

__all__ = ["KEEP_FINISHED", "read_queue_file", "update_queue", "queued_run_paths", "live"]

#: Finished (or dead) queue records kept in the file besides the live ones.
KEEP_FINISHED = 10


def read_queue_file(layout: L.CollectionLayout) -> list[dict[str, Any]]:
    """Every queue record (oldest first); empty when there is no file or it is unreadable."""
    try:
        data = json.loads(layout.queue_state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    queues = data.get("queues") if isinstance(data, dict) else None
    return [q for q in queues if isinstance(q, dict)] if isinstance(queues, list) else []


def live(record: Mapping[str, Any]) -> bool:
    """Whether a queue record belongs to a queue still running (unknown hosts: trust it)."""
    if record.get("state") != "running":
        return False
    if record.get("host") == hostname():
        return pid_alive(int(record.get("pid") or 0))
    return True


def update_queue(layout: L.CollectionLayout, record: Mapping[str, Any]) -> None:
    """Insert or replace the record with ``record["id"]``; prune old finished ones.

    Failing to take the lock within a few seconds only skips this update: the
    queue file is a report, never needed to train.
    """
    layout.path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(LockTimeout, OSError), file_lock(layout.queue_lock_file, timeout=5):
        queues = [q for q in read_queue_file(layout) if q.get("id") != record["id"]]
        queues.append(dict(record, updated=now_iso(), updated_ts=time.time()))
        for q in queues:  # a queue killed without a word: say so
            if q.get("state") == "running" and q["id"] != record["id"] and not live(q):
                q["state"] = "gone"
        alive = [q for q in queues if live(q) or q["id"] == record["id"]]
        done = [q for q in queues if q not in alive][-KEEP_FINISHED:]
        keep = sorted(alive + done, key=lambda q: q.get("started_ts") or 0.0)
        atomic_write_json(layout.queue_state_file, {"queues": keep})


def queued_run_paths(layout: L.CollectionLayout) -> set[str]:
    """Run folders that a live queue lists as queued (not started yet)."""
    out: set[str] = set()
    for q in read_queue_file(layout):
        if live(q):
            out.update(r["path"] for r in q.get("runs", []) if r.get("state") == "queued")
    return out
