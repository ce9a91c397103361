"""The end-to-end demo behind ``lfads-runs demo`` and ``make demo``: stitched Lorenz on a CPU.

What it does, in the order of the MATLAB tool's ``drive_script_stitching.m``
(run-manager.md §10), with the same public API a user would call:

1. generate three synthetic Lorenz datasets (different neuron counts, the same
   65 conditions) with :func:`lfads_runs.data.synthetic.lorenz` and write them
   as HDF5 files under ``<out>/data``;
2. write ``<out>/lorenz_stitching.yaml`` (the collection, like
   ``configs/lorenz_stitching.yaml`` but reading those files) and load it;
3. ``rc.prepare()``: LFADS input files with stitching alignment matrices;
4. ``rc.train()``: train the stitched run ``all`` on the CPU (local executor:
   training, posterior means, ``model_params``, done marker);
5. load the results: ``run.load_posterior_means()``,
   ``rc.find_runs('all', 1).load_model_trained_params()``, ``run.load_fit_log()``;
6. score each dataset: R² of a linear map from the inferred factors to the true
   Lorenz latents, fitted on the training trials and evaluated on the held-out
   validation trials;
7. write the figures and ``<out>/summary.json`` and print a summary.

``--quick`` runs the same steps on a much smaller problem (for tests, < 1 minute).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ._atomic import atomic_write_json, atomic_write_text
from ._jsonable import jsonable
from ._optional import require
from ._procs import usable_cores
from .exceptions import ConfigError, DataError, RunFailedError
from .io.h5arrays import read_arrays

__all__ = [
    "DemoSettings",
    "DemoResult",
    "FULL",
    "QUICK",
    "default_threads",
    "heldout_r2",
    "run_demo",
]

#: Marks a folder as made by the demo, so that a rerun may clear it (and only it).
MARKER = ".lfads_runs_demo"
CONFIG_NAME = "lorenz_stitching.yaml"
SUMMARY_NAME = "summary.json"
_OWN_ENTRIES = ("data", "runs", "figures", CONFIG_NAME, SUMMARY_NAME)


@attrs.frozen
class DemoSettings:
    """Data sizes and run parameters of one demo variant.

    ``params`` are RunParams properties (MATLAB or Python names) as they appear in
    the YAML file the demo writes.
    """

    label: str
    n_conditions: int
    trials_per_condition: tuple[int, ...]
    n_neurons: tuple[int, ...]
    duration_ms: int
    bin_ms: int
    mean_rate_hz: float
    params: Mapping[str, Any]
    figure_conditions: int = 10


#: The demo: the documented dataset sizes (65 conditions; 1820, 1885 and 1365 trials; 35, 26
#: and 35 neurons), 1 s trials, and the drive script's model (factors 8, generator 64, IC
#: encoder 64, ic_dim 64, no controller). Chosen to reach R² >= 0.9 with margin in a few
#: minutes of CPU training at most (R² 0.93-0.96 over seeds 0-2, 70 epochs in 72 s on one core): 20 ms bins (T = 50;
#: the MATLAB demo used 2 ms, T = 500), 10 Hz base rate (5 Hz there), batch 50 (150 there:
#: on a CPU a step costs about in proportion to the batch, and three times more updates per
#: epoch learn faster), short KL/L2 ramps, 70 epochs, push-mean posterior (deterministic and
#: one pass; sample-and-average would cost one pass per sample).
FULL = DemoSettings(
    label="full",
    n_conditions=65,
    trials_per_condition=(28, 29, 21),
    n_neurons=(35, 26, 35),
    duration_ms=1000,
    bin_ms=20,
    mean_rate_hz=10.0,
    params={
        "spikeBinMs": 20,
        "useAlignmentMatrix": True,
        "c_factors_dim": 8,
        "c_gen_dim": 64,
        "c_ic_enc_dim": 64,
        "c_ic_dim": 64,
        "c_co_dim": 0,
        "c_batch_size": 50,
        "c_learning_rate_stop": 1e-3,
        # Short KL/L2 ramps (x3 datasets = 300 steps, ~4 epochs): the lowest-validation-
        # error checkpoint is only kept once both weights reach 1.
        "c_kl_increase_steps": 100,
        "c_l2_increase_steps": 100,
        "c_max_epochs": 70,
        # A safety cap for slow or busy machines (70 epochs took 72 s on one core).
        "c_max_train_seconds": 210,
        "posterior_mean_kind": "posterior_push_mean",
        "num_samples_posterior": 50,
    },
)

#: A small problem with the same steps, for tests: 20 conditions, 0.5 s trials (T = 50).
QUICK = DemoSettings(
    label="quick",
    n_conditions=20,
    trials_per_condition=(10, 10, 10),
    n_neurons=(30, 24, 28),
    duration_ms=500,
    bin_ms=10,
    mean_rate_hz=20.0,
    params={
        "spikeBinMs": 10,
        "useAlignmentMatrix": True,
        "c_factors_dim": 6,
        "c_gen_dim": 32,
        "c_ic_enc_dim": 32,
        "c_ic_dim": 32,
        "c_co_dim": 0,
        "c_batch_size": 20,
        "c_kl_increase_steps": 20,
        "c_l2_increase_steps": 20,
        "c_max_epochs": 60,  # 4.6 s on one core
        "c_max_train_seconds": 30,
        "posterior_mean_kind": "posterior_push_mean",
        "num_samples_posterior": 20,
    },
    figure_conditions=6,
)


@attrs.frozen
class DemoResult:
    """What :func:`run_demo` produced (also written to ``summary.json``)."""

    out_dir: Path
    config: Path
    r2: dict[str, float]
    timings: dict[str, float]
    paths: dict[str, Any]
    summary: dict[str, Any]
    model_params_table: str


# ------------------------------------------------------------------------------ analysis
def heldout_r2(
    factors: np.ndarray,
    latents: np.ndarray,
    train_trials: np.ndarray,
    test_trials: np.ndarray,
) -> float:
    """R² of a linear map (with intercept) from factors to latents on held-out trials.

    The map is fitted by least squares on every time bin of ``train_trials`` and
    evaluated on ``test_trials``: R² = 1 − SS_res / SS_tot per latent dimension
    (SS_tot about the test trials' mean), averaged over the dimensions.

    Parameters
    ----------
    factors
        ``[trials, T, factors]``.
    latents
        ``[trials, T, latent_dim]`` (the true Lorenz state of each trial).
    train_trials, test_trials
        0-based trial indices (boolean masks work too).

    Raises
    ------
    DataError
        Shapes disagree or a set of trials is empty.
    """
    factors = np.asarray(factors, dtype=np.float64)
    latents = np.asarray(latents, dtype=np.float64)
    if factors.ndim != 3 or latents.ndim != 3 or factors.shape[:2] != latents.shape[:2]:
        raise DataError(
            f"factors {factors.shape} and latents {latents.shape} must be [trials, T, dim] "
            "with the same trials and time bins"
        )
    x_tr = factors[train_trials].reshape(-1, factors.shape[2])
    y_tr = latents[train_trials].reshape(-1, latents.shape[2])
    x_te = factors[test_trials].reshape(-1, factors.shape[2])
    y_te = latents[test_trials].reshape(-1, latents.shape[2])
    if x_tr.shape[0] == 0 or x_te.shape[0] == 0:
        raise DataError("heldout_r2 needs training and test trials")
    ones_tr = np.ones((x_tr.shape[0], 1))
    coef, *_ = np.linalg.lstsq(np.hstack([x_tr, ones_tr]), y_tr, rcond=None)
    pred = np.hstack([x_te, np.ones((x_te.shape[0], 1))]) @ coef
    ss_res = ((y_te - pred) ** 2).sum(axis=0)
    ss_tot = ((y_te - y_te.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - ss_res / ss_tot))


# ------------------------------------------------------------------------------ helpers
class _Stopwatch:
    def __init__(self, echo: Callable[[str], None]):
        self.timings: dict[str, float] = {}
        self.echo = echo
        self._t0 = time.perf_counter()

    def stage(self, name: str, message: str):
        watch = self

        class _Stage:
            def __enter__(self):
                watch.echo(f"[demo] {message}")
                self.t = time.perf_counter()
                return self

            def __exit__(self, *exc):
                watch.timings[name] = round(time.perf_counter() - self.t, 2)
                return False

        return _Stage()

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self._t0, 2)


def _prepare_out_dir(out: Path) -> None:
    """Create ``out``; clear a previous demo's files there, refuse a foreign non-empty folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ConfigError(
                f"--out {out} is not empty and was not made by the demo; choose a new or empty "
                "folder (the demo clears only folders it made itself)"
            )
        for name in _OWN_ENTRIES:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, "made by `lfads-runs demo`; rerunning the demo clears it\n")


def _config_text(settings: DemoSettings, names: Sequence[str], seed: int, threads: int) -> str:
    import yaml

    doc = {
        "name": "lorenz_stitching",
        "root": "./runs",
        "comment": f"lfads-runs demo ({settings.label}): stitched LFADS on synthetic Lorenz data",
        "datasets": {
            "path": "./data",
            "items": [{"name": n, "file": f"{n}.h5"} for n in names],
        },
        "run_specs": [{"name": "all", "datasets": "all"}],
        "params": [dict(settings.params)],
        "train": {"device": "cpu", "seed": int(seed), "threads": int(threads)},
    }
    header = (
        "# Written by `lfads-runs demo`: the collection it trained (see configs/lorenz_stitching.yaml\n"
        "# for the same collection with data generated by a loader function).\n"
        "# Train it again with: lfads-runs train lorenz_stitching.yaml\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


class _Progress(threading.Thread):
    """Prints the training progress from the run's state file every few seconds."""

    def __init__(self, state_file: Path, echo: Callable[[str], None], every: float = 10.0):
        super().__init__(daemon=True)
        self.state_file, self.echo, self.every = state_file, echo, every
        self.stop = threading.Event()

    def run(self) -> None:
        from .runstate import read_state

        last = None
        t0 = time.perf_counter()
        while not self.stop.wait(self.every):
            try:
                rec = read_state(self.state_file) or {}
            except Exception:  # a state file being replaced: try again next time
                continue
            prog = rec.get("progress") or {}
            key = (rec.get("stage"), prog.get("epoch"))
            if key != last and rec.get("stage"):
                last = key
                msg = f"[demo]   {time.perf_counter() - t0:5.0f} s  stage {rec.get('stage')}"
                if prog.get("epoch") is not None and rec.get("stage") == "train":
                    msg += (
                        f", epoch {prog['epoch']}, valid cost {prog.get('total_valid')}, "
                        f"lr {prog.get('learning_rate')}"
                    )
                self.echo(msg)


def _stage_seconds(log_file: Path) -> dict[str, float]:
    """Seconds per pipeline stage from the ``==== lfads_runs: stage X (time)`` lines (1 s)."""
    import datetime as dt
    import re

    rx = re.compile(r"^==== lfads_runs: (?:stage (\w+)|done after [\d.]+ s) \((\S+)\)")
    marks: list[tuple[str, float]] = []
    if not log_file.is_file():
        return {}
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        m = rx.match(line)
        if m:
            t = dt.datetime.strptime(m.group(2), "%Y-%m-%dT%H:%M:%S%z").timestamp()
            marks.append((m.group(1) or "end", t))
    out = {}
    for (name, t), (_, t_next) in zip(marks, marks[1:], strict=False):
        if name != "end":
            out[name] = round(t_next - t, 1)
    return out


def default_threads() -> int:
    """Torch threads for the demo's training: every core this process may use.

    While another busy process shares the cores the engine's thread governor
    (:mod:`lfads_runs.engine.threads`) uses fewer, so all cores are never slower than one.
    """
    return max(1, usable_cores() or 1)


# ------------------------------------------------------------------------------ the demo
def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    quick: bool = False,
    seed: int = 0,
    settings: DemoSettings | None = None,
    echo: Callable[[str], None] | None = None,
    figures: bool = True,
    threads: int | None = None,
) -> DemoResult:
    """Generate, prepare, train, load and score the stitched Lorenz demo (torch extra).

    Parameters
    ----------
    out_dir
        Output folder (created; a previous demo's files there are replaced; a
        non-empty folder not made by the demo is refused).
    quick
        The small problem :data:`QUICK` instead of :data:`FULL`.
    seed
        Seeds the data and the training: the same seed gives the same data, and
        the same training on the same machine and thread count.
    settings
        Replaces :data:`FULL` / :data:`QUICK`.
    echo
        Progress and summary lines (default: print to stdout).
    figures
        Write the PNG figures (needs matplotlib).
    threads
        Torch threads of the training process (default: see :func:`default_threads`).

    Returns
    -------
    DemoResult

    Raises
    ------
    MissingDependencyError
        torch (or, with figures, matplotlib) is not installed.
    RunFailedError
        Training failed (the message holds the end of the run's log).
    """
    from ._version import __version__
    from .collection import RunCollection
    from .data.synthetic import lorenz, write_lorenz_datasets

    # Fail before any work when an extra is missing (find_spec: no slow import here).
    if importlib.util.find_spec("torch") is None:
        require("torch", "the demo (training)")
    if figures and importlib.util.find_spec("matplotlib") is None:
        require("matplotlib", "the demo's figures (or pass figures=False / --no-figures)")
    say = echo or (lambda s: print(s, flush=True))
    s = settings or (QUICK if quick else FULL)
    out = Path(out_dir).resolve()
    _prepare_out_dir(out)
    clock = _Stopwatch(say)
    threads = int(threads) if threads else default_threads()

    with clock.stage("generate", f"generating 3 Lorenz datasets ({s.label}) in {out / 'data'}"):
        data = lorenz(
            n_datasets=len(s.n_neurons),
            n_conditions=s.n_conditions,
            trials_per_condition=s.trials_per_condition,
            n_neurons=s.n_neurons,
            duration_ms=s.duration_ms,
            bin_ms=s.bin_ms,
            mean_rate_hz=s.mean_rate_hz,
            seed=seed,
        )
        data_files = write_lorenz_datasets(data, out / "data")
        for d in data.datasets:
            say(
                f"[demo]   {d.name}: {d.counts.shape[0]} trials x {d.counts.shape[1]} bins "
                f"of {d.bin_ms:g} ms x {d.counts.shape[2]} neurons"
            )

    with clock.stage("config", f"writing {out / CONFIG_NAME}"):
        config = out / CONFIG_NAME
        atomic_write_text(config, _config_text(s, list(data_files), seed, threads))
        rc = RunCollection.from_yaml(config)
        run = rc.find_runs("all", 1)
        say(f"[demo]   {run!r}")

    with clock.stage("prepare", "preparing LFADS inputs with alignment matrices"):
        prepared = run.prepare()
        rc.write_summary()
        alignment = prepared.alignment if prepared is not None else None

    with clock.stage(
        "train", f"training {run.name} on the CPU ({threads} thread{'s' if threads > 1 else ''})"
    ):
        progress = _Progress(run.paths.state_file, say)
        progress.start()
        try:
            result = rc.train([run], seed=seed, device="cpu", quiet=True)
        finally:
            progress.stop.set()
        if not result.ok:
            tail = "\n".join(result.outcomes[0].log_tail) if result.outcomes else ""
            raise RunFailedError(f"demo training failed: {result.summary()}\n{tail}")
    from .runstate import read_state

    record = read_state(run.paths.state_file) or {}
    train_info = record.get("train") or {}
    stage_s = _stage_seconds(run.file_log)

    with clock.stage("load", "loading posterior means, fit log and model_params"):
        pms = run.load_posterior_means()
        fit_log = run.load_fit_log()
        trained = rc.find_runs("all", 1).load_model_trained_params()

    with clock.stage("r2", "scoring: linear map factors -> true latents, held-out trials"):
        r2 = {}
        for name, pm in pms.items():
            latents = read_arrays(data_files[name], ["latents"])["latents"]
            r2[name] = round(heldout_r2(pm.factors, latents, pm.train_inds - 1,
                                        pm.valid_inds - 1), 4)  # fmt: skip

    fig_paths: dict[str, list[str]] = {}
    if figures:
        from .actions.figures import save_run_figures

        with clock.stage("figures", f"writing figures to {out / 'figures'}"):
            written = save_run_figures(
                run, out / "figures", alignment=alignment, pca_conditions=s.figure_conditions
            )
            fig_paths = {k: [str(p) for p in v] for k, v in written.items()}

    timings = dict(clock.timings)
    timings.update({f"train.{k}": v for k, v in stage_s.items()})
    timings["total"] = clock.total
    paths = {
        "out_dir": str(out),
        "config": str(config),
        "data": {k: str(v) for k, v in data_files.items()},
        "collection": str(rc.path),
        "run": str(run.path),
        "lfads_input": str(run.path_lfads_input),
        "lfads_output": str(run.path_lfads_output),
        "model_params": str(run.file_model_params),
        "fitlog": str(run.file_fitlog),
        "log": str(run.file_log),
        "figures": fig_paths,
        "summary": str(out / SUMMARY_NAME),
    }
    summary = {
        "demo": s.label,
        "seed": seed,
        "r2": r2,
        "r2_method": (
            "linear map (least squares with intercept) from the inferred factors to the true "
            "3-D Lorenz latents, fitted on each dataset's training trials and evaluated on its "
            "held-out validation trials (every 5th trial); mean of the per-dimension R^2"
        ),
        "posterior_kind": run.params.posterior_mean_kind,
        "timings_s": timings,
        "training": {
            "epochs": train_info.get("epochs"),
            "steps": train_info.get("steps"),
            "stop_reason": train_info.get("stop_reason"),
            "lowest_valid_cost": train_info.get("lowest_valid_cost"),
            "seconds": train_info.get("seconds"),
            "lve_step": fit_log.step_lve,
            "threads": threads,
        },
        "data": {
            d.name: {
                "trials": int(d.counts.shape[0]),
                "neurons": int(d.counts.shape[2]),
                "time_bins": int(d.counts.shape[1]),
                "bin_ms": d.bin_ms,
            }
            for d in data.datasets
        },  # fmt: skip
        "params": {k: v for k, v in run.params.differences().items()},
        "param_hash": run.param_hash,
        "data_hash": run.data_hash,
        "paths": paths,
        "lfads_runs_version": __version__,
        "python": sys.version.split()[0],
    }
    atomic_write_json(out / SUMMARY_NAME, jsonable(summary))
    table = repr(trained)
    _print_summary(say, summary, table)
    return DemoResult(
        out_dir=out,
        config=config,
        r2=r2,
        timings=timings,
        paths=paths,
        summary=summary,
        model_params_table=table,
    )


def _print_summary(say: Callable[[str], None], summary: dict[str, Any], table: str) -> None:
    tr = summary["training"]
    say("")
    say("=" * 78)
    say(f"lfads-runs demo ({summary['demo']}): stitched LFADS on 3 synthetic Lorenz datasets")
    say("=" * 78)
    say(
        f"training: {tr['epochs']} epochs, {tr['steps']} steps, {tr['seconds']} s "
        f"({tr['stop_reason']}), lowest-validation-error step {tr['lve_step']}"
    )
    say(f"posterior means: {summary['posterior_kind']}")
    say("R^2 of a linear map factors -> true Lorenz latents (fit on training trials,")
    say("evaluated on held-out validation trials):")
    for name, value in summary["r2"].items():
        say(f"  {name}: {value:.3f}")
    say("")
    say("model parameters (rc.find_runs('all', 1).load_model_trained_params()):")
    for line in table.splitlines():
        say(f"  {line}")
    say("")
    say("timings (s): " + ", ".join(f"{k} {v:g}" for k, v in summary["timings_s"].items()))
    figs = [p for group in summary["paths"]["figures"].values() for p in group]
    if figs:
        say(f"figures ({len(figs)}) in {Path(figs[0]).parent}:")
        for p in figs:
            say(f"  {Path(p).name}")
    say(f"summary: {summary['paths']['summary']}")
    say(f"config:  {summary['paths']['config']}")
