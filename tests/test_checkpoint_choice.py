"""One checkpoint choice (lfads_runs.io.checkpoints) for every stage that loads weights."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from conftest import manifest

from lfads_runs.dump import dump_model_params
from lfads_runs.exceptions import CheckpointError, LfadsRunsWarning
from lfads_runs.io.checkpoints import (
    checkpoint_files,
    find_checkpoint,
    has_checkpoint,
    list_checkpoints,
    older_checkpoints,
    pointer_name,
    resolve_checkpoint,
)
from lfads_runs.io.hyperparameters_file import read_hyperparameters  # noqa: E402
from lfads_runs.io.model_params import read_model_params
from lfads_runs.layout import parse_checkpoint_name

CASE = "stitch2"  # LVE checkpoints 136, 152, 208 and the latest regular one 204 on disk


def _copy(tf_fixtures: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(input folder, writable output folder with checkpoints and pointer files only)."""
    src = tf_fixtures / CASE / "lfadsOutput"
    out = tmp_path / "lfadsOutput"
    out.mkdir()
    for f in src.iterdir():
        if ".ckpt-" in f.name or f.name.startswith("checkpoint"):
            shutil.copyfile(f, out / f.name)
    return tf_fixtures / CASE / "lfadsInput", out


def _remove(out: Path, prefix: str) -> None:
    files = checkpoint_files(out / prefix)
    assert files, prefix
    for f in files:
        f.unlink()


def _stage_steps(data_dir: Path, out: Path, checkpoint) -> tuple[int, int]:
    """The global step the posterior stage and the dump stage of a pipeline load."""
    from lfads_runs.engine import sample_posterior

    hps = read_hyperparameters(
        next(p for p in (data_dir.parent / "lfadsOutput").glob("hyperparameters-*.txt"))
    )
    for p in out.glob("hyperparameters-*.txt"):
        p.unlink()
    sample_posterior(data_dir, out, hps, "posterior_push_mean", checkpoint, seed=1)
    (hp,) = out.glob("hyperparameters-*.txt")  # written with the loaded model's step
    posterior_step = int(hp.stem.split("-")[1])
    dest = dump_model_params(out, checkpoint=checkpoint, dest=out / "model_params_check")
    dump_step = int(read_model_params(dest, ["LFADS_global_step:0"])["LFADS_global_step:0"])
    dest.unlink()
    return posterior_step, dump_step


def test_posterior_and_dump_pick_the_same_checkpoint(tf_fixtures, tmp_path):
    """Missing pointer files, a stale pointer, no LVE at all: both stages load the same step."""
    data_dir, out = _copy(tf_fixtures, tmp_path)
    m = manifest(CASE)
    lve, latest = m["lve_step"], m["latest_step"]
    assert lve != latest
    assert _stage_steps(data_dir, out, "lve") == (lve, lve)
    # no pointer files: the newest of each series on disk
    (out / "checkpoint").unlink()
    (out / "checkpoint_lve").unlink()
    assert _stage_steps(data_dir, out, "lve") == (lve, lve)
    assert _stage_steps(data_dir, out, "latest") == (latest, latest)
    # a stale pointer names a checkpoint that is gone: the newest LVE one left, with a warning
    shutil.copyfile(tf_fixtures / CASE / "lfadsOutput" / "checkpoint_lve", out / "checkpoint_lve")
    _remove(out, m["lve_checkpoint"])
    older = parse_checkpoint_name(list_checkpoints(out, lve=True)[-1]).step
    assert older < lve
    with pytest.warns(LfadsRunsWarning, match=f"checkpoint_lve names .*{m['lve_checkpoint']}"):
        assert _stage_steps(data_dir, out, "lve") == (older, older)
    # no LVE checkpoint at all: the latest, with a warning
    for prefix in list_checkpoints(out, lve=True):
        _remove(out, prefix.name)
    with pytest.warns(LfadsRunsWarning, match="using the latest checkpoint"):
        assert _stage_steps(data_dir, out, "lve") == (latest, latest)
    # a relative prefix is taken inside the output folder by both
    assert _stage_steps(data_dir, out, m["latest_checkpoint"]) == (latest, latest)


def test_listing_ignores_other_names_and_orders_by_step(tf_fixtures, tmp_path):
    _, out = _copy(tf_fixtures, tmp_path)
    for junk in ("notes.ckpt-x.index", "lfads_vae.ckpt-.index", "lfads_vae.ckpt-7.index.tmp"):
        (out / junk).write_text("")
    (out / "lfads_vae.ckpt-12.index").mkdir()  # a folder is not a checkpoint
    steps = [parse_checkpoint_name(p).step for p in list_checkpoints(out)]
    assert steps == [136, 152, 204, 208]
    assert [p.name for p in list_checkpoints(out, lve=False)][-1] == manifest(CASE)[
        "latest_checkpoint"
    ]
    assert all(parse_checkpoint_name(p).lve for p in list_checkpoints(out, lve=True))
    assert has_checkpoint(out) and not has_checkpoint(tmp_path / "missing")
    newest = list_checkpoints(out, lve=True)[-1]
    assert [parse_checkpoint_name(p).step for p in older_checkpoints(newest)] == [152, 136]


def test_step_and_prefix_choices(tf_fixtures, tmp_path, monkeypatch):
    _, out = _copy(tf_fixtures, tmp_path)
    assert find_checkpoint(out, 152)[0] == out / "lfads_vae_lve.ckpt-152"
    assert find_checkpoint(out, "204")[0] == out / "lfads_vae.ckpt-204"
    assert find_checkpoint(out, "lfads_vae_lve.ckpt-136.index")[0] == out / "lfads_vae_lve.ckpt-136"
    # relative to the current directory when not inside the output folder
    monkeypatch.chdir(tmp_path)
    assert find_checkpoint(out, "lfadsOutput/lfads_vae.ckpt-204")[0] == Path(
        "lfadsOutput/lfads_vae.ckpt-204"
    )
    assert pointer_name("lve") == "checkpoint_lve" and pointer_name("checkpoint") == "checkpoint"
    assert find_checkpoint(out, "checkpoint_lve")[0] == find_checkpoint(out, "lve")[0]
    with pytest.raises(TypeError):
        find_checkpoint(out, True)


def test_nothing_usable_is_one_error_naming_folder_and_findings(tf_fixtures, tmp_path):
    _, out = _copy(tf_fixtures, tmp_path)
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint(out, "lfads_vae.ckpt-999")
    msg = str(e.value)
    assert str(out) in msg and "ckpt-999.index" in msg and "lfads_vae.ckpt-204" in msg
    with pytest.raises(CheckpointError, match=r"no checkpoint of step 5.*on disk: "):
        resolve_checkpoint(out, 5)
    for prefix in list_checkpoints(out):
        _remove(out, prefix.name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to fall back to: no warning, one error
        with pytest.raises(CheckpointError) as e:
            resolve_checkpoint(out, "lve")
    msg = str(e.value)
    assert f"no checkpoint (lve) to load in {out}" in msg and "no checkpoint on disk" in msg
    assert "checkpoint_lve names" in msg and "checkpoint names" in msg
    with pytest.raises(CheckpointError, match="an empty checkpoint name"):
        resolve_checkpoint(out, " ")
    with pytest.raises(CheckpointError, match="no such folder"):
        resolve_checkpoint(tmp_path / "nowhere", "latest")
