"""Optional native kernels: built with the system C++ compiler ahead of time or on first use.

The kernels (C++ sources in ``lfads_runs/engine/csrc``, shipped as package data) run
the GRU layers and the controller loop with the input projections, the elementwise
work of each time step and the weight gradients fused, their small matrix products
in AVX-512/AVX2 register tiles (``simd()`` says which), and draw random numbers
quickly. They are a speed-up only: without them, or with ``LFADS_RUNS_NATIVE=0``,
the engine uses the pure-torch code paths, which compute the same equations
(results agree to float32 round-off, random streams differ; checkpoints record
which stream a run used). They are built for x86-64 Linux, and macOS where the
compiler has OpenMP; on other processors or systems, or without a compiler, the
engine says why once and uses the torch path. ``LFADS_RUNS_NATIVE=1`` makes that
an error instead. ``lfads-runs build-kernels`` builds them ahead of time (``make
setup`` runs it) and shows why a machine cannot.

The shared library is built against the running torch (headers and libraries
from the torch installation, no Python headers) with ``-march=native`` (plus
``$LFADS_RUNS_NATIVE_CFLAGS``, e.g. ``-mno-avx512f`` to build the code path of
processors without AVX-512), and cached under ``$LFADS_RUNS_CACHE`` (default
``~/.cache/lfads_runs``) in a folder keyed by the sources, torch version, compiler
and CPU, so machines sharing a home folder do not load each other's builds.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import torch

from .._atomic import LockTimeout, atomic_write_text, file_lock
from .._tempfiles import make_temp, sweep_stale_temps
from ..exceptions import LfadsRunsError, LfadsRunsWarning

__all__ = [
    "NativeKernelsUnavailable",
    "native",
    "native_for",
    "native_available",
    "build_native",
    "load_native",
    "unsupported_reason",
    "set_native_enabled",
    "tune_allocator",
]

#: The kernels' sources (package data): the translation unit and the headers it includes.
_SRC_DIR = Path(__file__).resolve().parent / "csrc"
_MAIN_SOURCE = "lfads_native.cpp"
#: Processors whose instruction sets the kernels' tiles (and ``-march=native``) are written for.
_X86_64 = ("x86_64", "amd64", "x64")

_lock = threading.Lock()


class NativeKernelsUnavailable(LfadsRunsError, RuntimeError):
    """The native kernels cannot be built or loaded here (the reason is the message)."""


_state: dict[str, object] = {}


def cpu_flags_line() -> str | None:
    """The ``flags`` line of /proc/cpuinfo (the instruction sets), None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return None


def _cpu_signature() -> str:
    line = cpu_flags_line()
    if line is not None:
        return hashlib.sha256(line.encode()).hexdigest()[:16]
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    for c in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if c and shutil.which(c):
            return c
    return None


def _sources() -> dict[str, str]:
    """File name -> text of every kernel source (the cache key covers all of them)."""
    files = sorted(p for p in _SRC_DIR.iterdir() if p.suffix in (".cpp", ".h"))
    if not any(p.name == _MAIN_SOURCE for p in files):
        raise NativeKernelsUnavailable(
            f"the kernel sources are missing ({_SRC_DIR / _MAIN_SOURCE})"
        )
    return {p.name: p.read_text(encoding="utf-8") for p in files}


def unsupported_reason() -> str | None:
    """Why this machine cannot use the kernels before trying a compiler, else None."""
    machine = platform.machine().lower()
    if machine not in _X86_64:
        return (
            f"they are written for x86-64 processors, this one is {platform.machine() or 'unknown'}"
        )
    if not (sys.platform.startswith("linux") or sys.platform == "darwin"):
        return f"they are built for Linux and macOS only, this is {sys.platform}"
    return None


def _check_openmp(cxx: str, folder: Path) -> None:
    """Fail clearly when ``cxx`` has no OpenMP (Apple's clang): the kernels' threads need it."""
    probe = folder / "openmp_probe.cpp"
    probe.write_text("#include <omp.h>\nint lfads_probe() { return omp_get_max_threads(); }\n")
    out = folder / "openmp_probe.o"
    proc = subprocess.run(
        [cxx, "-fopenmp", "-c", str(probe), "-o", str(out)], capture_output=True, text=True
    )
    out.unlink(missing_ok=True)
    probe.unlink(missing_ok=True)
    if proc.returncode != 0:
        hint = " (on macOS: brew install libomp llvm, then CXX=clang++ of that llvm)" * (
            sys.platform == "darwin"
        )
        raise NativeKernelsUnavailable(f"the C++ compiler {cxx} has no OpenMP{hint}")


def _flags(std: str) -> list[str]:
    from torch.utils import cpp_extension

    abi = int(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", 1))
    inc = [f"-I{p}" for p in cpp_extension.include_paths()]
    libdir = cpp_extension.library_paths()[0]
    extra = os.environ.get("LFADS_RUNS_NATIVE_CFLAGS", "").split()
    return [
        "-O3", "-march=native", *extra, "-fno-math-errno", "-fno-trapping-math", "-fopenmp", f"-std={std}",
        "-shared", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-w", *inc,
        f"-L{libdir}", "-lc10", "-ltorch_cpu", f"-Wl,-rpath,{libdir}",
    ]  # fmt: skip


def _cache_dir() -> Path:
    base = os.environ.get("LFADS_RUNS_CACHE") or Path.home() / ".cache" / "lfads_runs"
    return Path(base) / "native"


def build_native(force: bool = False, *, cached_only: bool = False) -> Path:
    """Compile the kernels (if not cached) and return the shared library's path.

    ``cached_only`` returns a cached build but never compiles (``lfads-runs doctor``).

    Raises
    ------
    NativeKernelsUnavailable
        Unsupported processor or system, no compiler, a compiler without OpenMP,
        the compilation failed (its output is in the message), or ``cached_only``
        and there is no build for this source, torch, compiler and CPU.
    """
    reason = unsupported_reason()
    if reason is not None:
        raise NativeKernelsUnavailable(reason)
    cxx = _compiler()
    if cxx is None:
        raise NativeKernelsUnavailable("no C++ compiler found (install g++ or set CXX)")
    sources = _sources()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        "\n".join(
            [
                *(f"{name}\n{text}" for name, text in sources.items()),
                torch.__version__,
                version,
                _cpu_signature(),
                sys.platform,
                " ".join(_flags("c++20")),
            ]
        ).encode()
    ).hexdigest()[:20]
    folder = _cache_dir() / key
    lib = folder / "lfads_native.so"
    if lib.is_file() and not force:
        return lib
    if cached_only:
        raise NativeKernelsUnavailable(f"not built yet for this torch, compiler and CPU ({lib})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / ".lock", timeout=600):
            if lib.is_file() and not force:
                return lib
            return _compile(cxx, sources, folder, lib)
    except LockTimeout as exc:
        raise NativeKernelsUnavailable(
            f"another process is still building the kernels: {exc}"
        ) from exc
    except OSError as exc:  # an unwritable cache (LFADS_RUNS_CACHE chooses another), ...
        raise NativeKernelsUnavailable(f"building the kernels in {folder} failed: {exc}") from exc


def _compile(cxx: str, sources: dict[str, str], folder: Path, lib: Path) -> Path:
    """Compile into ``folder`` (its lock held) and move the library into place at the end."""
    _check_openmp(cxx, folder)
    # The sources beside the library: what was compiled stays inspectable.
    for name, text in sources.items():
        atomic_write_text(folder / name, text)
    src = folder / _MAIN_SOURCE
    errors = []
    sweep_stale_temps(lib)  # what a compile killed midway left behind
    for std in ("c++20", "c++17"):
        tmp = make_temp(lib, ".tmp.so")  # named after this process, as every atomic write
        try:
            proc = subprocess.run(
                [cxx, str(src), "-o", tmp, *_flags(std)], capture_output=True, text=True
            )
            if proc.returncode == 0:
                os.replace(tmp, lib)
                return lib
            errors.append(proc.stderr[-2000:])
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise NativeKernelsUnavailable(f"compiling the native kernels failed:\n{errors[-1]}")


def load_native(lib: Path):
    """Load the built library ``lib`` and return its ops (``torch.ops.lfads_ext``)."""
    torch.ops.load_library(str(lib))
    return torch.ops.lfads_ext


def native():
    """``torch.ops.lfads_ext`` when the kernels can be used, else None (CPU only)."""
    with _lock:
        if "ops" in _state:
            return _state["ops"]
        mode = os.environ.get("LFADS_RUNS_NATIVE", "auto").strip().lower()
        ops = None
        if mode not in ("0", "off", "false", "no"):
            try:
                ops = load_native(build_native())
            except Exception as exc:  # noqa: BLE001 - any failure means: use the torch path
                if mode in ("1", "on", "true", "yes"):
                    raise
                warnings.warn(
                    f"LFADS engine: native kernels unavailable ({str(exc).splitlines()[0]}); "
                    "using the slower pure-torch code",
                    LfadsRunsWarning,
                    stacklevel=2,
                )
        _state["ops"] = ops
        return ops


def tune_allocator() -> None:
    """Ask glibc to reuse large freed blocks (see ``keep_heap_memory`` in the kernels).

    Called once by training and sampling when the native kernels are in use;
    ``LFADS_RUNS_KEEP_HEAP=0`` leaves the allocator alone.
    """
    ops = native()
    if ops is None or _state.get("heap_tuned"):
        return
    if os.environ.get("LFADS_RUNS_KEEP_HEAP", "1").strip() not in ("0", "off", "false", "no"):
        ops.keep_heap_memory()
    _state["heap_tuned"] = True


def native_for(t: torch.Tensor):
    """The kernels when they can take ``t`` (float32 on the CPU), else None."""
    if t.device.type != "cpu" or t.dtype != torch.float32:
        return None
    return native()


def native_available() -> bool:
    return native() is not None


def set_native_enabled(enabled: bool | None) -> None:
    """Turn the native kernels off (False), or look them up again on next use (None/True)."""
    with _lock:
        _state.clear()
        if enabled is False:
            _state["ops"] = None
