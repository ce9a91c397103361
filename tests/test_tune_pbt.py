"""PBT on a local Ray: a tiny population, exploit/explore recorded, the best run loads."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ray.tune")

from _queue_helpers import load, make_config  # noqa: E402

from lfads_runs import LfadsRunsError, MissingDependencyError, MissingOutputError  # noqa: E402
from lfads_runs import layout as L  # noqa: E402
from lfads_runs.tuning.member import exploit_seed  # noqa: E402

pytestmark = pytest.mark.slow

SECTION = """tune:
  population: 2
  epochs_per_generation: 2
  generations: 3
  quantile: 0.5
  search:
    c_learning_rate_init: {min: 1.0e-3, max: 2.0e-2, init: [5.0e-3, 1.0e-2], scale: log}
    c_keep_prob: {min: 0.5, max: 1.0}
"""


#: KL and L2 ramps of 10 steps: with 7 steps per epoch (single_dataset001) generation
#: 0 lasts 2 ramp epochs + epochs_per_generation = 4 epochs, the later ones 2 each.
RAMP_STEPS = 10
FIRST = 4


def _config(tmp_path, section=SECTION, run_specs=("single_dataset001",)):
    """make_config's tiny collection, with short KL/L2 ramps (tune waits for them)."""
    cfg = make_config(tmp_path, n_params=1, run_specs=run_specs, extra=section)
    text = cfg.read_text()
    ramps = f"c_kl_increase_steps: {RAMP_STEPS}, c_l2_increase_steps: {RAMP_STEPS}, "
    cfg.write_text(text.replace("c_max_epochs:", ramps + "c_max_epochs:"))
    return cfg


def _env():
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=os.getcwd())
    return env


def _cli(*args, timeout=400):
    """``lfads-runs ARGS`` in a subprocess that imports this tree."""
    return subprocess.run(
        [sys.executable, "-m", "lfads_runs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def test_pbt_tiny_population_end_to_end(tmp_path):
    cfg = _config(tmp_path)
    rc = load(cfg)
    run = rc.run("single_dataset001", 1)
    with pytest.raises(MissingOutputError, match="no tuned model"):
        run.tuned()
    res = _cli("tune", cfg, "--num-cpus", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "tuned model:" in res.stdout

    tune_dir = run.paths.tune_dir
    rows = {}
    for m in (0, 1):
        lines = (run.paths.member_dir(m) / L.MEMBER_TRAJECTORY).read_text().splitlines()
        rows[m] = [json.loads(x) for x in lines]
        assert [r["generation"] for r in rows[m]] == [0, 1, 2]
        # generation 0 runs through the ramps; epochs continue across generations
        assert [r["epochs"] for r in rows[m]] == [FIRST, FIRST + 2, FIRST + 4]
        assert all(r["value"] is not None for r in rows[m])
        assert rows[m][0]["hparams"] == rc.options["tune"].initial_configs()[m]  # seeded draws
        assert (run.paths.member_dir(m) / L.LFADS_OUTPUT_DIR / L.FITLOG).is_file()
    # With two members and quantile 0.5, one member exploits the other at each
    # generation boundary; its next row names the donor and explored hyperparameters.
    exploits = [(m, r) for m in rows for r in rows[m] if r["exploited"]]
    assert exploits, rows
    m, r = exploits[0]
    donor = L.member_index(r["exploited"]["member"])
    assert donor != m
    g = r["generation"]
    donor_hp = rows[donor][g - 1]["hparams"]
    bounds = {"c_learning_rate_init": (1e-3, 2e-2), "c_keep_prob": (0.5, 1.0)}
    for name, v in r["hparams"].items():  # explored: a factor in [0.8, 1.2], clipped
        lo, hi = bounds[name]
        assert max(lo, 0.8 * donor_hp[name]) - 1e-12 <= v <= min(hi, 1.2 * donor_hp[name]) + 1e-12
    assert r["hparams"] != donor_hp
    # 7 steps per epoch, 2 epochs per generation: the step continues the donor's
    assert r["step"] == rows[donor][g - 1]["step"] + 14
    # ... but not the donor's random streams (batches, dropout and CD masks)
    log = (run.paths.member_dir(m) / L.LOG_FILE).read_text()
    assert f"Random streams reseeded with {exploit_seed(0, m, g)}." in log

    best = json.loads((tune_dir / L.TUNE_BEST_FILE).read_text())
    tuned = rc.find_runs("single_dataset001", 1, tuned=True)
    assert tuned.path == tune_dir / L.TUNE_BEST_DIR and tuned.param_hash == run.param_hash
    params = tuned.load_model_trained_params()
    assert list(params.dataset_names) == ["dataset001"]
    assert (tuned.path_lfads_input / "lfads_dataset001.h5").resolve() == (
        run.path_common_data / "lfads_dataset001.h5"
    ).resolve()  # the run's own input files, linked
    rates = tuned.load_posterior_means()["dataset001"].rates
    assert rates.shape == (80, 50, 12) and np.isfinite(rates).all()
    assert tuned.load_fit_log().epochs[-1] == FIRST + 3
    assert tuned.export(tmp_path / "tuned.h5").is_file()
    assert not (run.path_lfads_output / L.FITLOG).exists()  # the base run stays untrained
    for kind, flags, png in (
        ("pbt", (), "pbt.png"),
        ("fitlog", ("--tuned",), "training_curves.png"),
    ):
        fig = _cli("plot", kind, cfg, "single_dataset001", 1, "-o", tmp_path / "fig", *flags)
        assert fig.returncode == 0, fig.stderr[-2000:]
        assert (tmp_path / "fig" / png).stat().st_size > 1000
    assert best["member"] in ("member_000", "member_001")

    st = _cli("status", cfg, "--json")
    assert st.returncode == 0, st.stderr
    info = json.loads(st.stdout)["tune"][0]
    assert info["state"] == "done" and info["generation"] == 2 and info["live_members"] == 0
    assert info["best_member"] == best["member"]

    again = _cli("tune", cfg, "--num-cpus", "2")
    assert again.returncode != 0 and "pass --resume" in again.stderr
    assert again.stderr.count("error:") == 1
    resumed = _cli("tune", cfg, "--num-cpus", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = [
        json.loads(x)
        for x in (run.paths.member_dir(0) / L.MEMBER_TRAJECTORY).read_text().splitlines()
    ]
    assert after == rows[0]  # a finished search resumes to nothing new


def test_ray_missing_names_the_extra(tmp_path, monkeypatch):
    rc = load(make_config(tmp_path, n_params=1, run_specs=("all",), extra=SECTION))
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match="ray"):
        rc.tune()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "flag, address",
    [
        ("--address", "127.0.0.1:1"),
        ("--address", "ray://127.0.0.1:1"),
        ("--ray-address", "127.0.0.1:1"),
    ],
)
def test_unreachable_address_is_one_error(tmp_path, flag, address):
    """Nothing listens on port 1: one error within seconds (Ray alone retries for
    minutes). ('auto' is not tested: it joins any Ray running on this machine.)"""
    cfg = make_config(tmp_path, n_params=1, run_specs=("all",), extra=SECTION)
    t0 = time.monotonic()
    res = _cli("tune", cfg, flag, address, timeout=200)
    assert time.monotonic() - t0 < 60
    assert res.returncode != 0
    assert res.stderr.count("error:") == 1
    assert f"cannot start or reach Ray at '{address}': nothing answers on 127.0.0.1:1" in res.stderr
    run = load(cfg).run("all", 1)
    # nothing started: only the search's lock file exists
    assert [p.name for p in run.paths.tune_dir.iterdir()] == [L.TUNE_LOCK_FILE]
    assert not run.path_lfads_input.exists()


def test_no_tune_section(tmp_path):
    rc = load(make_config(tmp_path, n_params=1, run_specs=("all",)))
    with pytest.raises(LfadsRunsError, match="no 'tune:' section"):
        rc.tune()


def _tune_process(cfg, **popen) -> subprocess.Popen:
    """``lfads-runs tune CFG`` running in the background, in its own process group
    (the driver and the local Ray it starts go together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lfads_runs", "tune", str(cfg), "--num-cpus", "2"],
        stdout=subprocess.DEVNULL,
        env=_env(),
        start_new_session=True,
        **popen,
    )


def _rows(run, m):
    path = run.paths.member_dir(m) / L.MEMBER_TRAJECTORY
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_resume_after_sigkill_of_the_driver(tmp_path):
    """kill -9 of the driver (and the local Ray it started), then --resume, finishes the search."""
    section = SECTION.replace("generations: 3", "generations: 5")
    cfg = _config(tmp_path, section)
    run = load(cfg).run("single_dataset001", 1)
    proc = _tune_process(cfg, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while min(len(_rows(run, 0)), len(_rows(run, 1))) < 2:
            assert proc.poll() is None, "the search ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # a second driver on the same search is refused while the first runs
        busy = _cli("tune", cfg, "--num-cpus", "1", "--resume")
        assert busy.returncode != 0 and busy.stderr.count("error:") == 1
        assert "another lfads-runs tune is running" in busy.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {m: _rows(run, m) for m in (0, 1)}
    assert json.loads((run.paths.tune_dir / L.TUNE_STATE_FILE).read_text())["state"] == "running"

    res = _cli("tune", cfg, "--num-cpus", "2", "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming" in res.stdout
    for m in (0, 1):
        rows = _rows(run, m)
        assert [r["generation"] for r in rows] == [0, 1, 2, 3, 4]
        assert [r["epochs"] for r in rows] == [FIRST + 2 * g for g in range(5)]
        assert rows[0] == before[m][0]  # completed generations are kept, not retrained
    st = json.loads((run.paths.tune_dir / L.TUNE_STATE_FILE).read_text())
    assert st["state"] == "done"
    assert run.tuned().load_fit_log().epochs[-1] == FIRST + 7


def test_resume_lets_a_member_behind_catch_up(tmp_path):
    """A member one generation behind (as a kill can leave it) trains that generation
    before the search goes on, so every member has every generation."""
    import shutil

    from lfads_runs.tuning.member import CHECKPOINT_META

    cfg = _config(tmp_path)
    run = load(cfg).run("single_dataset001", 1)
    assert _cli("tune", cfg, "--num-cpus", "2").returncode == 0
    tune_dir = run.paths.tune_dir
    # Put member_001 back to the end of generation 1, from a Ray checkpoint of that
    # generation (Ray drops an exploited member's own ones: any member's will do).
    ckpts = sorted((tune_dir / L.TUNE_RAY_DIR).rglob(CHECKPOINT_META))
    src = next(p for p in ckpts if json.loads(p.read_text())["generation"] == 1)
    out = run.paths.member_dir(1) / L.LFADS_OUTPUT_DIR
    shutil.rmtree(out)
    shutil.copytree(src.parent / L.LFADS_OUTPUT_DIR, out)
    rows = _rows(run, 1)
    traj = run.paths.member_dir(1) / L.MEMBER_TRAJECTORY
    traj.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (run.paths.member_dir(1) / L.MEMBER_STATE).unlink()
    state = json.loads((tune_dir / L.TUNE_STATE_FILE).read_text())
    (tune_dir / L.TUNE_STATE_FILE).write_text(json.dumps({**state, "state": "running"}))

    res = _cli("tune", cfg, "--num-cpus", "2", "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    again = _rows(run, 1)
    assert [r["generation"] for r in again] == [0, 1, 2]
    assert again[:2] == rows[:2] and again[2]["epochs"] == FIRST + 4
    assert again[2]["step"] == 7 * (FIRST + 4)
    assert again[2]["hparams"] == rows[1]["hparams"]  # the member's own, not explored
    assert _rows(run, 0) == _rows(run, 0)[:3] and len(_rows(run, 0)) == 3
    assert json.loads((tune_dir / L.TUNE_STATE_FILE).read_text())["state"] == "done"


def test_burn_in_delays_the_first_exploit_also_after_a_resume(tmp_path):
    """burn_in_generations: 2 keeps both members on their own lineage through generation
    2; with quantile 0.5 one of them copies the other right after it. A search resumed
    after generation 1 still exploits after generation 2 (Ray counts its reports afresh)."""
    import shutil

    from lfads_runs.tuning.member import CHECKPOINT_META

    section = SECTION.replace("generations: 3", "generations: 4\n  burn_in_generations: 2")
    cfg = _config(tmp_path, section)
    run = load(cfg).run("single_dataset001", 1)
    res = _cli("tune", cfg, "--num-cpus", "2")
    assert res.returncode == 0, res.stderr[-3000:]

    def exploited_generations():
        return sorted(r["generation"] for m in (0, 1) for r in _rows(run, m) if r["exploited"])

    assert exploited_generations() == [3]
    # Back to the end of generation 1: each member's own checkpoint of it (no exploit
    # before it, so Ray kept them), its trajectory up to there, a search still running.
    tune_dir = run.paths.tune_dir
    metas = [
        (p, json.loads(p.read_text())) for p in (tune_dir / L.TUNE_RAY_DIR).rglob(CHECKPOINT_META)
    ]
    for m in (0, 1):
        src = next(p for p, meta in metas if meta == {"member": L.member_name(m), "generation": 1})
        out = run.paths.member_dir(m) / L.LFADS_OUTPUT_DIR
        shutil.rmtree(out)
        shutil.copytree(src.parent / L.LFADS_OUTPUT_DIR, out)
        traj = run.paths.member_dir(m) / L.MEMBER_TRAJECTORY
        traj.write_text("".join(json.dumps(r) + "\n" for r in _rows(run, m)[:2]))
        (run.paths.member_dir(m) / L.MEMBER_STATE).unlink()
    state = json.loads((tune_dir / L.TUNE_STATE_FILE).read_text())
    (tune_dir / L.TUNE_STATE_FILE).write_text(json.dumps({**state, "state": "running"}))

    res = _cli("tune", cfg, "--num-cpus", "2", "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    for m in (0, 1):
        assert [r["generation"] for r in _rows(run, m)] == [0, 1, 2, 3]
    assert exploited_generations() == [3]


def test_metric_the_run_cannot_compute_is_one_error(tmp_path):
    section = SECTION.replace("quantile: 0.5", "quantile: 0.5\n  metric: co_bps")
    cfg = make_config(tmp_path, n_params=1, run_specs=("single_dataset001",), extra=section)
    res = _cli("tune", cfg, "--num-cpus", "1")
    assert res.returncode != 0 and res.stderr.count("error:") == 1
    assert "tune.metric 'valid_cobps' needs held-out neurons" in res.stderr
    run = load(cfg).run("single_dataset001", 1)
    assert not (run.paths.tune_dir / L.TUNE_STATE_FILE).exists()
    assert not any(p.name.startswith(L.MEMBER_PREFIX) for p in run.paths.tune_dir.iterdir())


def test_resume_with_a_changed_section_is_one_error(tmp_path):
    cfg = make_config(tmp_path, n_params=1, run_specs=("single_dataset001",), extra=SECTION)
    run = load(cfg).run("single_dataset001", 1)
    state = run.paths.tune_dir / L.TUNE_STATE_FILE
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"state": "interrupted", "spec": {"population": 3}}))
    res = _cli("tune", cfg, "--num-cpus", "1", "--resume")
    assert res.returncode != 0 and res.stderr.count("error:") == 1
    assert "the 'tune:' section changed since this search began" in res.stderr
    assert json.loads(state.read_text())["state"] == "interrupted"  # left as it was
    assert not run.path_lfads_input.exists()


def _member_state(run, m):
    try:
        return json.loads((run.paths.member_dir(m) / L.MEMBER_STATE).read_text())
    except (OSError, ValueError):
        return {}


def test_sigkill_of_a_worker_mid_generation(tmp_path):
    """kill -9 of one member's Ray worker (not the driver) during a generation: Ray
    restarts that member from its last reported checkpoint and the search completes."""
    section = SECTION.replace("generations: 3", "generations: 4")
    cfg = _config(tmp_path, section)
    run = load(cfg).run("single_dataset001", 1)
    proc = _tune_process(cfg, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 300
        while killed is None:
            assert proc.poll() is None, "the search ended before a worker could be killed"
            assert time.monotonic() < deadline
            st = _member_state(run, 1)
            if st.get("state") == "training" and st.get("generation", 0) >= 1:
                os.kill(int(st["pid"]), signal.SIGKILL)  # the worker that trains member_001
                killed = st
            time.sleep(0.02)
        _, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert _member_state(run, 1)["pid"] != killed["pid"]  # a new worker finished it
    for m in (0, 1):
        rows = _rows(run, m)
        assert [r["generation"] for r in rows] == [0, 1, 2, 3]
        assert [r["epochs"] for r in rows] == [FIRST + 2 * g for g in range(4)]
    st = json.loads((run.paths.tune_dir / L.TUNE_STATE_FILE).read_text())
    assert st["state"] == "done"
    assert run.tuned().load_fit_log().epochs[-1] == FIRST + 5


def test_members_request_their_share_of_the_gpus(tmp_path, monkeypatch):
    """The resources Ray reserves per member, on a local Ray told it has 2 GPUs
    (there are none here, so nothing trains: only the request is checked)."""
    import attrs
    import ray
    from ray import tune

    from lfads_runs.tuning.driver import _setup, member_resources, member_trainable

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    rc = load(_config(tmp_path))
    run = rc.run("single_dataset001", 1)
    spec = rc.options["tune"]  # population 2
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        eight = attrs.evolve(spec, population=8)
        assert member_resources(eight, ray) == {"cpu": 1.0, "gpu": 0.25}
        assert member_resources(spec, ray) == {"cpu": 1.0, "gpu": 1.0}  # one each at most
        three = attrs.evolve(spec, population=3)
        assert member_resources(three, ray)["gpu"] == pytest.approx(2 / 3)
        fixed = attrs.evolve(spec, gpus_per_member=0.5, cpus_per_member=2.0)
        assert member_resources(fixed, ray) == {"cpu": 2.0, "gpu": 0.5}
        setup, gpus = _setup(run, eight, ray)
        assert gpus == 0.25 and setup["device"] == "cuda"
        trainable = member_trainable(tune, setup, member_resources(eight, ray))
        assert trainable._resources.required_resources == {"CPU": 1.0, "GPU": 0.25}
    finally:
        ray.shutdown()
    ray.init(address="local", num_cpus=1, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        assert member_resources(spec, ray) == {"cpu": 1.0, "gpu": 0.0}
        assert _setup(run, spec, ray)[0]["device"] == "cpu"
    finally:
        ray.shutdown()


def test_the_same_seed_runs_the_same_search(tmp_path):
    """Initial draws, donors (Ray's choice among the top half) and explored values all
    come from the search's seed: two searches of the same section agree row for row."""
    section = SECTION.replace("population: 2", "population: 4").replace(
        "generations: 3", "generations: 2"
    )
    trajectories = []
    for name in ("a", "b"):
        cfg = _config(tmp_path / name, section)
        res = _cli("tune", cfg, "--num-cpus", "2")
        assert res.returncode == 0, res.stderr[-3000:]
        run = load(cfg).run("single_dataset001", 1)
        keys = ("generation", "hparams", "exploited", "value", "step")
        trajectories.append([[{k: r[k] for k in keys} for r in _rows(run, m)] for m in range(4)])
    assert any(r["exploited"] for member in trajectories[0] for r in member)
    assert trajectories[0] == trajectories[1]
