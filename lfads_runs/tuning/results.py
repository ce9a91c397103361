"""Reading a PBT search's files (no ray, no torch): trajectories, state, best member."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import attrs

from .. import layout as L

__all__ = [
    "MemberRecord",
    "TuneStatus",
    "best_member",
    "read_members",
    "search_log_scale",
    "tune_status",
]

#: a member whose state file is older than this is not counted as live
LIVE_SECONDS = 600.0


@attrs.frozen
class MemberRecord:
    """One member's trajectory: a row per completed generation."""

    name: str
    rows: tuple[dict[str, Any], ...]
    state: dict[str, Any] | None

    @property
    def generation(self) -> int:
        """Last completed generation (-1: none)."""
        return int(self.rows[-1]["generation"]) if self.rows else -1

    @property
    def last_value(self) -> float | None:
        return self.rows[-1]["value"] if self.rows else None

    @property
    def live(self) -> bool:
        s = self.state or {}
        return s.get("state") == "training" and time.time() - s.get("updated", 0) < LIVE_SECONDS


def read_members(tune_dir: str | os.PathLike) -> list[MemberRecord]:
    """Every ``member_<n>/`` of a tune folder, in member order."""
    tune_dir = Path(tune_dir)
    if not tune_dir.is_dir():
        return []
    out = []
    for d in sorted(tune_dir.iterdir()):
        if not d.is_dir() or L.member_index(d.name) is None:
            continue
        rows = []
        traj = d / L.MEMBER_TRAJECTORY
        if traj.is_file():
            for line in traj.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue  # a damaged line: skip it rather than hide the others
        state = None
        with contextlib.suppress(OSError, ValueError):
            state = json.loads((d / L.MEMBER_STATE).read_text(encoding="utf-8"))
        out.append(MemberRecord(d.name, tuple(rows), state))
    return out


def search_log_scale(tune_dir: str | os.PathLike) -> list[str]:
    """The searched hyperparameters with a log scale, from ``tune.json``."""
    try:
        info = json.loads((Path(tune_dir) / L.TUNE_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r["name"] for r in info.get("spec", {}).get("search", []) if r.get("scale") == "log"]


def best_member(members: list[MemberRecord], mode: str) -> MemberRecord | None:
    """The member with the best metric at the latest generation all reached."""
    done = [m for m in members if m.rows]
    if not done:
        return None
    gen = min(m.generation for m in done)

    def key(m: MemberRecord) -> float:
        row = next(r for r in m.rows if r["generation"] == gen)
        v = row["value"]
        if v is None or not math.isfinite(v):
            return math.inf
        return v if mode == "min" else -v

    best = min(done, key=key)
    return None if math.isinf(key(best)) else best


@attrs.frozen
class TuneStatus:
    """What ``lfads-runs status`` shows of a search."""

    state: str  #: running, done, failed, interrupted (from tune.json)
    generation: int  #: latest generation every member completed (-1: none)
    generations: int
    population: int
    metric: str
    best_member: str | None
    best_value: float | None
    live_members: int

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def tune_status(tune_dir: str | os.PathLike) -> TuneStatus | None:
    """The state of the search in ``tune_dir``, or None when there is none."""
    tune_dir = Path(tune_dir)
    try:
        info = json.loads((tune_dir / L.TUNE_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    spec = info.get("spec", {})
    members = read_members(tune_dir)
    mode = info.get("mode", "min")
    best = best_member(members, mode)
    gens = [m.generation for m in members]
    return TuneStatus(
        state=str(info.get("state", "unknown")),
        generation=min(gens) if gens else -1,
        generations=int(spec.get("generations", 0)),
        population=int(spec.get("population", 0)),
        metric=str(spec.get("metric", "")),
        best_member=best.name if best else None,
        best_value=best.last_value if best else None,
        live_members=sum(m.live for m in members),
    )
