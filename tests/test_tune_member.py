"""What a PBT member does with our engine between generations (no Ray needed):
an exploited copy gets its own random streams, and generation 0 waits for the ramps."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _queue_helpers import load, make_config  # noqa: E402

from lfads_runs.data.synthetic import lorenz  # noqa: E402
from lfads_runs.engine import train  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.io.fitlog import read_fitlog_rows  # noqa: E402
from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input  # noqa: E402
from lfads_runs.tuning.driver import first_generation_epochs  # noqa: E402
from lfads_runs.tuning.member import exploit_seed  # noqa: E402
from lfads_runs.tuning.spec import parse_tune_section  # noqa: E402

HPS = dict(
    batch_size=8, factors_dim=4, gen_dim=16, ic_dim=8, ic_enc_dim=8, co_dim=0,
    kl_increase_steps=10, l2_increase_steps=10, l2_gen_scale=50.0, cd_rate=0.3,
)  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("member") / "lfadsInput"
    folder.mkdir()
    ds = lorenz(
        n_datasets=1, n_conditions=6, trials_per_condition=6, n_neurons=(10,),
        duration_ms=200, bin_ms=10, seed=2, mean_rate_hz=30.0,
    ).datasets[0]  # fmt: skip
    valid = np.arange(ds.counts.shape[0]) % 4 == 0
    write_lfads_input(
        folder / "lfads_dataset001.h5",
        LfadsInput(train_data=ds.counts[~valid], valid_data=ds.counts[valid]),
    )
    return folder


def _costs(save: Path) -> list[float]:
    return [r.total_train for r in read_fitlog_rows(save / "fitlog.csv")]


def test_exploited_copy_gets_its_own_random_streams(inputs, tmp_path):
    """A copy of a donor's folder continued with ``reseed`` trains on other batches and
    masks than the donor (same weights, Adam state and step); a second resume with the
    same ``reseed`` keeps the streams the checkpoint already has, exactly."""
    quiet = {"log": lambda m: None, "progress": False}
    hps = Hyperparameters(**HPS)
    donor = tmp_path / "donor"
    train(inputs, donor, hps.evolve(max_epochs=2), seed=1, **quiet)
    copy = tmp_path / "copy"
    shutil.copytree(donor, copy)
    replay = tmp_path / "replay"
    shutil.copytree(donor, replay)

    train(inputs, donor, hps.evolve(max_epochs=4), **quiet)
    train(inputs, replay, hps.evolve(max_epochs=4), **quiet)
    assert _costs(replay) == _costs(donor)  # without reseed a copy replays the donor
    new = exploit_seed(0, 1, 1)
    res = train(inputs, copy, hps.evolve(max_epochs=4), reseed=new, **quiet)
    assert res.seed == new
    assert _costs(copy)[:2] == _costs(donor)[:2]  # the copied history
    assert _costs(copy)[2:] != _costs(donor)[2:]  # its own batches and masks from here
    assert res.steps == 4 * 4  # the step carried on: 32 training trials / batch 8

    # A resume of the reseeded member (e.g. after a kill) continues its streams exactly.
    again = tmp_path / "again"
    shutil.copytree(copy, again)
    train(inputs, copy, hps.evolve(max_epochs=6), reseed=new, **quiet)
    train(inputs, again, hps.evolve(max_epochs=6), **quiet)
    assert _costs(copy) == _costs(again)


def test_exploit_seed_is_fixed_and_distinct():
    assert exploit_seed(0, 1, 2) == exploit_seed(0, 1, 2)
    seeds = {exploit_seed(s, m, g) for s in (0, 1) for m in range(4) for g in range(1, 5)}
    assert len(seeds) == 2 * 4 * 4


@pytest.mark.parametrize(
    ("ramps", "want"),
    [
        # 2 datasets of 64 training trials in batches of 10: 7 + 7 = 14 Adam steps per
        # epoch; the run manager doubles ramp lengths and starts (2 datasets).
        ("c_kl_increase_steps: 30, c_l2_increase_steps: 10, ", 5 + 5),  # 60 steps
        ("c_kl_increase_steps: 10, c_l2_increase_steps: 50, c_l2_start_step: 10, ", 9 + 5),
        # no L2 cost: its ramp does not count
        (
            "c_kl_increase_steps: 1, c_l2_increase_steps: 500, c_l2_gen_scale: 0, c_l2_con_scale: 0, ",
            1 + 5,
        ),
        ("c_kl_increase_steps: 0, c_l2_gen_scale: 0, c_l2_con_scale: 0, ", 0 + 5),
    ],
)
def test_first_generation_runs_through_the_ramps(tmp_path, ramps, want):
    cfg = make_config(tmp_path, n_params=1, run_specs=("all",))
    cfg.write_text(cfg.read_text().replace("c_max_epochs:", ramps + "c_max_epochs:"))
    rc = load(cfg)
    run = rc.run("all", 1)
    run.prepare()
    spec = parse_tune_section(
        {"epochs_per_generation": 5, "search": {"c_keep_prob": {"min": 0.5, "max": 1.0}}},
        type(run.params),
        lambda path, msg: AssertionError(msg),
    )
    assert first_generation_epochs(run, spec) == want


def _checkpoint_rate(save: Path) -> float:
    from lfads_runs.engine.ckpt import read_checkpoint_arrays
    from lfads_runs.io.checkpoint_state import read_checkpoint_state

    prefix = read_checkpoint_state(save, "checkpoint").model_checkpoint_path
    return float(read_checkpoint_arrays(prefix)["LFADS/learning_rate"])


def test_an_explored_initial_rate_scales_the_lineage_rate(inputs, tmp_path):
    """PBT explores ``learning_rate_init``; the member continues at its checkpoint's
    (decayed) rate times the change, so LFADS's decay carries across generations. The
    factor is taken against the rate the checkpoint was trained with, also when a
    call at the new rate already wrote its hyperparameters file (a kill at its start)."""
    hps = Hyperparameters(**HPS, learning_rate_decay_factor=0.5, learning_rate_n_to_compare=1)
    lines: list[str] = []
    quiet = {"log": lines.append, "progress": False}
    first = tmp_path / "first"
    train(inputs, first, hps.evolve(max_epochs=3, learning_rate_init=0.01), seed=1, **quiet)
    trained = _checkpoint_rate(first)
    assert trained < 0.01  # LFADS's decay acted (factor 0.5 here)

    def scaled_lines(name: str, rate: float, rescale: bool = True) -> list[str]:
        """Continue a copy of ``first`` for one epoch at ``rate``; its "scaled" log lines."""
        save = tmp_path / name
        if not save.exists():
            shutil.copytree(first, save)
        lines.clear()
        gen = hps.evolve(max_epochs=4, learning_rate_init=rate)
        train(inputs, save, gen, rescale_learning_rate=rescale, **quiet)
        return [m for m in lines if "scaled" in m]

    assert scaled_lines("same", 0.01) == []  # an unchanged rate: the decay carries on
    # a call at the new rate that stopped before any epoch: its file has the checkpoint's step
    shutil.copytree(first, tmp_path / "halved")
    train(inputs, tmp_path / "halved", hps.evolve(max_epochs=3, learning_rate_init=0.005), **quiet)
    half = np.float32(trained * np.float32(0.5))
    assert scaled_lines("halved", 0.005) == [
        f"Learning rate scaled by 0.5 (learning_rate_init 0.01 -> 0.005): {half:g}."
    ]
    assert _checkpoint_rate(tmp_path / "halved") <= half + 1e-9
    # without rescaling the checkpoint's rate is kept whatever learning_rate_init says
    assert scaled_lines("kept", 0.005, rescale=False) == []


def test_a_member_never_copied_trains_as_one_run(inputs, tmp_path):
    """Generations of a member that keeps its own hyperparameters add up to one run of
    them, bit for bit, learning-rate decay included (so PBT's population starts as the
    grid of its initial members)."""
    from lfads_runs.engine.ckpt import read_checkpoint_arrays
    from lfads_runs.io.checkpoint_state import read_checkpoint_state

    hps = Hyperparameters(**HPS, learning_rate_decay_factor=0.5, learning_rate_n_to_compare=1)
    quiet = {"log": lambda m: None, "progress": False}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(inputs, whole, hps.evolve(max_epochs=6), seed=3, **quiet)
    for epochs in (2, 4, 6):  # the member's generations
        gen = hps.evolve(max_epochs=epochs, learning_rate_stop=0.0)
        train(inputs, parts, gen, seed=3, rescale_learning_rate=True, **quiet)
    assert _costs(parts) == _costs(whole)

    def final(save):
        return read_checkpoint_arrays(
            read_checkpoint_state(save, "checkpoint").model_checkpoint_path
        )

    a, b = final(whole), final(parts)
    assert a.keys() == b.keys() and float(a["LFADS/learning_rate"]) < 0.01
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
