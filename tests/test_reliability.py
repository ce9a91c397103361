"""Reliability behaviour beyond single bad inputs: stale results, leftovers, shells, fallbacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from _two_datasets import BASE, snapshot, the_run, train_one_run, tree, write_datasets

from lfads_runs import RunCollection
from lfads_runs._atomic import atomic_write_text
from lfads_runs._tempfiles import make_temp, temp_files
from lfads_runs.command_template import fill_template
from lfads_runs.exceptions import ConfigError, DataError, LfadsRunsWarning, RunBusyError


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    return write_datasets(tmp_path_factory.mktemp("datasets"))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lfads_runs", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


# ------------------------------------------------------------------ YAML and names
def test_bare_dot_is_a_string(tmp_path, datasets):
    """``root: .`` and ``comment: .`` load (YAML 1.2: '.' is a string, not a float)."""
    tree(tmp_path, datasets, BASE.replace("root: ./runs", "root: .\ncomment: ."))
    rc = RunCollection.from_yaml(tmp_path / "config.yaml")
    assert rc.path == (tmp_path / "bad").resolve()
    assert RunCollection.from_yaml(tmp_path / "config.yaml").params[0].c_gen_dim == 8


@pytest.mark.parametrize("name", ["x" * 255, "é" * 127])
def test_names_up_to_255_bytes_are_fine(tmp_path, datasets, name):
    tree(tmp_path, datasets, BASE.replace("name: both", f"name: {name}"))
    assert RunCollection.from_yaml(tmp_path / "config.yaml").run_specs[0].name == name
    tree_2 = tmp_path / "two"
    tree_2.mkdir()
    tree(tree_2, datasets, BASE.replace("name: both", f"name: {name}é"))
    with pytest.raises(ConfigError, match="255"):
        RunCollection.from_yaml(tree_2 / "config.yaml")


# ------------------------------------------------------------------ dump_command
def test_dump_command_is_filled_per_argument_without_a_shell(tmp_path):
    """Names with shell syntax stay data; braces that are not placeholders survive."""
    out = tmp_path / "inj$(touch PWNED)x" / "sp;touch PWNED2;" / "with space"
    values = {
        "input_dir": str(out / "in"),
        "output_dir": str(out),
        "run_dir": str(out.parent),
        "flags": ["--a=1", "--b=x y"],
    }
    argv = fill_template("awk 'BEGIN {print 1}' {output_dir} --x={run_dir} {flags}", values)
    assert argv == ["awk", "BEGIN {print 1}", str(out), f"--x={out.parent}", "--a=1", "--b=x y"]
    script = (
        "import pathlib, sys; d = pathlib.Path(sys.argv[1]); d.mkdir(parents=True);"
        " (d / 'model_params').write_text(' '.join(sys.argv[2:]))"
    )
    template = [sys.executable, "-c", script, "{output_dir}", "{flags}", "{nope}"]
    argv = fill_template(template, values)
    subprocess.run(argv, check=True, cwd=tmp_path)
    assert (out / "model_params").read_text() == "--a=1 --b=x y {nope}"
    assert not list(tmp_path.rglob("PWNED*")), "a name was run as shell code"


def test_dump_command_of_a_run_with_hostile_names(tmp_path, datasets):
    """Through Run.dump_command (and the YAML): one argument per path, nothing executed."""
    text = BASE.replace("name: both", "name: 'sp;touch X;'").replace(
        "name: bad", "name: 'inj$(touch Y)x'"
    )
    text += 'dump_command: "echo {output_dir} {flags}"\n'
    tree(tmp_path, datasets, text)
    run = RunCollection.from_yaml(tmp_path / "config.yaml").find_runs("sp;touch X;", 1)
    argv = run.dump_command()
    assert argv[0] == "echo" and argv[1] == str(run.path_lfads_output)
    assert all(a.startswith("--") for a in argv[2:])


# ------------------------------------------------------------------ temporary files
def test_temp_files_of_dead_writers_are_swept_and_reported(tmp_path):
    dst = tmp_path / "model_params"
    code = (
        "import sys; from pathlib import Path; from lfads_runs._tempfiles import make_temp;"
        f" p = make_temp(Path({str(dst)!r})); p.write_bytes(b'x' * 1000); print(p)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    dead = Path(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip())  # fmt: skip
    mine = make_temp(dst)  # this process is alive: never swept
    found = {t.path: t for t in temp_files(tmp_path)}
    assert found[dead].owner_alive is False and found[dead].size == 1000
    assert found[mine].owner_alive is True and found[dead].target == "model_params"
    atomic_write_text(dst, "new")
    assert not dead.exists() and mine.exists() and dst.read_text() == "new"
    mine.unlink()


def test_status_lists_leftover_temp_files(tmp_path, datasets):
    tree(tmp_path, datasets)
    RunCollection.from_yaml(tmp_path / "config.yaml").prepare()
    folder = next((tmp_path / "runs" / "bad").glob("data_*/both"))
    code = (
        "from pathlib import Path; from lfads_runs._tempfiles import make_temp;"
        f" make_temp(Path({str(folder / 'lfads_ds1.h5')!r})).write_bytes(b'half')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    proc = cli("status", "config.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 temporary file(s) of interrupted writes" in proc.stdout
    assert "writer pid" in proc.stdout and "is dead" in proc.stdout
    import json

    listed = json.loads(cli("status", "config.yaml", "--json", cwd=tmp_path).stdout)["temp_files"]
    assert [(t["target"], t["owner_alive"], t["size"]) for t in listed] == [
        ("lfads_ds1.h5", False, 4)
    ]
    RunCollection.from_yaml(tmp_path / "config.yaml").prepare(regenerate=True)  # rewrites it
    assert (
        json.loads(cli("status", "config.yaml", "--json", cwd=tmp_path).stdout)["temp_files"] == []
    )


# ------------------------------------------------------------------ prepare
def test_failed_prepare_leaves_nothing(tmp_path, datasets):
    tree(tmp_path, datasets)
    with h5py.File(tmp_path / "data" / "ds2.h5", "a") as f:
        del f["counts"]
        f["counts"] = -np.ones((40, 60, 5))
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="ds2"):
        RunCollection.from_yaml(tmp_path / "config.yaml").prepare()
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


def test_rollback_keeps_what_another_run_shares(tmp_path):
    """A failed prepare removes its own run folder, but not params.json once another
    process's run (param_*/<other spec>/) shares the parameter folder."""
    from lfads_runs._rollback import undo_created

    pf = tmp_path / "param_x"
    with pytest.raises(RuntimeError), undo_created([pf, pf / "params.json", pf / "a"]):
        pf.mkdir()
        (pf / "params.json").write_text("{}")
        (pf / "a").mkdir()
        (pf / "b").mkdir()  # made meanwhile by another process
        raise RuntimeError("prepare failed")
    assert (pf / "params.json").exists() and (pf / "b").is_dir() and not (pf / "a").exists()


def _touch_counts(path: Path, change: bool) -> None:
    with h5py.File(path, "a") as f:
        c = f["counts"][()]
        if change:
            c[0, 0, 0] += 1
        del f["counts"]
        f["counts"] = c


def test_changed_dataset_file_is_prepared_again(tmp_path, datasets):
    """Same content (rewritten) is still up to date; changed content re-prepares."""
    tree(tmp_path, datasets)
    run = RunCollection.from_yaml(tmp_path / "config.yaml").find_runs("both", 1)
    assert run.prepare() is not None
    assert run.prepare() is None  # up to date
    _touch_counts(tmp_path / "data" / "ds1.h5", change=False)
    assert run.prepare() is None  # same arrays: only the record is refreshed
    _touch_counts(tmp_path / "data" / "ds1.h5", change=True)
    result = run.prepare()
    assert result is not None and result["ds1"].written
    assert run.prepare() is None
    (tmp_path / "data" / "ds1.h5").unlink()  # raw data removed after preparing: still fine
    assert run.prepare() is None


def test_changed_dataset_under_a_trained_run_is_refused(tmp_path, datasets):
    tree(tmp_path, datasets)
    run = RunCollection.from_yaml(tmp_path / "config.yaml").find_runs("both", 1)
    run.prepare()
    run.path_lfads_output.mkdir(parents=True)
    (run.path_lfads_output / "lfads_vae.ckpt-10.index").write_bytes(
        b""
    )  # trained, as far as prepare can tell
    _touch_counts(tmp_path / "data" / "ds2.h5", change=True)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="already trained") as e:
        run.prepare()
    assert "ds2" in str(e.value) and str(run.path) in str(e.value)
    assert snapshot(tmp_path) == before


def test_regenerate_is_refused_while_a_run_trains(tmp_path, datasets):
    tree(tmp_path, datasets)
    run = RunCollection.from_yaml(tmp_path / "config.yaml").find_runs("both", 1)
    run.prepare()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import json
        import socket
        import time

        claim = {
            "host": socket.gethostname(),
            "pid": sleeper.pid,
            "started": time.time(),
            "token": "t",
        }
        run.paths.claim_file.write_text(json.dumps(claim))
        proc = cli("prepare", "config.yaml", "--regenerate", cwd=tmp_path)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert f"pid {sleeper.pid}" in proc.stderr and "training" in proc.stderr
        with pytest.raises(RunBusyError, match=f"pid {sleeper.pid}.*training"):
            run.prepare(regenerate=True)
        # a changed source under a live run: RunBusyError too, and nothing is rewritten
        _touch_counts(tmp_path / "data" / "ds2.h5", change=True)
        before = snapshot(tmp_path / "runs")
        with pytest.raises(RunBusyError, match=f"ds2.*pid {sleeper.pid}.*training"):
            run.prepare()
        assert snapshot(tmp_path / "runs") == before
    finally:
        sleeper.kill()
        sleeper.wait()
    proc = cli("prepare", "config.yaml", "--regenerate", cwd=tmp_path)  # owner dead: allowed
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ trained results
@pytest.fixture(scope="module")
def trained(tmp_path_factory, datasets) -> Path:
    pytest.importorskip("torch")
    return train_one_run(tmp_path_factory.mktemp("trained"), datasets)


def test_cached_model_params_follow_the_file(tmp_path, trained):
    """Deleted: dumped again; rewritten: the new weights, not the cached ones."""
    shutil.copytree(trained, tmp_path, symlinks=True, dirs_exist_ok=True)
    run = the_run(tmp_path)
    first = run.load_model_trained_params()
    assert run.load_model_trained_params() is first  # unchanged file: cached
    run.file_model_params.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LfadsRunsWarning)
        again = run.load_model_trained_params()
    assert again is not first and run.file_model_params.is_file()
    older = min(
        run.path_lfads_output.glob("lfads_vae.ckpt-*.index"),
        key=lambda p: int(p.name.split("-")[1].split(".")[0]),
    ).with_suffix("")
    from lfads_runs.dump import dump_model_params

    dump_model_params(run.path_lfads_output, checkpoint=str(older))
    third = run.load_model_trained_params()
    assert third.global_step == int(older.name.rsplit("-", 1)[1]) != again.global_step


def test_cached_posterior_means_follow_the_files(tmp_path, trained):
    from lfads_runs.io.posterior_files import read_posterior_file, write_posterior_file

    shutil.copytree(trained, tmp_path, symlinks=True, dirs_exist_ok=True)
    run = the_run(tmp_path)
    pm = run.load_posterior_means()["ds1"]
    f = run.posterior_files(run.params.posterior_mean_kind)["ds1"]["train"]
    d = read_posterior_file(f)
    d["output_dist_params"] = d["output_dist_params"] * 2
    write_posterior_file(f, d)
    pm2 = run.load_posterior_means()["ds1"]
    rows = pm.train_inds - 1
    np.testing.assert_allclose(pm2.rates[rows], 2 * pm.rates[rows])


def _corrupt(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    for i in range(len(raw) // 2, len(raw) // 2 + 16):
        raw[i] ^= 0xFF
    p.write_bytes(bytes(raw))


def test_corrupt_latest_checkpoint_dump_falls_back(tmp_path, trained):
    shutil.copytree(trained, tmp_path, symlinks=True, dirs_exist_ok=True)
    run = the_run(tmp_path)
    ckpts = sorted(
        run.path_lfads_output.glob("lfads_vae.ckpt-*.index"),
        key=lambda p: int(p.name.split("-")[1].split(".")[0]),
    )
    newest, second = ckpts[-1].with_suffix(""), ckpts[-2].with_suffix("")
    _corrupt(Path(f"{newest}.data-00000-of-00001"))
    proc = cli("dump", "config.yaml", "--checkpoint", "latest", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and newest.name in proc.stderr and second.name in proc.stderr
    step = second.name.rsplit("-", 1)[1]
    assert f" {step} " in proc.stdout  # the step column names the checkpoint used
    assert "Traceback" not in proc.stderr


def test_corrupt_latest_checkpoint_resume_falls_back_bit_identically(tmp_path, trained):
    """Training resumes from the newest intact checkpoint and rewrites the corrupt one
    bit-identically (seeded, one thread)."""
    import torch

    from lfads_runs.engine.training import train

    shutil.copytree(trained, tmp_path, symlinks=True, dirs_exist_ok=True)
    run = the_run(tmp_path)
    out = run.path_lfads_output
    steps = sorted(
        int(p.name.split("-")[1].split(".")[0]) for p in out.glob("lfads_vae.ckpt-*.index")
    )
    data = out / f"lfads_vae.ckpt-{steps[-1]}.data-00000-of-00001"
    original = data.read_bytes()
    _corrupt(data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.warns(LfadsRunsWarning, match=f"ckpt-{steps[-1]}"):
            res = train(
                run.path_lfads_input, out, run.hparams(), progress=False, log=lambda s: None
            )
    finally:
        torch.set_num_threads(threads)
    assert res.resumed_from.name == f"lfads_vae.ckpt-{steps[-2]}"
    assert data.read_bytes() == original


def test_posterior_with_missing_trials_warns(tmp_path, trained):
    """Fewer trials than the split (``--ps_nexamples_to_process``, or a truncated file): a
    warning naming the file, and trial_loaded False for exactly the trials not held."""
    from lfads_runs.io.posterior_files import read_posterior_file, write_posterior_file

    shutil.copytree(trained, tmp_path, symlinks=True, dirs_exist_ok=True)
    run = the_run(tmp_path)
    f = run.posterior_files(run.params.posterior_mean_kind)["ds1"]["valid"]
    d = read_posterior_file(f)
    write_posterior_file(f, {k: (v if k == "train_steps" else v[:-2]) for k, v in d.items()})
    with pytest.warns(LfadsRunsWarning, match="ps_nexamples_to_process") as w:
        pm = run.load_posterior_means()["ds1"]
    assert str(f) in str(w[0].message)
    missing = pm.valid_inds[-2:] - 1
    assert (~pm.trial_loaded).sum() == 2 and not pm.trial_loaded[missing].any()
    assert np.isnan(pm.rates[missing]).all()


def test_debug_flag_shows_the_traceback(tmp_path, datasets):
    tree(tmp_path, datasets, BASE.replace("name: bad", "name: '..'"))
    plain = cli("list", "config.yaml", cwd=tmp_path)
    debug = cli("--debug", "list", "config.yaml", cwd=tmp_path)
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("error:")
    assert textwrap.dedent(debug.stderr).strip().splitlines()[-1].startswith("error:")


# ------------------------------------------------------------------ warnings
def _rewrite(path: Path, **arrays) -> None:
    with h5py.File(path, "a") as f:
        for k, v in arrays.items():
            del f[k]
            f[k] = v


def test_dropped_bins_warn_and_strict_refuses(tmp_path, datasets):
    """60 bins of 1 ms into 7-ms bins drop 4 bins: a warning, an error under --strict."""
    tree(tmp_path, datasets, BASE.replace("c_batch_size: 5}", "c_batch_size: 5, spikeBinMs: 7}"))
    before = snapshot(tmp_path)
    strict = cli("--strict", "prepare", "config.yaml", cwd=tmp_path)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert "error:" in strict.stderr and "last 4 bin(s)" in strict.stderr
    assert snapshot(tmp_path) == before
    with pytest.warns(LfadsRunsWarning, match=r"'ds1'.*last 4 bin\(s\) \(4 ms\)"):
        RunCollection.from_yaml(tmp_path / "config.yaml").prepare()


def test_implausible_counts_and_nan_conditions_warn(tmp_path, datasets):
    tree(tmp_path, datasets)
    with h5py.File(tmp_path / "data" / "ds1.h5", "r") as f:
        counts, cond = f["counts"][()].astype(np.float64), f["condition_id"][()].astype(float)
    counts[3, 5, 2] = 1e15
    cond[7] = np.nan
    _rewrite(tmp_path / "data" / "ds1.h5", counts=counts, condition_id=cond)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RunCollection.from_yaml(tmp_path / "config.yaml").prepare()
    text = "\n".join(str(w.message) for w in caught if issubclass(w.category, LfadsRunsWarning))
    assert "implausible spike counts up to 1e+15" in text and "trial 4, bin 6" in text
    assert "1 NaN condition id(s), first at trial 8" in text
