"""GPU ids: parsing what a user or YAML gives, and finding the GPUs of this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from ..exceptions import ConfigError

__all__ = ["detect_gpus", "parse_gpus"]


def parse_gpus(value: str | int | Sequence[str | int] | None) -> list[str] | None:
    """``"0,1"``, ``[0, 1]`` or ``0`` -> ``["0", "1"]``; ``""``/``"none"``/``[]`` -> ``[]``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"gpus: expected GPU ids like 0,1, got {value!r}")
    if isinstance(value, int):
        items: list[str] = [str(value)]
    elif isinstance(value, str):
        if value.strip().lower() in ("", "none", "cpu"):
            return []
        items = [v.strip() for v in value.split(",") if v.strip()]
    else:
        items = [str(v).strip() for v in value]
    for g in items:
        if not g or any(c.isspace() or c == "," for c in g):
            raise ConfigError(f"gpus: invalid GPU id {g!r}")
    if len(set(items)) != len(items):
        raise ConfigError(f"gpus: a GPU is listed twice: {items}")
    return items


def detect_gpus() -> list[str]:
    """GPU ids visible here: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi``, else none."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return parse_gpus(env) or []
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]
