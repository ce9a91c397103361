"""What this machine offers lfads_runs (``lfads-runs doctor``): versions, kernels, threads, GPUs.

Everything is read without side effects: the native kernels are only looked up
in their cache (compiling them takes a minute) unless ``build_kernels`` asks
for it, and torch is imported only when it is installed.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

from ._optional import extras_present, has_module
from ._procs import usable_cores
from .exceptions import ConfigError

__all__ = ["environment_report", "format_report", "PACKAGES"]

#: Distributions whose versions the report names (the core dependencies and torch).
PACKAGES = ("numpy", "h5py", "torch", "PyYAML", "attrs", "click", "filelock", "tqdm")

_OFF = ("0", "off", "false", "no")


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _native_kernels(build: bool) -> dict[str, Any]:
    """Whether the kernels are built (or, with ``build``, build them) and their instruction set."""
    info: dict[str, Any] = {"enabled": True, "built": False, "simd": None, "library": None}
    info["note"] = None
    if os.environ.get("LFADS_RUNS_NATIVE", "auto").strip().lower() in _OFF:
        info.update(enabled=False, note="turned off by LFADS_RUNS_NATIVE")
        return info
    from .engine import _ext

    try:
        lib = _ext.build_native(cached_only=not build)
    except Exception as exc:  # noqa: BLE001 - any reason is the answer: not usable yet
        info["note"] = str(exc).splitlines()[0]
        return info
    ops = _ext.native()  # loads the cached library, compiles nothing
    info.update(built=True, library=str(lib), simd=None if ops is None else str(ops.simd()))
    return info


def _torch(build_kernels: bool) -> dict[str, Any]:
    import torch

    gpus = []
    if torch.cuda.is_available():
        gpus = [
            {"index": i, "name": torch.cuda.get_device_name(i)}
            for i in range(torch.cuda.device_count())
        ]
    from .engine.threads import adaptive_threads_enabled, other_running_threads

    mps = getattr(torch.backends, "mps", None)
    try:
        adaptive: bool | str = adaptive_threads_enabled() and other_running_threads() is not None
    except ConfigError as exc:
        adaptive = str(exc)
    return {
        "threads": torch.get_num_threads(),
        "adaptive_threads": adaptive,
        "cuda": torch.version.cuda,
        "gpus": gpus,
        "mps": bool(mps is not None and mps.is_available()),
        "native_kernels": _native_kernels(build_kernels),
    }


def environment_report(*, build_kernels: bool = False) -> dict[str, Any]:
    """The report as a JSON-ready dict (see ``lfads-runs doctor --json``)."""
    from ._version import __version__

    report: dict[str, Any] = {
        "lfads_runs": __version__,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "packages": {name: _dist_version(name) for name in PACKAGES},
        "threads": {
            "cpu_count": os.cpu_count(),
            "usable_cores": usable_cores(),
            "torch": None,
            "adaptive": None,  #: True, False or why LFADS_RUNS_ADAPT_THREADS is unusable
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "cuda": None,  #: the CUDA version torch was built for (None: a CPU build)
        "gpus": [],
        "mps": False,
        "native_kernels": None,
        "extras": extras_present(),
        "torch_error": None,  #: why torch is installed but cannot be imported
    }
    if has_module("torch"):
        try:
            t = _torch(build_kernels)
        except Exception as exc:  # noqa: BLE001 - a broken torch install is what doctor is for
            report["torch_error"] = (
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            return report
        report["threads"]["torch"] = t["threads"]
        report["threads"]["adaptive"] = t["adaptive_threads"]
        report.update(
            cuda=t["cuda"], gpus=t["gpus"], mps=t["mps"], native_kernels=t["native_kernels"]
        )
    else:
        from .executors.local import detect_gpus  # nvidia-smi: GPUs exist, torch is missing

        report["gpus"] = [{"index": g, "name": None} for g in detect_gpus()]
    return report


def _kernels_line(k: dict[str, Any] | None, torch_error: str | None) -> str:
    if torch_error is not None:
        return f"unknown (importing torch failed: {torch_error})"
    if k is None:
        return "no (torch is not installed)"
    if not k["enabled"]:
        return f"off ({k['note']})"
    if k["built"]:
        return f"built, {k['simd'] or 'unknown'} ({k['library']})"
    return f"not built ({k['note']}); `lfads-runs doctor --build-kernels` builds them"


def format_report(r: dict[str, Any]) -> str:
    """The report as aligned ``name: value`` lines for a terminal."""
    py, pf, th = r["python"], r["platform"], r["threads"]
    rows = [
        ("lfads_runs", r["lfads_runs"]),
        ("python", f"{py['version']} ({py['implementation']}, {py['executable']})"),
        ("platform", f"{pf['system']} {pf['release']} {pf['machine']}"),
    ]
    rows += [(name, v or "not installed") for name, v in r["packages"].items()]
    if r["cuda"]:
        rows.append(("torch CUDA", r["cuda"]))
    rows.append(("native kernels", _kernels_line(r["native_kernels"], r["torch_error"])))
    threads = f"{th['usable_cores']} usable of {th['cpu_count']} cores"
    if th["torch"] is not None:
        threads += f", torch uses {th['torch']}"
    adaptive = th.get("adaptive")
    if isinstance(adaptive, str):
        threads += f" ({adaptive})"
    elif adaptive is not None:
        threads += " (fewer while other processes are busy)" if adaptive else " (fixed)"
    if th["OMP_NUM_THREADS"] is not None:
        threads += f", OMP_NUM_THREADS={th['OMP_NUM_THREADS']}"
    rows.append(("threads", threads))
    gpus = ", ".join(f"{g['index']}: {g['name'] or '?'}" for g in r["gpus"]) or "none"
    rows.append(("GPUs", gpus + (" (Apple MPS available)" if r["mps"] else "")))
    have = [e for e, ok in r["extras"].items() if ok]
    missing = [e for e, ok in r["extras"].items() if not ok]
    rows.append(("extras", ", ".join(have) or "none"))
    rows.append(("extras missing", ", ".join(missing) or "none"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
