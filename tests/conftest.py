"""Shared test fixtures. The TensorFlow reference files live in ../shared/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TF_FIXTURES = (ROOT.parent / "shared" / "fixtures" / "tf_lfads").resolve()
TF_CASES = ("shared_stitch2", "shared_ctrl1", "shared_gauss1", "shared_extin1")


@pytest.fixture(scope="session")
def tf_fixtures() -> Path:
    """Folder of the TensorFlow LFADS reference cases (read-only: copy before writing)."""
    if not TF_FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {TF_FIXTURES}")
    return TF_FIXTURES
