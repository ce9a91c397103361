"""Native kernels as shipped source: ahead-of-time build, fallbacks, and the random stream.

The fallbacks are simulated: no compiler (an empty PATH), a compiler without
OpenMP (a wrapper that rejects ``-fopenmp`` as Apple's clang does), and a
processor or system the kernels are not written for (``platform.machine`` and
``sys.platform`` patched). Each must give one clear reason and leave the engine
on its pure-torch code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from fnmatch import fnmatch
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lfads_runs.engine import _ext, train  # noqa: E402
from lfads_runs.exceptions import LfadsRunsError, LfadsRunsWarning  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "lfads_runs" / "engine" / "csrc"
#: The simulated failures below come after the processor and system checks.
supported_here = pytest.mark.skipif(
    _ext.unsupported_reason() is not None, reason="kernels not supported on this machine"
)
needs_compiler = pytest.mark.skipif(
    not _ext.native_available(), reason="native kernels not available on this machine"
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CXX", "LFADS_RUNS_NATIVE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["LFADS_RUNS_CACHE"] = str(tmp_path / "cache")  # no cached build to fall back on
    env.update(extra)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lfads_runs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_sources_are_package_data_and_formatted():
    names = sorted(p.name for p in CSRC.iterdir())
    assert "lfads_native.cpp" in names and {"common.h", "gemm.h", "rng.h"} <= set(names)
    assert not (ROOT / "lfads_runs" / "engine" / "_ext_src.py").exists()
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["lfads_runs"]
    for p in CSRC.iterdir():
        rel = p.relative_to(ROOT / "lfads_runs").as_posix()
        assert any(fnmatch(rel, g) for g in globs), f"{rel} is not package data"
    # the dev extra's clang-format sits beside this Python (a venv not on PATH)
    here = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    tool = shutil.which("clang-format", path=here)
    if tool is None:
        pytest.skip("clang-format not installed")
    files = [str(p) for p in CSRC.iterdir() if p.suffix in (".cpp", ".h")]
    proc = subprocess.run([tool, "--dry-run", "--Werror", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


@needs_compiler
def test_build_kernels_command_builds_ahead_of_time(tmp_path):
    env = _env(tmp_path)
    proc = _cli(["build-kernels"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("native kernels (")
    libs = list((tmp_path / "cache" / "native").glob("*/lfads_native.so"))
    assert len(libs) == 1 and str(libs[0]) in proc.stdout
    # The sources that were compiled lie beside the library.
    assert (libs[0].parent / "gemm.h").read_text() == (CSRC / "gemm.h").read_text()
    # A training process afterwards finds the build: no compile, no warning.
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "from lfads_runs.engine._ext import native, build_native\n"
        "print(native() is not None, build_native())"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", str(libs[0])]


@supported_here
def test_no_compiler_gives_one_error_and_one_warning(tmp_path):
    env = _env(tmp_path, PATH=str(tmp_path / "empty"))
    proc = _cli(["build-kernels"], env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: no C++ compiler found (install g++ or set CXX)"
    ]
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from lfads_runs.engine._ext import native\n"
        "    from lfads_runs.engine._rng import NoiseSource\n"
        "    assert native() is None and native() is None\n"
        "    assert NoiseSource(1).kind == 'torch'\n"
        "print(len(w)); print(w[0].message)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    count, message = run.stdout.splitlines()
    assert count == "1"
    assert "no C++ compiler found" in message and "pure-torch" in message
    # LFADS_RUNS_NATIVE=1 asks for the kernels: their absence is then an error.
    env["LFADS_RUNS_NATIVE"] = "1"
    strict = subprocess.run(
        [sys.executable, "-c", "from lfads_runs.engine._ext import native; native()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert strict.returncode != 0 and "NativeKernelsUnavailable" in strict.stderr


@supported_here
@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler to wrap")
def test_compiler_without_openmp_is_named(tmp_path):
    wrapper = tmp_path / "clang-no-omp"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = -fopenmp ] && '
        "{ echo \"clang: error: unsupported option '-fopenmp'\" >&2; exit 1; }; done\n"
        f'exec {shutil.which("c++")} "$@"\n'
    )
    wrapper.chmod(0o755)
    proc = _cli(["build-kernels"], _env(tmp_path, CXX=str(wrapper)))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: the C++ compiler {wrapper} has no OpenMP"]
    assert not list((tmp_path / "cache" / "native").glob("*/*.so"))


@supported_here
@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler to wrap")
def test_a_failed_compile_leaves_nothing_and_a_killed_ones_temp_is_swept(tmp_path, monkeypatch):
    """The library is compiled to a temporary name that records its owner: a failed
    compile removes it, and one left by a compile killed midway goes on the next try."""
    from lfads_runs._tempfiles import _host

    wrapper = tmp_path / "cxx-fails-to-link"  # --version and the OpenMP probe (-c) work
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -c|--version) exec '
        f'{shutil.which("c++")} "$@";; esac; done\n'
        'for a in "$@"; do case "$a" in *.tmp.so) echo partial > "$a";; esac; done\n'
        "echo 'ld: simulated failure' >&2; exit 1\n"
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("CXX", str(wrapper))
    monkeypatch.setenv("LFADS_RUNS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(_ext.NativeKernelsUnavailable, match="simulated failure"):
        _ext.build_native()
    (folder,) = (tmp_path / "cache" / "native").iterdir()
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".lfads_native.so.{_host()}-{dead.pid}.abcd1234.tmp.so"
    stale.write_bytes(b"half a library")
    with pytest.raises(_ext.NativeKernelsUnavailable, match="simulated failure"):
        _ext.build_native()
    assert not stale.exists()
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize(
    ("machine", "system", "words"),
    [
        ("arm64", "darwin", "x86-64 processors, this one is arm64"),
        ("aarch64", "linux", "x86-64 processors, this one is aarch64"),
        ("AMD64", "win32", "Linux and macOS only, this is win32"),
    ],
)
def test_other_processors_and_systems_fall_back_with_one_warning(
    monkeypatch, machine, system, words
):
    monkeypatch.setattr(_ext.platform, "machine", lambda: machine)
    monkeypatch.setattr(_ext.sys, "platform", system)
    monkeypatch.delenv("LFADS_RUNS_NATIVE", raising=False)
    with pytest.raises(_ext.NativeKernelsUnavailable, match=words) as err:
        _ext.build_native()
    assert isinstance(err.value, LfadsRunsError)
    _ext.set_native_enabled(None)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _ext.native() is None
            assert _ext.native() is None
        assert len(caught) == 1 and issubclass(caught[0].category, LfadsRunsWarning)
        assert words in str(caught[0].message)
    finally:
        _ext.set_native_enabled(None)


# --------------------------------------------------------------- random streams
HPS = dict(
    batch_size=8, factors_dim=4, gen_dim=12, ic_dim=6, ic_enc_dim=12, co_dim=0,
    kl_increase_steps=20, l2_increase_steps=20,
)  # fmt: skip


def _inputs(folder: Path) -> Path:
    from lfads_runs.data.synthetic import lorenz
    from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input

    folder.mkdir(parents=True)
    ds = lorenz(
        n_datasets=1, n_conditions=6, trials_per_condition=5, n_neurons=(10,),
        duration_ms=200, bin_ms=10, seed=3, mean_rate_hz=30.0,
    ).datasets[0]  # fmt: skip
    valid = (slice(0, 10), slice(10, None))
    write_lfads_input(
        folder / f"lfads_{ds.name}.h5",
        LfadsInput(train_data=ds.counts[valid[1]], valid_data=ds.counts[valid[0]]),
    )
    return folder


def _stream_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "random stream" in str(w.message)]


@needs_compiler
def test_resume_on_the_other_random_stream_says_so(tmp_path):
    data = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    train(data, out, Hyperparameters(**HPS, max_epochs=2), seed=5, log=lambda m: None)
    sidecars = sorted(out.glob("*.lfads_runs.json"))
    assert sidecars and all('"kind": "counter"' in p.read_text() for p in sidecars)
    # Same machine, same stream: no word about streams.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(data, out, Hyperparameters(**HPS, max_epochs=3), seed=5, log=lambda m: None)
    assert _stream_warnings(caught) == []
    # A machine without the kernels resumes it: it says that the stream changes.
    _ext.set_native_enabled(False)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = train(data, out, Hyperparameters(**HPS, max_epochs=4), seed=5, log=lambda m: None)
    finally:
        _ext.set_native_enabled(None)
    msgs = _stream_warnings(caught)
    assert res.resumed_from is not None and res.epochs == 4
    assert len(msgs) == 1, msgs
    assert str(res.resumed_from) in msgs[0]
    assert "native kernels' counter-based random stream" in msgs[0]
    assert "pure-torch random stream" in msgs[0]
    newest = max(out.glob("*.lfads_runs.json"), key=lambda p: p.stat().st_mtime_ns)
    assert '"kind": "torch"' in newest.read_text()


@supported_here
def test_unusable_cache_folder_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    env = _env(tmp_path, LFADS_RUNS_CACHE=str(blocker / "cache"))
    proc = _cli(["build-kernels"], env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: building the kernels in "), lines
    assert str(blocker) in lines[0] and "Not a directory" in lines[0]
