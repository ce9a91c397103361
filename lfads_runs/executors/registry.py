"""The executor registry: name -> (module, class). Nothing else, so anything may import it."""

from __future__ import annotations

__all__ = ["EXECUTORS"]

#: name -> (module, class). Add a backend by adding a line (its class declares the rest).
EXECUTORS: dict[str, tuple[str, str]] = {
    "local": ("lfads_runs.executors.local", "LocalExecutor"),
    "debug": ("lfads_runs.executors.debug", "DebugExecutor"),
    "slurm": ("lfads_runs.executors.slurm", "SlurmExecutor"),
    "ray": ("lfads_runs.executors.ray_", "RayExecutor"),
}
