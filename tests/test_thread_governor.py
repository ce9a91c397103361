"""The thread governor: fewer torch threads while other processes keep the cores busy."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lfads_runs.engine import threads as T
from lfads_runs.exceptions import ConfigError

LINUX_PROC = Path("/proc/stat").is_file() and Path("/proc/self/task").is_dir()


class FakeMachine:
    """Other processes' runnable threads as a test sets them, a clock the test moves."""

    def __init__(self, others: float = 0) -> None:
        self.others = others
        self.now = 0.0
        self.set_calls: list[int] = []
        self.threads = 4

    def sample(self) -> int:
        return self.others

    def clock(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.set_calls.append(n)
        self.threads = n

    def governor(self, **kw) -> T.ThreadGovernor:
        kw.setdefault("enabled", True)
        kw.setdefault("sample", self.sample)
        return T.ThreadGovernor(
            clock=self.clock,
            set_threads=self.set_threads,
            get_threads=lambda: self.threads,
            cores=4,
            **kw,
        )

    def steps(self, gov: T.ThreadGovernor, seconds: float, step: float = 0.1) -> int:
        for _ in range(round(seconds / step)):
            self.now += step
            gov.tick()
        return gov.threads


def test_quiet_machine_never_changes_the_count():
    m = FakeMachine(others=0)
    gov = m.governor()
    assert m.steps(gov, 30) == 4
    assert m.set_calls == [] and gov.changes == 0


def test_uses_the_cores_others_leave_and_returns_when_they_go():
    m = FakeMachine(others=3)
    gov = m.governor()
    # The first look, before any step, already sees three busy cores.
    assert gov.threads == 1 and m.set_calls == [1]
    m.others = 2
    assert m.steps(gov, 2) == 2
    m.others = 0
    assert m.steps(gov, 2) == 4
    assert m.set_calls == [1, 2, 4]


def test_hysteresis_keeps_the_count_on_a_load_near_an_edge():
    m = FakeMachine(others=0)
    gov = m.governor()
    m.others = 0.6  # 3.4 free cores: not clearly below 4
    assert m.steps(gov, 5) == 4
    m.others = 1.0
    assert m.steps(gov, 5) == 3
    m.others = 0.6  # 3.4 free: not clearly above 3 either
    assert m.steps(gov, 5) == 3


def test_never_above_the_starting_count_or_below_one():
    m = FakeMachine(others=0)
    m.threads = 2
    gov = m.governor()  # 4 cores, but the run was given 2 threads
    assert m.steps(gov, 5) == 2
    m.others = 50
    assert m.steps(gov, 5) == 1


def test_a_decision_needs_several_samples_over_the_interval():
    m = FakeMachine(others=0)
    gov = m.governor(interval=0.5)
    m.others = 4
    m.now += 0.01
    gov.tick()  # one sample is a moment, not a load
    assert gov.threads == 4
    assert m.steps(gov, 1.0) == 1


def test_ticks_faster_than_the_sample_spacing_do_not_read_proc():
    m = FakeMachine(others=0)
    reads = []
    gov = m.governor(interval=0.5, sample=lambda: reads.append(1) or 0)
    n0 = len(reads)
    m.steps(gov, 1.0, step=0.001)  # a thousand ticks in one second
    assert len(reads) - n0 <= 1.0 / (0.5 / (2 * T.ThreadGovernor.MIN_SAMPLES)) + 1


def test_restore_returns_to_the_starting_count():
    m = FakeMachine(others=3)
    gov = m.governor()
    assert m.threads == 1
    gov.restore()
    assert m.threads == 4


def test_disabled_by_the_environment_or_off_the_cpu(monkeypatch):
    m = FakeMachine(others=3)
    monkeypatch.setenv(T.ENV_VAR, "0")
    gov = m.governor(enabled=None)
    assert not gov.enabled and m.steps(gov, 5) == 4
    monkeypatch.setenv(T.ENV_VAR, "auto")
    assert m.governor(enabled=None).enabled
    assert not T.ThreadGovernor.for_device("cuda").enabled


def test_one_thread_or_no_proc_means_nothing_to_govern():
    m = FakeMachine(others=3)
    m.threads = 1
    assert not m.governor().enabled
    m.threads = 4
    assert not m.governor(sample=lambda: None).enabled


@pytest.mark.parametrize("value", ["maybe", "2", "-1"])
def test_a_bad_environment_value_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv(T.ENV_VAR, value)
    with pytest.raises(ConfigError, match=rf"{T.ENV_VAR}=.*expected auto, 1 or 0"):
        T.adaptive_threads_enabled()


def test_proc_parsing_on_a_fake_proc_tree(tmp_path):
    (tmp_path / "stat").write_text("cpu  1 2 3\nprocs_running 7\nprocs_blocked 0\n")
    for tid, comm, state in [(1, "python", "R"), (2, "odd ) name", "R"), (3, "omp", "S")]:
        d = tmp_path / "self" / "task" / str(tid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{tid} ({comm}) {state} 1 1 1\n")
    assert T.other_running_threads(tmp_path) == 5
    (tmp_path / "stat").write_text("cpu  1 2 3\n")
    assert T.other_running_threads(tmp_path) is None
    assert T.other_running_threads(tmp_path / "missing") is None


@pytest.mark.skipif(not LINUX_PROC, reason="reads /proc (Linux)")
def test_real_busy_processes_are_seen_and_lower_the_count():
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        seen = [T.other_running_threads() for _ in range(20)]
        assert min(seen) >= 2, seen
        calls: list[int] = []
        gov = T.ThreadGovernor(
            max_threads=2, cores=2, enabled=True, set_threads=calls.append, get_threads=lambda: 2
        )
        assert gov.threads == 1 and calls == [1]
    finally:
        for p in busy:
            p.kill()
            p.wait()


@pytest.mark.skipif(not LINUX_PROC, reason="reads /proc (Linux)")
def test_training_beside_busy_processes_logs_the_change_and_restores(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from test_engine_training import HPS, write_inputs

    from lfads_runs.engine import train
    from lfads_runs.hparams import Hyperparameters

    monkeypatch.setenv(T.ENV_VAR, "1")
    inputs = write_inputs(tmp_path / "in")
    lines: list[str] = []
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(len(T.os.sched_getaffinity(0)))
    ]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        time.sleep(0.3)
        train(
            inputs,
            tmp_path / "out",
            Hyperparameters(**HPS, max_epochs=1),
            seed=0,
            progress=False,
            log=lines.append,
        )
        assert any(line.startswith("Threads: 2 -> 1") for line in lines), lines
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        for p in busy:
            p.kill()
            p.wait()


def test_posterior_sampling_follows_the_governor_and_restores(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from test_engine_training import HPS, write_inputs

    from lfads_runs.engine._rng import NoiseSource
    from lfads_runs.engine.data import build_spec, load_datasets
    from lfads_runs.engine.model import LfadsModel
    from lfads_runs.engine.posterior import posterior_arrays
    from lfads_runs.hparams import Hyperparameters

    hps = Hyperparameters(**HPS)
    datasets = load_datasets(write_inputs(tmp_path / "in"), hps, stem="lfads", for_training=False)
    model = LfadsModel(build_spec(hps, datasets))
    model.initialize(torch.Generator().manual_seed(0))
    name, ds = next(iter(datasets.items()))

    monkeypatch.setenv(T.ENV_VAR, "1")
    monkeypatch.setattr(T, "other_running_threads", lambda: 99)  # a crowded machine
    seen: list[int] = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real_set(n)))
    before = torch.get_num_threads()
    real_set(2)
    try:
        out = posterior_arrays(
            model, ds.data("valid"), name, "posterior_sample_and_average",
            batch_size=16, step=0, generator=NoiseSource(0),
        )  # fmt: skip
        assert np.isfinite(out["output_dist_params"]).all()
        assert seen == [1, 2]  # one thread while crowded, then the run's count again
    finally:
        real_set(before)
