"""Training: a short run learns, writes LFADS's files, and resumes exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import latest_checkpoint, manifest

torch = pytest.importorskip("torch")

from lfads_runs.data.synthetic import lorenz  # noqa: E402
from lfads_runs.engine import train  # noqa: E402
from lfads_runs.engine.cli import main as cli_main  # noqa: E402
from lfads_runs.exceptions import LfadsRunsWarning  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.io.checkpoint_state import read_checkpoint_state  # noqa: E402
from lfads_runs.io.fitlog import read_fitlog_rows  # noqa: E402
from lfads_runs.io.hyperparameters_file import read_hyperparameters  # noqa: E402
from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input  # noqa: E402
from lfads_runs.io.tensorbundle import read_bundle  # noqa: E402

HPS = dict(
    batch_size=8, factors_dim=4, gen_dim=16, ic_dim=8, ic_enc_dim=16, co_dim=0,
    kl_increase_steps=20, l2_increase_steps=20, learning_rate_n_to_compare=2,
    learning_rate_decay_factor=0.7, learning_rate_stop=0.0035, l2_gen_scale=50.0,
)  # fmt: skip


def write_inputs(folder: Path, *, n_datasets=2, neurons=(10, 12), seed=0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    d = lorenz(
        n_datasets=n_datasets,
        n_conditions=12,
        trials_per_condition=5,
        n_neurons=neurons[:n_datasets],
        duration_ms=300,
        bin_ms=10,
        seed=seed,
        mean_rate_hz=30.0,
    )
    for ds in d.datasets:
        valid = np.arange(ds.counts.shape[0]) % 5 == 0
        write_lfads_input(
            folder / f"lfads_{ds.name}.h5",
            LfadsInput(train_data=ds.counts[~valid], valid_data=ds.counts[valid]),
        )
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return write_inputs(tmp_path_factory.mktemp("engine_in") / "lfadsInput")


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def reference_run(inputs, tmp_path_factory):
    """An uninterrupted 12-epoch run (shared by several tests; read-only)."""
    out = tmp_path_factory.mktemp("engine_ref") / "lfadsOutput"
    res = train(inputs, out, Hyperparameters(**HPS, max_epochs=12), seed=7, log=_quiet)
    return out, res


def test_short_run_learns_and_writes_lfads_files(reference_run, tf_fixtures):
    out, res = reference_run
    assert res.stop_reason == "max_epochs" and res.epochs == 12 and res.steps == 12 * 12
    rows = read_fitlog_rows(out / "fitlog.csv")
    assert [r.epoch for r in rows] == list(range(12))
    assert rows[0].step == 12 and rows[-1].step == 144
    assert rows[-1].total_valid < rows[0].total_valid - 20  # validation cost falls
    assert rows[0].kl_weight == pytest.approx(0.55)  # weight of the last batch: step 11 / 20
    # Pointer files and checkpoints: every variable, Adam slot and scalar, TF names.
    st = read_checkpoint_state(out, "checkpoint")
    lve = read_checkpoint_state(out, "checkpoint_lve")
    assert st.model_checkpoint_path.name == "lfads_vae.ckpt-144"
    assert res.lve_checkpoint == lve.model_checkpoint_path
    assert len(lve.all_model_checkpoint_paths) == 5  # max_ckpt_to_keep
    assert sorted(p.name for p in out.glob("lfads_vae_lve.ckpt-*.index")) == sorted(
        f"{p.name}.index" for p in lve.all_model_checkpoint_paths
    )
    tensors = read_bundle(st.model_checkpoint_path)
    assert (
        tensors["LFADS/global_step"].dtype == np.int64 and int(tensors["LFADS/global_step"]) == 144
    )
    assert tensors["LFADS/beta1_power"] == pytest.approx(0.9**145, rel=1e-4)
    assert "LFADS/LFADS/gen/GenGRU/Gates/h_2_ru/W/Adam_1" in tensors
    assert (out / "lfads_vae.ckpt-144.lfads_runs.json").is_file()
    assert not list(out.glob("*.meta"))
    # hyperparameters-0.txt: TensorFlow's keys in TensorFlow's order, booleans as strings.
    ours = json.loads((out / "hyperparameters-0.txt").read_text())
    theirs = json.loads((tf_fixtures / "stitch2/lfadsOutput/hyperparameters-0.txt").read_text())
    assert list(ours)[: len(theirs)] == list(theirs)
    assert ours["do_train_readin"] == "true" and ours["num_steps_for_gen_ic"] == 30
    assert ours["dataset_names"] == ["dataset001.h5", "dataset002.h5"] and ours["ndatasets"] == 2
    assert ours["max_epochs"] == 12


def _same_run(a: Path, b: Path) -> None:
    assert (a / "fitlog.csv").read_bytes() == (b / "fitlog.csv").read_bytes()
    ta, tb = read_bundle(a / "lfads_vae.ckpt-144"), read_bundle(b / "lfads_vae.ckpt-144")
    assert ta.keys() == tb.keys()
    for k in ta:
        assert np.array_equal(ta[k], tb[k]), k
    for pointer in ("checkpoint_lve",):
        assert (a / pointer).read_text() == (b / pointer).read_text()


def test_resume_after_epoch_limit_equals_uninterrupted_run(inputs, reference_run, tmp_path):
    ref, _ = reference_run
    out = tmp_path / "lfadsOutput"
    first = train(inputs, out, Hyperparameters(**HPS, max_epochs=5), seed=7, log=_quiet)
    assert first.epochs == 5 and first.stop_reason == "max_epochs"
    again = train(inputs, out, Hyperparameters(**HPS, max_epochs=5), seed=7, log=_quiet)
    assert again.steps == 60 and again.epochs == 5  # nothing left to do
    res = train(inputs, out, Hyperparameters(**HPS, max_epochs=12), seed=123, log=_quiet)
    assert res.resumed_from == out / "lfads_vae.ckpt-60"
    assert res.seed == 7  # the recorded seed continues the same random streams
    _same_run(ref, out)


def test_resume_after_interruption_equals_uninterrupted_run(inputs, reference_run, tmp_path):
    ref, _ = reference_run
    out = tmp_path / "lfadsOutput"

    def die_in_epoch_8(msg):
        if msg.startswith("Epoch:8,"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(inputs, out, Hyperparameters(**HPS, max_epochs=12), seed=7, log=die_in_epoch_8)
    res = train(inputs, out, Hyperparameters(**HPS, max_epochs=12), seed=7, log=_quiet)
    # The newest checkpoint of ours is the LVE one of epoch 8 (written before its fit-log line).
    assert res.resumed_from is not None and "_lve.ckpt-" in res.resumed_from.name
    _same_run(ref, out)


def test_restart_from_a_tensorflow_checkpoint(tf_fixtures, tmp_path):
    """No sidecar: weights, Adam, lr and step restored; epoch counter and histories restart."""
    case = tf_fixtures / "stitch2"
    latest = latest_checkpoint("stitch2")
    step0 = manifest("stitch2")["latest_step"]
    tf_rows = read_fitlog_rows(case / "lfadsOutput" / "fitlog.csv")
    per_epoch = tf_rows[1].step - tf_rows[0].step  # both datasets' batches
    out = tmp_path / "lfadsOutput"
    out.mkdir()
    for f in (case / "lfadsOutput").iterdir():
        if f.name.startswith(("checkpoint", f"{latest.name}.", "fitlog")):
            shutil.copy(f, out / f.name)
    hps = read_hyperparameters(case / "lfadsOutput" / "hyperparameters-0.txt")
    hps = hps.evolve(max_epochs=1)
    res = train(case / "lfadsInput", out, hps, seed=0, log=_quiet)
    assert res.resumed_from == out / latest.name
    assert res.steps == step0 + per_epoch
    rows = read_fitlog_rows(out / "fitlog.csv")
    assert len(rows) == len(tf_rows) + 1 and rows[-1].epoch == 0
    assert rows[-1].step == step0 + per_epoch
    assert abs(rows[-1].total_valid - rows[-2].total_valid) < 50  # continued, not restarted
    assert (out / f"hyperparameters-{step0}.txt").is_file()
    # Epoch 0 of the restart writes a regular checkpoint, next to TF's.
    st = read_checkpoint_state(out, "checkpoint")
    assert st.model_checkpoint_path.name == f"lfads_vae.ckpt-{step0 + per_epoch}"
    t = read_bundle(out / f"lfads_vae.ckpt-{step0 + per_epoch}")
    tf_lr = float(read_bundle(latest)["LFADS/learning_rate"])  # no decay in the first epoch
    assert float(t["LFADS/learning_rate"]) == pytest.approx(tf_lr, rel=1e-5)


def test_command_line_trains_and_samples(inputs, tmp_path):
    out = tmp_path / "lfadsOutput"
    base = [f"--data_dir={inputs}", "--data_filename_stem=lfads", f"--lfads_save_dir={out}",
            "--batch_size=8", "--factors_dim=4", "--gen_dim=12", "--ic_dim=6",
            "--ic_enc_dim=8", "--co_dim=1", "--ci_enc_dim=6", "--con_dim=6",
            "--do_causal_controller", "--feedback_factors_or_rates=factors",
            "--some_unknown_flag=3", "--device=cpu:0", "--seed=2"]  # fmt: skip
    assert cli_main(["--kind=train", "--max_epochs=2", *base]) == 0
    assert (
        cli_main(["--kind=posterior_push_mean", "--checkpoint_pb_load_name=checkpoint", *base]) == 0
    )
    assert (out / "model_runs_dataset002.h5_valid_posterior_push_mean").is_file()
    ours = json.loads(next(out.glob("hyperparameters-2*.txt")).read_text())
    assert ours["kind"] == "posterior_push_mean" and ours["do_causal_controller"] == "true"
    with pytest.warns(LfadsRunsWarning, match="no lowest-validation-error checkpoint"):
        rc = cli_main(
            ["--kind=write_model_params", "--checkpoint_pb_load_name=checkpoint_lve", *base]
        )
    assert rc == 0
    from lfads_runs.io.model_params import read_model_params

    params = read_model_params(out / "model_params")
    assert int(params["LFADS_global_step:0"]) == 24
    assert "LFADS_LFADS_con_GenGRU_Gates_h_2_ru_W_Adam_1:0" in params
    assert cli_main(["--kind=prior_sample", *base]) == 0
    from lfads_runs.io.posterior_files import read_posterior_file

    prior = read_posterior_file(out / "model_runs_prior_sample")
    assert prior["prior_zs_ar_con"].shape == (8, 30, 1) and prior["factors"].shape == (8, 30, 4)
    assert cli_main(["--kind=bogus", *base]) == 2


def test_time_limit_stops_after_an_epoch(inputs, tmp_path):
    res = train(
        inputs, tmp_path / "out", Hyperparameters(**HPS, max_train_seconds=1e-3), seed=1, log=_quiet
    )
    assert res.stop_reason == "max_train_seconds" and res.epochs == 1
    # A later call with a larger budget continues from there.
    res = train(inputs, tmp_path / "out", Hyperparameters(**HPS, max_epochs=2), seed=1, log=_quiet)
    assert res.epochs == 2 and res.resumed_from is not None


def test_spike_jitter_moves_spikes_within_the_trial():
    from lfads_runs.engine.data import jitter_spikes

    rng = np.random.default_rng(0)
    counts = rng.poisson(0.7, (6, 20, 5)).astype(np.int64)
    counts[0, 0, 0] = 9  # reflected at the start
    out = jitter_spikes(counts, 3, np.random.default_rng(1))
    assert out.dtype == counts.dtype and out.shape == counts.shape
    np.testing.assert_array_equal(out.sum(1), counts.sum(1))  # no spike lost or made
    assert not np.array_equal(out, counts)
    # A lone spike moves by -3..+2 bins (reflected at the ends).
    one = np.zeros((1, 20, 1), np.int64)
    one[0, 10, 0] = 1
    moved = {
        int(np.argmax(jitter_spikes(one, 3, np.random.default_rng(i))[0, :, 0])) for i in range(200)
    }
    assert moved == set(range(7, 13))
    assert jitter_spikes(counts, 0, rng) is counts


def test_pure_torch_path_trains_a_controller_model(inputs, tmp_path):
    """Without the native kernels (no C++ compiler) training runs the torch code paths."""
    from lfads_runs.engine import _ext

    _ext.set_native_enabled(False)
    try:
        hps = Hyperparameters(**{**HPS, "co_dim": 1, "ci_enc_dim": 6, "con_dim": 6}, max_epochs=3)
        res = train(inputs, tmp_path / "out", hps, seed=3, log=_quiet)
    finally:
        _ext.set_native_enabled(None)
    rows = read_fitlog_rows(tmp_path / "out" / "fitlog.csv")
    assert res.epochs == 3 and rows[-1].total_valid < rows[0].total_valid
    side = json.loads((tmp_path / "out" / "lfads_vae.ckpt-36.lfads_runs.json").read_text())
    assert side["noise"]["kind"] == "torch"
