"""One run end to end in this process: stages, state file, done marker last, failures."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("torch")

from _queue_helpers import attempts, corrupt_input, load, make_config, state  # noqa: E402

from lfads_runs.claims import ClaimHandle, acquire_claim  # noqa: E402
from lfads_runs.io.fitlog import read_fitlog_rows  # noqa: E402
from lfads_runs.io.model_params import read_model_params  # noqa: E402
from lfads_runs.io.posterior_files import read_posterior_file  # noqa: E402
from lfads_runs.pipeline import EXIT_CLAIMED, RunTask, execute  # noqa: E402


@pytest.fixture
def rc(tmp_path):
    return load(make_config(tmp_path, n_params=1))


def test_run_end_to_end_in_process(rc):
    """prepare -> train -> posterior -> model_params -> done; state file and log complete."""
    run = rc.find_runs("single_dataset001", 1)
    run.paths.path.mkdir(parents=True)
    run.paths.log_file.write_text("an earlier attempt\n")
    result = run.train(executor="debug", threads=1, seed=3)
    assert result.summary() == "1 done, 0 skipped, 0 failed" and result.exit_code == 0
    assert run.paths.done_marker.is_file()
    st = state(run)
    assert st["state"] == "done" and st["exit_code"] == 0 and st["stage"] == "done"
    assert st["stages_completed"] == ["prepare", "train", "posterior", "dump"]
    assert st["host"] and st["pid"] and st["ended_ts"] >= st["started_ts"]
    assert st["train"]["epochs"] == 3 and st["train"]["stop_reason"] == "max_epochs"
    assert st["progress"]["epoch"] == 2 and st["progress"]["learning_rate"] == 0.01
    log = run.paths.log_file.read_text()
    assert log.startswith("an earlier attempt\n")  # appended, never truncated
    assert "Epoch:2, step:" in log and "stage dump" in log
    rows = read_fitlog_rows(run.file_fitlog)
    assert [r.epoch for r in rows] == [0, 1, 2]
    files = run.posterior_files()["dataset001"]
    assert read_posterior_file(files["valid"])["output_dist_params"].shape[1:] == (50, 12)
    weights = read_model_params(run.file_model_params)
    assert "LFADS_gen_GenGRU_Gates_h_2_ru_W:0" in weights and len(weights) > 10
    row = run.state()
    assert row.state == "done" and row.epochs == 3 and row.best_valid_cost is not None
    again = run.train(executor="debug", threads=1)
    assert again.summary() == "0 done, 1 skipped, 0 failed" and attempts(run) == 1


def test_done_marker_only_after_every_stage(rc):
    """A failure after training (model_params) leaves no done marker; a rerun resumes."""
    run = rc.find_runs("all", 1)
    run.paths.path_lfads_output.mkdir(parents=True)
    run.file_model_params.mkdir()  # the dump cannot replace a folder
    result = run.train(executor="debug", threads=1)
    assert result.n_failed == 1 and result.exit_code == 1
    assert not run.paths.done_marker.exists()
    st = state(run)
    assert st["state"] == "failed" and st["failed_stage"] == "dump" and st["exit_code"] == 1
    assert st["stages_completed"] == ["prepare", "train", "posterior"]
    assert "Traceback" in st["traceback"] and st["log_tail"]
    (o,) = result.failed
    assert o.failed_stage == "dump" and "dump" in o.reason
    row = run.state()
    assert row.state == "failed" and "dump" in row.reason
    run.file_model_params.rmdir()
    result = run.train(executor="debug", threads=1)
    assert result.n_done == 1 and run.paths.done_marker.is_file()
    st = state(run)
    assert st["attempt"] == 2 and st["train"]["resumed_from"]  # resumed, not retrained
    assert len(read_fitlog_rows(run.file_fitlog)) == 3


def test_bad_data_fails_in_training_with_the_log_tail(rc):
    """Negative counts: the run fails in stage train; the error and log tail say why."""
    run = rc.find_runs("all", 1)
    run.prepare()
    corrupt_input(run)
    result = run.train(executor="debug", threads=1)
    (o,) = result.failed
    assert o.failed_stage == "train" and "DataError" in o.error and "negative" in o.error
    assert any("negative" in line for line in o.log_tail)
    assert not run.paths.done_marker.exists() and not run.paths.claim_file.exists()


def test_claimed_run_is_left_alone(rc):
    """A run claimed by a live process is skipped without touching its files."""
    run = rc.find_runs("all", 1)
    held = acquire_claim(run.paths)
    assert isinstance(held, ClaimHandle)
    out = execute(RunTask.from_run(run))
    assert out.status == "skipped" and out.exit_code == EXIT_CLAIMED and "claimed" in out.reason
    assert not run.paths.state_file.exists()
    held.release()


def test_task_json_round_trip(rc):
    """A RunTask survives JSON (it is how workers receive it)."""
    run = rc.find_runs("all", 1)
    task = RunTask.from_run(run, device="cpu", threads=2, seed=5)
    assert RunTask.from_json(task.to_json()) == task
    assert task.paths == run.paths and task.hparams["factors_dim"] == 3


@pytest.mark.slow
def test_external_engine_runs_the_script_commands(tmp_path):
    """--engine external: the run_lfads.py command lines, here with our drop-in, one per stage."""
    shim = tmp_path / "run_lfads.py"
    shim.write_text("import runpy\nrunpy.run_module('lfads_runs.engine', run_name='__main__')\n")
    extra = f"scripts:\n  python: {sys.executable}\n  run_lfads_py: {shim}\n"
    rc = load(make_config(tmp_path, n_params=1, extra=extra))
    run = rc.find_runs("single_dataset001", 1)
    result = run.train(executor="debug", threads=1, engine="external")
    assert result.n_done == 1, result.outcomes
    assert run.file_model_params.is_file() and run.paths.done_marker.is_file()
    assert all(f.is_file() for f in run.posterior_files()["dataset001"].values())
    assert state(run)["engine"] == "external"
