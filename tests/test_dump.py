"""Dumping model_params from checkpoints (or a command) and loading it, as a run does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TF_CASES, manifest

from lfads_runs.dump import (
    dump_model_params,
    load_trained_params,
    spec_from_output_dir,
)
from lfads_runs.exceptions import (
    CheckpointError,
    LfadsRunsWarning,
    MissingOutputError,
    ModelParamsError,
    ModelParamsUnavailable,
    RunFailedError,
)
from lfads_runs.io.checkpoint_state import read_checkpoint_state
from lfads_runs.io.checkpoints import find_checkpoint, older_checkpoints
from lfads_runs.io.model_params import read_model_params
from lfads_runs.io.tensorbundle import (
    bundle_index,
    data_path,
    index_path,
    read_bundle,
    write_bundle,
)
from lfads_runs.trained_params import ModelTrainedParameters

NAMES = {"stitch2": ["dataset001", "dataset002"]}


def _run_copy(tf_fixtures: Path, case: str, tmp_path: Path, keep_params: bool = False) -> Path:
    """A writable copy of a case without posterior files (and without model_params)."""
    dst = tmp_path / case
    ignore = shutil.ignore_patterns(
        "model_runs_*", "truth.h5", *([] if keep_params else ["model_params"])
    )
    shutil.copytree(tf_fixtures / case, dst, ignore=ignore)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    dst.chmod(0o755)
    return dst / "lfadsOutput"


def _names(case: str) -> list[str]:
    return NAMES.get(case, ["dataset001"])


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and "lock" not in p.name)


@pytest.mark.parametrize("case", TF_CASES)
def test_dump_from_tf_checkpoint_is_bit_equal(tf_fixtures, case, tmp_path):
    """Deleting model_params and loading dumps it from the LVE checkpoint, equal to TF's file."""
    out = _run_copy(tf_fixtures, case, tmp_path)
    spec = spec_from_output_dir(out)
    log = out.parent / "lfads.out"
    p = load_trained_params(out, _names(case), spec, log_path=log)
    ref = read_model_params(tf_fixtures / case / "lfadsOutput" / "model_params")
    mine = read_model_params(out / "model_params")
    assert list(mine) == list(ref)
    for k in ref:
        assert mine[k].dtype == ref[k].dtype and mine[k].shape == ref[k].shape, k
        assert mine[k].tobytes() == ref[k].tobytes(), k
    tf = ModelTrainedParameters.from_file(
        tf_fixtures / case / "lfadsOutput" / "model_params", _names(case), spec
    )
    for (f, a), (_, b) in zip(p.fields(), tf.fields(), strict=True):
        if f.per_dataset and a is not None:
            assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True)), f.name
        else:
            assert (a is None and b is None) or a.tobytes() == b.tobytes(), f.name
    assert p.global_step == tf.global_step
    assert "lfads_runs: wrote" in log.read_text() and "lfads_vae_lve.ckpt-" in log.read_text()
    assert _leftovers(out) == []


def test_existing_model_params_read_only_folder(tf_fixtures):
    """An existing model_params in a read-only folder is loaded without writing anything."""
    out = tf_fixtures / "ctrl1" / "lfadsOutput"
    before = sorted(os.listdir(out))
    p = load_trained_params(out, ["dataset001"], spec_from_output_dir(out), dump="never")
    assert p.global_step == manifest("ctrl1")["lve_step"]
    assert sorted(os.listdir(out)) == before


def test_never_and_unavailable(tf_fixtures, tmp_path):
    """dump='never' without the file, and no source at all, raise ModelParamsUnavailable."""
    out = _run_copy(tf_fixtures, "ctrl1", tmp_path)
    with pytest.raises(ModelParamsUnavailable, match="does not exist") as e:
        load_trained_params(out, ["dataset001"], dump="never")
    assert isinstance(e.value, MissingOutputError)
    for p in out.glob("*.ckpt-*"):
        p.unlink()
    with pytest.raises(ModelParamsUnavailable) as e:
        load_trained_params(out, ["dataset001"])
    msg = str(e.value)
    assert str(out / "model_params") in msg
    lve = manifest("ctrl1")["lve_checkpoint"]
    assert "checkpoint_lve names" in msg and f"{lve}.index is missing" in msg
    assert "checkpoint names" in msg and "Train the run first" in msg
    assert not (out / "model_params").exists()
    (out / "checkpoint").unlink()
    (out / "checkpoint_lve").unlink()
    with pytest.raises(ModelParamsUnavailable, match="no such pointer file"):
        dump_model_params(out)


def test_lve_missing_falls_back_to_latest_with_warning(tf_fixtures, tmp_path):
    """Without an LVE checkpoint the latest one is dumped, with a warning."""
    out = _run_copy(tf_fixtures, "ctrl1", tmp_path)
    (out / "checkpoint_lve").unlink()
    for p in out.glob("lfads_vae_lve.*"):
        p.unlink()
    latest = manifest("ctrl1")["latest_checkpoint"]
    with pytest.warns(LfadsRunsWarning, match=f"using the latest checkpoint {latest}"):
        p = load_trained_params(out, ["dataset001"], spec_from_output_dir(out))
    assert p.global_step == manifest("ctrl1")["latest_step"]


def test_checkpoint_choice_and_force(tf_fixtures, tmp_path):
    """checkpoint='latest' or a prefix with dump='force' re-dumps from that checkpoint."""
    out = _run_copy(tf_fixtures, "stitch2", tmp_path, keep_params=True)
    names = NAMES["stitch2"]
    m = manifest("stitch2")
    lve, latest, (oldest, older, *_) = m["lve_step"], m["latest_step"], m["lve_history_steps"]
    assert len({lve, latest, older, oldest}) == 4
    assert load_trained_params(out, names).global_step == lve
    # auto keeps the existing file whatever checkpoint is named
    assert load_trained_params(out, names, checkpoint="latest").global_step == lve
    assert load_trained_params(out, names, dump="force", checkpoint="latest").global_step == latest
    got = load_trained_params(out, names, dump="force", checkpoint=f"lfads_vae_lve.ckpt-{older}")
    assert got.global_step == older
    dest = dump_model_params(
        out, checkpoint=out / f"lfads_vae_lve.ckpt-{oldest}.index", dest=tmp_path / "mp"
    )
    step = int(read_model_params(dest, ["LFADS_global_step:0"])["LFADS_global_step:0"])
    assert step == oldest
    with pytest.raises(
        ModelParamsUnavailable, match=r"ckpt-999\.index \(the checkpoint asked for\)"
    ):
        dump_model_params(out, checkpoint="lfads_vae.ckpt-999")
    with pytest.raises(ValueError, match="dump must be"):
        load_trained_params(out, names, dump="sometimes")


def test_scan_without_pointer_files(tf_fixtures, tmp_path):
    """Without pointer files, the newest LVE checkpoint on disk is used."""
    out = _run_copy(tf_fixtures, "gauss1", tmp_path)
    (out / "checkpoint_lve").unlink()
    (out / "checkpoint").unlink()
    prefix, _ = find_checkpoint(out, "lve")
    assert prefix == out / manifest("gauss1")["lve_checkpoint"]
    assert find_checkpoint(out, "latest")[0] == out / manifest("gauss1")["latest_checkpoint"]


def test_moved_run_uses_local_checkpoint(tf_fixtures, tmp_path):
    """Pointer files with absolute paths of another machine resolve inside the run folder."""
    out = _run_copy(tf_fixtures, "extin1", tmp_path)
    assert "/lfads_reference/extin1/" in (out / "checkpoint_lve").read_text()
    assert not Path("/lfads_reference").exists()
    assert find_checkpoint(out)[0] == out / manifest("extin1")["lve_checkpoint"]


def test_corrupt_checkpoint_writes_nothing(tf_fixtures, tmp_path):
    """A CRC-corrupted tensor raises CheckpointError naming it and its file; no model_params."""
    out = _run_copy(tf_fixtures, "ctrl1", tmp_path)
    prefix = read_checkpoint_state(out, "checkpoint_lve").model_checkpoint_path
    info = bundle_index(prefix)["LFADS/con/con_to_post_co/mean/W"]
    raw = bytearray(data_path(prefix).read_bytes())
    raw[info.offset] ^= 0x80
    data_path(prefix).write_bytes(bytes(raw))
    for older in older_checkpoints(prefix):  # with none to fall back to: an error
        for f in older.parent.glob(older.name + ".*"):
            f.unlink()
    with pytest.raises(CheckpointError) as e:
        load_trained_params(out, ["dataset001"], spec_from_output_dir(out))
    assert "'LFADS/con/con_to_post_co/mean/W'" in str(e.value)
    assert str(data_path(prefix)) in str(e.value)
    assert not (out / "model_params").exists() and _leftovers(out) == []


def test_missing_shard_writes_nothing(tf_fixtures, tmp_path):
    """A checkpoint whose data file is gone raises CheckpointError naming the file."""
    out = _run_copy(tf_fixtures, "stitch2", tmp_path)
    prefix = read_checkpoint_state(out, "checkpoint_lve").model_checkpoint_path
    data_path(prefix).unlink()
    with pytest.raises(CheckpointError, match="does not exist") as e:
        dump_model_params(out, checkpoint=str(prefix))  # named: no fallback to older ones
    assert str(data_path(prefix)) in str(e.value)
    assert not (out / "model_params").exists() and _leftovers(out) == []


def test_missing_tensor_and_wrong_model(tf_fixtures, tmp_path):
    """With a spec, a checkpoint lacking a variable or holding other shapes is refused."""
    out = _run_copy(tf_fixtures, "ctrl1", tmp_path)
    spec = spec_from_output_dir(out)
    prefix = read_checkpoint_state(out, "checkpoint_lve").model_checkpoint_path
    tensors = read_bundle(prefix)
    del tensors["LFADS/gen/gen_2_fac/W"]
    write_bundle(prefix, tensors)
    with pytest.raises(CheckpointError, match="'LFADS/gen/gen_2_fac/W'.*missing") as e:
        dump_model_params(out, checkpoint=str(prefix), spec=spec)  # no fallback to older ones
    assert str(index_path(prefix)) in str(e.value)
    assert not (out / "model_params").exists()
    other = spec_from_output_dir(_run_copy(tf_fixtures, "extin1", tmp_path))
    with pytest.raises(ModelParamsError, match="expected"):
        dump_model_params(out, checkpoint="latest", spec=other)
    assert not (out / "model_params").exists() and _leftovers(out) == []


def _writer_script(src: Path) -> str:
    return textwrap.dedent(
        f"""
        import shutil, sys
        print("pretending to be run_lfads.py --kind=write_model_params")
        shutil.copy({str(src)!r}, "model_params")
        """
    )


def test_external_dump_command(tf_fixtures, tmp_path):
    """Without checkpoints, the configured command runs in the output folder, logging its output."""
    out = _run_copy(tf_fixtures, "gauss1", tmp_path)
    for p in out.glob("*.ckpt-*"):
        p.unlink()
    src = tf_fixtures / "gauss1" / "lfadsOutput" / "model_params"
    log = out.parent / "lfads.out"
    p = load_trained_params(
        out, ["dataset001"], dump_command=[sys.executable, "-c", _writer_script(src)], log_path=log
    )
    assert p.global_step == manifest("gauss1")["lve_step"] and p.is_gaussian
    text = log.read_text()
    assert "dumping model_params with:" in text and "pretending to be run_lfads.py" in text


def test_external_command_failures(tf_fixtures, tmp_path):
    """A failing command (its partial file removed) or one that writes nothing: RunFailedError."""
    out = _run_copy(tf_fixtures, "ctrl1", tmp_path)
    for p in out.glob("*.ckpt-*"):
        p.unlink()
    log = out.parent / "lfads.out"
    with pytest.raises(RunFailedError, match="exit code 3") as e:
        dump_model_params(
            out,
            dump_command=["sh", "-c", "echo half > model_params; echo boom >&2; exit 3"],
            log_path=log,
        )
    assert "boom" in str(e.value) and str(log) in str(e.value)
    assert not (out / "model_params").exists()
    with pytest.raises(RunFailedError, match="wrote no"):
        dump_model_params(out, dump_command=[sys.executable, "-c", "print('nothing')"])
    # A string runs without a shell: ';' is an argument of echo, not a second command.
    with pytest.raises(RunFailedError, match="wrote no"):
        dump_model_params(out, dump_command="echo x; touch model_params")
    assert not (out / "model_params").exists()
    with pytest.raises(RunFailedError, match="could not start"):
        dump_model_params(out, dump_command="/no/such/program {output_dir}")


_WORKER = """
import json, os, sys, time
from pathlib import Path
out, go = Path(sys.argv[1]), Path(sys.argv[2])
from lfads_runs.dump import load_trained_params, spec_from_output_dir
spec = spec_from_output_dir(out)
while not go.exists():
    time.sleep(0.001)
p = load_trained_params(out, ["dataset001"], spec, log_path=out.parent / "lfads.out")
print(json.dumps({
    "step": p.global_step,
    "inode": os.stat(out / "model_params").st_ino,
    "heavy": sorted(m for m in ("torch", "tensorflow") if m in sys.modules),
}))
"""


def test_concurrent_processes_dump_once(tf_fixtures, tmp_path):
    """Several processes loading at once: exactly one dump, every one gets valid parameters."""
    out = _run_copy(tf_fixtures, "ctrl1", tmp_path)
    go = tmp_path / "go"
    n = 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(out), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    time.sleep(1.5)  # let every worker import and wait at the barrier
    go.touch()
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [r["step"] for r in results] == [manifest("ctrl1")["lve_step"]] * n
    assert len({r["inode"] for r in results}) == 1
    assert all(r["heavy"] == [] for r in results)  # no torch or TensorFlow needed
    dumps = [ln for ln in (out.parent / "lfads.out").read_text().splitlines() if "wrote" in ln]
    assert len(dumps) == 1
    assert _leftovers(out) == []


def test_waits_for_running_external_dump(tf_fixtures, tmp_path):
    """A reader that finds a half-written file while a dump holds the lock waits and re-reads."""
    from lfads_runs._atomic import file_lock
    from lfads_runs.dump import _lock_path

    out = _run_copy(tf_fixtures, "ctrl1", tmp_path, keep_params=True)
    good = (out / "model_params").read_bytes()
    (out / "model_params").write_bytes(good[:3000])
    import threading

    def finish():
        with file_lock(_lock_path(out / "model_params")):
            ready.set()
            time.sleep(0.3)
            (out / "model_params").write_bytes(good)

    ready = threading.Event()
    t = threading.Thread(target=finish)
    t.start()
    ready.wait()
    p = load_trained_params(out, ["dataset001"])
    t.join()
    assert p.global_step == manifest("ctrl1")["lve_step"]
    # Without anyone fixing it, a bad file stays an error.
    (out / "model_params").write_bytes(good[:3000])
    with pytest.raises(ModelParamsError):
        load_trained_params(out, ["dataset001"])


def test_spec_from_output_dir_errors(tmp_path):
    """No hyperparameters file, or one without dataset sizes, are clear errors."""
    with pytest.raises(MissingOutputError, match=r"hyperparameters-\*\.txt"):
        spec_from_output_dir(tmp_path)
    (tmp_path / "hyperparameters-0.txt").write_text(json.dumps({"factors_dim": 4}))
    with pytest.raises(Exception, match="dataset_dims"):
        spec_from_output_dir(tmp_path)


def test_spec_from_output_dir_warns_without_inputs(tf_fixtures, tmp_path):
    """A single-dataset run whose input file cannot be found gets a warning, not an error."""
    out = _run_copy(tf_fixtures, "ctrl1", tmp_path)
    shutil.rmtree(out.parent / "lfadsInput")
    with pytest.warns(LfadsRunsWarning, match="alignment matrix"):
        spec = spec_from_output_dir(out)
    assert not spec.has_readin
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec_from_output_dir(tf_fixtures / "ctrl1" / "lfadsOutput")
    assert np.isclose(spec.hps.learning_rate_decay_factor, 0.7)
