"""Checkpoint pointer files (checkpoint, checkpoint_lve) as TensorFlow writes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import TF_CASES, manifest

from lfads_runs.exceptions import CheckpointError
from lfads_runs.io.checkpoint_state import read_checkpoint_state, write_checkpoint_state


@pytest.mark.parametrize("case", TF_CASES)
def test_fixture_pointers_fall_back_to_local_files(tf_fixtures, case):
    """Absolute paths of another machine resolve to the same file names inside lfadsOutput."""
    out = tf_fixtures / case / "lfadsOutput"
    lve = read_checkpoint_state(out, "checkpoint_lve")
    latest = read_checkpoint_state(out, "checkpoint")
    assert lve is not None and latest is not None
    assert lve.pointer_file == out / "checkpoint_lve"
    assert lve.model_checkpoint_path.parent == out
    assert lve.model_checkpoint_path.name.startswith("lfads_vae_lve.ckpt-")
    assert (out / f"{lve.model_checkpoint_path.name}.index").is_file()
    assert len(lve.all_model_checkpoint_paths) == len(manifest(case)["lve_history_steps"])
    assert (
        len(lve.all_model_checkpoint_paths)
        <= manifest(case)["flags"]["train"]["max_ckpt_to_keep_lve"]
    )
    assert lve.all_model_checkpoint_paths[-1] == lve.model_checkpoint_path
    assert all(p.parent == out for p in lve.all_model_checkpoint_paths)
    assert latest.model_checkpoint_path.name.startswith("lfads_vae.ckpt-")
    assert (out / f"{latest.model_checkpoint_path.name}.index").is_file()


def test_known_steps(tf_fixtures):
    """The LVE pointers name the steps the manifests record."""
    for case in TF_CASES:
        step = manifest(case)["lve_step"]
        st = read_checkpoint_state(tf_fixtures / case / "lfadsOutput", "checkpoint_lve")
        assert st.model_checkpoint_path.name == f"lfads_vae_lve.ckpt-{step}"


def test_missing_pointer_is_none(tmp_path):
    """No pointer file: None, not an error."""
    assert read_checkpoint_state(tmp_path) is None
    assert read_checkpoint_state(tmp_path, "checkpoint_lve") is None


def test_relative_and_existing_absolute_paths(tmp_path):
    """Relative paths are relative to the folder; existing absolute paths elsewhere are kept."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "m.ckpt-5.index").write_bytes(b"")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint").write_text(
        f'model_checkpoint_path: "{other}/m.ckpt-5"\n'
        'all_model_checkpoint_paths: "sub/m.ckpt-1"\n'
        f'all_model_checkpoint_paths: "{other}/m.ckpt-5"\n'
    )
    st = read_checkpoint_state(run)
    assert st.model_checkpoint_path == other / "m.ckpt-5"
    assert st.all_model_checkpoint_paths == (run / "sub" / "m.ckpt-1", other / "m.ckpt-5")
    # Once a local copy exists, it wins over the recorded location.
    (run / "m.ckpt-5.index").write_bytes(b"")
    assert read_checkpoint_state(run).model_checkpoint_path == run / "m.ckpt-5"


def test_unknown_lines_and_escapes_ignored(tmp_path):
    """Timestamp fields of newer TF, blank lines and escaped quotes are handled."""
    (tmp_path / "checkpoint").write_text(
        "\n"
        'model_checkpoint_path: "we\\"ird\\\\name.ckpt-3"\n'
        "all_model_checkpoint_timestamps: 1700000000.5\n"
        "all_model_checkpoint_paths: 'a.ckpt-1'\n"
        "last_preserved_timestamp: 1699999999.25\n"
        'all_model_checkpoint_paths: "we\\"ird\\\\name.ckpt-3"\n'
    )
    st = read_checkpoint_state(tmp_path)
    assert st.model_checkpoint_path == tmp_path / 'we"ird\\name.ckpt-3'
    assert st.all_model_checkpoint_paths == (tmp_path / "a.ckpt-1", st.model_checkpoint_path)


def test_damaged_pointer(tmp_path):
    """A pointer file without model_checkpoint_path is a CheckpointError naming it."""
    (tmp_path / "checkpoint_lve").write_text("garbage without fields\n")
    with pytest.raises(CheckpointError, match="checkpoint_lve: no model_checkpoint_path"):
        read_checkpoint_state(tmp_path, "checkpoint_lve")


def test_write_then_read(tmp_path):
    """The writer stores file names only and appends latest to the list when missing."""
    write_checkpoint_state(
        tmp_path, "checkpoint_lve", "/x/y/lfads_vae_lve.ckpt-30", ["/x/y/lfads_vae_lve.ckpt-10"]
    )
    text = (tmp_path / "checkpoint_lve").read_text()
    assert text == (
        'model_checkpoint_path: "lfads_vae_lve.ckpt-30"\n'
        'all_model_checkpoint_paths: "lfads_vae_lve.ckpt-10"\n'
        'all_model_checkpoint_paths: "lfads_vae_lve.ckpt-30"\n'
    )
    st = read_checkpoint_state(tmp_path, "checkpoint_lve")
    assert st.model_checkpoint_path == tmp_path / "lfads_vae_lve.ckpt-30"
    assert [p.name for p in st.all_model_checkpoint_paths] == [
        "lfads_vae_lve.ckpt-10",
        "lfads_vae_lve.ckpt-30",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_lve"]  # no temp file left


def test_rewrite_fixture_pointer_relative(tf_fixtures, tmp_path):
    """Rewriting a fixture pointer with our writer keeps the same checkpoints, made relative."""
    out = tf_fixtures / "stitch2" / "lfadsOutput"
    st = read_checkpoint_state(out, "checkpoint_lve")
    for p in st.all_model_checkpoint_paths:
        if Path(f"{p}.index").is_file():
            shutil.copy(f"{p}.index", tmp_path)
        else:  # listed but pruned from the case (tools/make_tf_reference.py keeps it small)
            (tmp_path / f"{p.name}.index").write_bytes(b"")
    write_checkpoint_state(
        tmp_path,
        "checkpoint_lve",
        str(st.model_checkpoint_path),
        [str(p) for p in st.all_model_checkpoint_paths],
    )
    again = read_checkpoint_state(tmp_path, "checkpoint_lve")
    assert [p.name for p in again.all_model_checkpoint_paths] == [
        p.name for p in st.all_model_checkpoint_paths
    ]
    assert again.model_checkpoint_path == tmp_path / st.model_checkpoint_path.name
