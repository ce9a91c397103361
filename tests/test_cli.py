"""The lfads-runs command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_config import EXAMPLE


def lfads_runs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lfads_runs", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_list_json(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(EXAMPLE)
    proc = lfads_runs("list", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["collection"] == "lorenz_example"
    assert len(data["runs"]) == 10
    first = data["runs"][0]
    assert first["run_spec"] == "all" and first["param_index"] == 1
    assert first["param_hash"].startswith("param_") and first["done"] is False
    assert data["unknown_param_folders"] == []


def test_list_table(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(EXAMPLE)
    proc = lfads_runs("list", str(cfg))
    assert proc.returncode == 0
    assert "single_dataset001" in proc.stdout and "param_" in proc.stdout


def test_config_error_is_a_message_and_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(EXAMPLE.replace("c_factors_dim: 8,", "c_factors_dim: -1,"))
    proc = lfads_runs("list", str(cfg), "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "c_factors_dim" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_error_exit_2():
    proc = lfads_runs("list")
    assert proc.returncode == 2
    assert "Missing argument" in proc.stderr


def test_help():
    proc = lfads_runs("--help")
    assert proc.returncode == 0 and "list" in proc.stdout
