"""The sdist and wheel carry every file of the package that git tracks (package data included).

Built with ``python -m build --no-isolation`` (the sdist first, the wheel from it) in a copy of
the tracked files, so the source tree gets no build/ or egg-info/ folders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _tracked(prefix: str) -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the list of tracked files)")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", prefix], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return sorted(p for p in out.split("\0") if p)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="the dev extra's `build` package")
    src = tmp_path_factory.mktemp("src")
    for rel in ["pyproject.toml", "README.md", *_tracked("lfads_runs")]:
        if (ROOT / rel).is_file():  # a tracked file deleted in the work tree is not shipped
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _package_files() -> set[str]:
    return {p for p in _tracked("lfads_runs") if (ROOT / p).is_file()}


def test_wheel_holds_every_tracked_package_file(dist):
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = _package_files()
    data = {p for p in expected if not p.endswith(".py")}
    assert data, "no package data tracked (py.typed at least)"
    assert not data - names, f"package data missing from the wheel: {sorted(data - names)}"
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"
    # Nothing but the package and its metadata: no tests, tools or caches.
    stray = {n for n in names if not n.startswith(("lfads_runs/", "lfads_runs-"))}
    assert not stray, sorted(stray)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    for line in (
        "Requires-Dist: filelock",
        "Requires-Dist: tqdm",
        "Classifier: Operating System :: Microsoft :: Windows",
        "Classifier: Programming Language :: Python :: 3.13",
        "License-Expression: Apache-2.0",
    ):
        assert line in text, line


def test_sdist_holds_every_tracked_package_file(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    missing = _package_files() - names
    assert not missing, f"missing from the sdist: {sorted(missing)}"
