"""``lfads-runs --version`` and ``lfads-runs doctor`` in real subprocesses."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

import pytest


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lfads_runs", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_version():
    import lfads_runs

    proc = cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"lfads-runs, version {lfads_runs.__version__}"


def test_doctor_json_names_versions_threads_and_extras(tmp_path):
    proc = cli("doctor", "--json", LFADS_RUNS_CACHE=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["python"]["version"] == platform.python_version()
    for name in ("numpy", "h5py", "torch", "filelock", "tqdm"):
        assert r["packages"][name] == metadata.version(name)
    assert r["threads"]["cpu_count"] == os.cpu_count()
    assert r["threads"]["torch"] >= 1
    assert r["extras"]["torch"] is True
    assert set(r["extras"]) >= {"torch", "plot", "nwb", "slurm", "ray", "scipy", "fast"}
    assert isinstance(r["gpus"], list)


def test_doctor_does_not_build_the_kernels(tmp_path):
    """An empty kernel cache stays empty: doctor says 'not built' and where they would go."""
    cache = tmp_path / "cache"
    proc = cli("doctor", "--json", LFADS_RUNS_CACHE=str(cache), LFADS_RUNS_NATIVE="auto")
    assert proc.returncode == 0, proc.stderr
    k = json.loads(proc.stdout)["native_kernels"]
    assert k["enabled"] and not k["built"] and k["simd"] is None
    assert k["note"]
    assert not cache.exists()
    text = cli("doctor", LFADS_RUNS_CACHE=str(cache), LFADS_RUNS_NATIVE="auto")
    assert "native kernels  not built" in text.stdout, text.stdout
    assert not cache.exists()


def test_doctor_kernels_off():
    proc = cli("doctor", "--json", LFADS_RUNS_NATIVE="0")
    k = json.loads(proc.stdout)["native_kernels"]
    assert k == {**k, "enabled": False, "built": False}
    assert "LFADS_RUNS_NATIVE" in k["note"]


@pytest.mark.slow
def test_doctor_reports_the_built_kernels_instruction_set():
    """Where the kernels build here, doctor names the library and the same simd() as the engine."""
    from lfads_runs.engine import _ext

    ops = _ext.native()
    if ops is None:
        pytest.skip("no native kernels on this machine")
    proc = cli("doctor", "--json", LFADS_RUNS_NATIVE="auto")
    assert proc.returncode == 0, proc.stderr
    k = json.loads(proc.stdout)["native_kernels"]
    assert k["built"] and k["simd"] == ops.simd()
    assert os.path.isfile(k["library"])
    text = cli("doctor", LFADS_RUNS_NATIVE="auto").stdout
    assert f"native kernels  built, {ops.simd()}" in text


def test_doctor_names_a_broken_torch(tmp_path):
    """A torch that is installed but fails to import is reported, not a traceback."""
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError('libtorch_cpu.so: cannot open shared object file')\n"
    )
    path = os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])
    proc = cli("doctor", "--json", PYTHONPATH=path)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert "libtorch_cpu.so" in r["torch_error"] and r["native_kernels"] is None
    text = cli("doctor", PYTHONPATH=path).stdout
    assert "importing torch failed: ImportError: libtorch_cpu.so" in text


def test_doctor_without_torch():
    """The core install: doctor works, says torch is missing, and looks for GPUs itself."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # find_spec -> None, import -> ImportError
        "from lfads_runs.cli import main\n"
        "rc = main(['doctor', '--json'])\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["extras"]["torch"] is False and r["native_kernels"] is None
    assert r["threads"]["torch"] is None and r["torch_error"] is None
    assert isinstance(r["gpus"], list)
