"""The example drive scripts run (in their --quick form) and write what they say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, root: Path, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    proc = subprocess.run(
        # one thread: the engine's small-model steps were several times slower with two
        [sys.executable, str(EXAMPLES / script), "--quick", "--threads", "1", "--root", str(root),
         *extra],
        capture_output=True, text=True, env=env, timeout=300, cwd=root.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_drive_script_single_session(tmp_path):
    out = _run("drive_script.py", tmp_path / "lz")
    assert "1 done, 0 skipped, 0 failed" in out
    names = {p.name for p in (tmp_path / "lz" / "figures").iterdir()}
    assert names == {"factors_dataset001.png", "rates_vs_truth_dataset001.png",
                     "training_curves.png", "generator_W.png", "readout_matrices.png"}  # fmt: skip
    run = tmp_path / "lz" / "runs" / "exampleSingleSession"
    assert len(list(run.glob("param_*/single_dataset001/lfadsOutput/model_params"))) == 1


@pytest.mark.slow
def test_drive_script_stitching(tmp_path):
    out = _run("drive_script_stitching.py", tmp_path / "st")
    assert "1 done, 0 skipped, 0 failed" in out
    assert "read-out matrices: {'dataset001': (6, 35), 'dataset002': (6, 26)" in out
    names = {p.name for p in (tmp_path / "st" / "figures").iterdir()}
    assert {"alignment_reconstruction.png", "stitching_pca.png", "factors_dataset003.png"} <= names
    # the single-session run specs exist (prepared) but were not trained
    rc_dir = tmp_path / "st" / "runs" / "exampleStitching"
    assert not list(rc_dir.glob("param_*/single_dataset001/lfadsOutput/model_params"))
