"""Scripts for the original TensorFlow LFADS: golden files and MATLAB-compatible text."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from _lorenz_params import LORENZ as DRIVE_SCRIPT

from lfads_runs import ConfigError, Dataset, RunCollection, RunParams, RunSpec
from lfads_runs import scripts as S

GOLDEN = Path(__file__).parent / "golden" / "scripts"
UPDATE = os.environ.get("LFADS_RUNS_UPDATE_GOLDEN") == "1"

LORENZ = {**DRIVE_SCRIPT, "c_ic_post_var_min": 1e-7}  # MATLAB's %f would print 0.000000


def collection(tmp_path: Path) -> RunCollection:
    ds = [Dataset.from_file(tmp_path / f"dataset00{i}.h5") for i in (1, 2)]
    specs = [RunSpec("all", [d.name for d in ds]), RunSpec("single_dataset001", [ds[0]])]
    params = [RunParams(**LORENZ, use_alignment_matrix=True), RunParams(**LORENZ)]
    return RunCollection(tmp_path / "runs", "exampleRun", ds, specs, params)


def check_golden(name: str, text: str, root: Path) -> None:
    text = text.replace(str(root), "<ROOT>")
    f = GOLDEN / name
    if UPDATE:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    assert text == f.read_text(), f"{name} differs from {f} (LFADS_RUNS_UPDATE_GOLDEN=1 rewrites)"


def test_golden_scripts(tmp_path):
    """The three run scripts and launch_tensorboard.sh, byte for byte."""
    rc = collection(tmp_path)
    written = rc.write_scripts()
    run = rc.find_runs("all", 1)
    files = written["runs"][str(run.path)]
    assert files == {
        "train": run.paths.train_script,
        "posterior": run.paths.posterior_script,
        "dump": run.paths.write_params_script,
    }
    for path in files.values():
        check_golden(path.name, path.read_text(), tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    check_golden("launch_tensorboard.sh", rc.layout.tensorboard_script.read_text(), tmp_path)
    assert len(written["runs"]) == 4


def test_golden_with_options(tmp_path):
    """virtualenv, PATH export, CUDA_VISIBLE_DEVICES and DISPLAY prefixes, a custom python."""
    rc = collection(tmp_path)
    fake = tmp_path / "lfads" / "run_lfads.py"
    opts = S.ScriptOptions(
        run_lfads_py=str(fake),
        python="python3",
        virtualenv="tf1",
        prepend_path=True,
        cuda_visible_devices=1,
        display=500,
    )
    run = rc.find_runs("single_dataset001", 2)
    check_golden("lfads_train_options.sh", S.train_script_text(run, opts), tmp_path)
    text = S.tensorboard_script_text(rc, [run], virtualenv="tf1")
    check_golden("launch_tensorboard_options.sh", text, tmp_path)


def test_matlab_command_layout(tmp_path):
    """Spec §6.2/§6.3: flag order, two spaces before posterior/write-params flags, tee -a."""
    rc = collection(tmp_path)
    run = rc.find_runs("all", 1)
    train = S.train_command(run)
    assert train.startswith(
        f'python "$(which run_lfads.py)" --data_dir={run.path_lfads_input} '
        f"--data_filename_stem=lfads --lfads_save_dir={run.path_lfads_output} --"
    )
    assert " --learning_rate_stop=0.001 " in train and " --batch_size=150 " in train
    assert " --kl_increase_steps=1800 " in train  # 900 x 2 datasets
    assert " --ic_post_var_min=1e-07 " in train  # lossless, not 0.000000
    assert "--tf_debug" not in train and "--debug_verbose" not in train
    pm = S.posterior_command(run)
    assert (
        "--kind=posterior_sample_and_average --batch_size=512 "
        "--checkpoint_pb_load_name=checkpoint_lve  --allow_gpu_growth=true"
    ) in pm
    assert "--temporal_spike_jitter_width" not in pm and pm.count("--batch_size=") == 1
    wp = S.write_params_command(run)
    assert "--kind=write_model_params --checkpoint_pb_load_name=checkpoint_lve  --" in wp
    assert "--temporal_spike_jitter_width" not in wp and "--batch_size=150" in wp
    assert S.posterior_command(run, kind="posterior_push_mean", n_samples=8).count(
        "--kind=posterior_push_mean --batch_size=8 "
    )
    script = S.train_script_text(run)
    assert f"2>&1 | tee -a {run.paths.log_file}\n" in script
    assert "| tee " + str(run.paths.log_file) not in script  # never overwrite lfads.out
    assert script.startswith('#!/bin/bash\n\npath_to_run_lfads="$(which run_lfads.py)"\n')


def test_paths_with_spaces_are_quoted(tmp_path):
    """A collection under a folder with a space still yields a working command line."""
    rc = collection(tmp_path / "my runs")
    run = rc.find_runs("all", 1)
    cmd = S.train_command(run, S.ScriptOptions(run_lfads_py=str(tmp_path / "a b" / "r.py")))
    assert f"'{run.path_lfads_input}'" in cmd and f"'{tmp_path / 'a b' / 'r.py'}'" in cmd


def test_scripts_run_and_report_failure(tmp_path):
    """The generated scripts run under bash; a failing first stage fails the script (pipefail)."""
    rc = collection(tmp_path)
    run = rc.find_runs("single_dataset001", 1)
    fake = tmp_path / "run_lfads.py"
    fake.write_text(
        "import sys\nprint('args', len(sys.argv))\nsys.exit(3 if '--kind=write_model_params'"
        " not in sys.argv and '--kind=posterior_sample_and_average' not in sys.argv else 0)\n"
    )
    opts = S.ScriptOptions(run_lfads_py=str(fake), python="python3")
    S.write_run_scripts(run, opts)
    run.paths.log_file.write_text("earlier attempt\n")
    proc = subprocess.run(["bash", str(run.paths.train_script)], capture_output=True, text=True)
    assert proc.returncode == 3
    log = run.paths.log_file.read_text()
    assert log.startswith("earlier attempt\n") and "args" in log  # appended, not overwritten
    proc = subprocess.run(["bash", str(run.paths.posterior_script)], capture_output=True)
    assert proc.returncode == 0


def test_missing_run_lfads_is_reported(tmp_path):
    """The check snippet stops with MATLAB's message when run_lfads.py is not on PATH."""
    rc = collection(tmp_path)
    run = rc.find_runs("all", 1)
    S.write_run_scripts(run)
    env = dict(os.environ, PATH="/usr/bin:/bin")
    proc = subprocess.run(
        ["bash", str(run.paths.write_params_script)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1
    assert "Error: run_lfads.py not found on PATH" in proc.stdout


def test_options_from_yaml_section_are_checked():
    """Unknown keys and wrong types in the scripts: section are ConfigErrors."""
    assert S.ScriptOptions.from_config({"virtualenv": "tf1"}).virtualenv == "tf1"
    with pytest.raises(ConfigError, match="unknown key"):
        S.ScriptOptions.from_config({"virtualen": "tf1"})
    with pytest.raises(ConfigError, match="prepend_path"):
        S.ScriptOptions.from_config({"prepend_path": "yes please"})


def test_cli_scripts(tmp_path):
    """``lfads-runs scripts CONFIG --json`` writes the files and lists them."""
    from _queue_helpers import cli, make_config

    cfg = make_config(tmp_path, n_params=1, extra="scripts:\n  virtualenv: tf1\n")
    proc = cli("scripts", str(cfg), "--run-spec", "all", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    (files,) = out["runs"].values()
    text = Path(files["train"]).read_text()
    assert "source activate tf1\n" in text
    assert Path(out["tensorboard"]).read_text().count("lfadsOutput") == 1
