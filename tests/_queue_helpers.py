"""Tiny run collections for the queue, pipeline and CLI tests (each run trains in seconds)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np

from lfads_runs import RunCollection
from lfads_runs.data.synthetic import lorenz, write_lorenz_datasets

ROOT = Path(__file__).resolve().parents[1]

#: A small model: 2-3 s per run on one CPU thread, python and torch start-up included.
TINY = (
    "c_factors_dim: {f}, c_co_dim: 0, c_gen_dim: 16, c_ic_enc_dim: 16, c_ic_dim: 8, "
    "c_batch_size: 10, c_max_epochs: {epochs}, num_samples_posterior: 4, "
    "c_learning_rate_n_to_compare: 100"
)


def make_config(
    tmp: Path,
    *,
    n_params: int = 2,
    epochs: int = 3,
    run_specs: tuple[str, ...] = ("all", "single_dataset001"),
    extra: str = "",
) -> Path:
    """Write two tiny Lorenz datasets and a YAML with ``len(run_specs) x n_params`` runs."""
    data = tmp / "data"
    if not data.is_dir():
        d = lorenz(
            n_datasets=2,
            n_conditions=4,
            trials_per_condition=20,
            n_neurons=[12, 10],
            duration_ms=100,
            seed=1,
        )
        write_lorenz_datasets(d, data)
    specs = {
        "all": "[dataset001, dataset002]",
        "single_dataset001": "[dataset001]",
        "single_dataset002": "[dataset002]",
    }
    params = "\n".join(f"  - {{{TINY.format(f=3 + i, epochs=epochs)}}}" for i in range(n_params))
    text = textwrap.dedent(
        """\
        name: tiny
        root: ./runs
        datasets:
          path: ./data
          items:
            - {name: dataset001, file: dataset001.h5}
            - {name: dataset002, file: dataset002.h5}
        run_specs:
        """
    )
    text += "".join(f"  - {{name: {s}, datasets: {specs[s]}}}\n" for s in run_specs)
    text += "params:\n" + params + "\n" + extra
    cfg = tmp / "config.yaml"
    cfg.write_text(text)
    return cfg


def load(cfg: Path) -> RunCollection:
    return RunCollection.from_yaml(cfg)


def _default_sigint() -> None:
    # A shell without job control starts `cmd &` with SIGINT ignored and children
    # inherit that, so a test run in the background would never see the queue answer
    # Ctrl-C. The queue is meant to behave as if started from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def queue_process(cfg: Path, *args: str, **kw) -> subprocess.Popen:
    """``lfads-runs train CONFIG args`` as a subprocess (stdout/stderr piped)."""
    if os.name == "posix":
        kw.setdefault("preexec_fn", _default_sigint)
    return subprocess.Popen(
        [sys.executable, "-m", "lfads_runs", "train", str(cfg), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(cfg.parent),
        **kw,
    )


def cli(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lfads_runs", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def state(run) -> dict:
    return json.loads(run.paths.state_file.read_text())


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def corrupt_input(run) -> None:
    """Replace the run's first input link by a private copy with a negative spike count."""
    link = run.paths.input_file(run.dataset_names[0])
    target = link.resolve()
    data = target.read_bytes()
    link.unlink()
    link.write_bytes(data)
    with h5py.File(link, "r+") as f:
        a = f["train_data"][...]
        a = a.astype(np.int64)
        a[0, 0, 0] = -3
        del f["train_data"]
        f["train_data"] = a


def attempts(run) -> int:
    """How many attempts the run's lfads.out records."""
    text = run.paths.log_file.read_text() if run.paths.log_file.exists() else ""
    return sum(line.startswith("==== lfads_runs: train ") for line in text.splitlines())
