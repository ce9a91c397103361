"""Executors: where runs train (this machine, Slurm through submitit, Ray), one protocol.

:func:`train_runs` and :func:`sample_posteriors` are what ``rc.train()``,
``lfads-runs train`` and ``lfads-runs posterior`` call. Options come from the
arguments, else from the collection's YAML (``train:``, ``slurm:``, ``ray:``
sections), else the defaults.

Backends are registered in :data:`EXECUTORS` (name -> module and class); a
backend's optional dependency is imported only when it is used.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..pipeline import ENGINES, RunTask
from .base import Executor, Job, QueueResult, Reporter, run_queue

if TYPE_CHECKING:
    from ..collection import Run

__all__ = [
    "EXECUTORS",
    "Executor",
    "Job",
    "QueueResult",
    "Reporter",
    "get_executor",
    "executor_class",
    "run_queue",
    "train_runs",
    "sample_posteriors",
]

#: name -> (module, class). Add a backend by adding a line.
EXECUTORS: dict[str, tuple[str, str]] = {
    "local": ("lfads_runs.executors.local", "LocalExecutor"),
    "debug": ("lfads_runs.executors.debug", "DebugExecutor"),
    "slurm": ("lfads_runs.executors.slurm", "SlurmExecutor"),
    "ray": ("lfads_runs.executors.ray_", "RayExecutor"),
}


def executor_class(name: str) -> type[Executor]:
    """The executor class registered as ``name`` (imports its module, not its extra)."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    module, cls = EXECUTORS[name]
    return getattr(importlib.import_module(module), cls)


def get_executor(name: str, **options: Any) -> Executor:
    """An executor instance; options left at None take the executor's defaults.

    Raises
    ------
    ConfigError
        Unknown executor, or an option it does not take (the message lists the
        valid options with their defaults).
    """
    cls = executor_class(name)
    params = {
        p.name: p.default
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind == p.KEYWORD_ONLY
    }
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(params))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise ConfigError(
            f"executor {name!r} does not take {', '.join(unknown)}; its options are: {valid}"
        )
    return cls(**given)


def _collection_of(runs: list[Run]):
    if not runs:
        raise ConfigError("no runs selected")
    rc = runs[0].collection
    if any(r.collection is not rc for r in runs):
        raise ConfigError("all runs of one queue must belong to the same collection")
    return rc


def _pick(value: Any, section: Mapping[str, Any], key: str, default: Any = None) -> Any:
    if value is not None:
        return value
    return section.get(key, default)


def _build_executor(
    name: str,
    rc,
    *,
    gpus: Any,
    runs_per_gpu: int | None,
    max_parallel: int | None,
    threads: int | None,
    device: str | None,
    executor_options: Mapping[str, Any] | None,
) -> Executor:
    extra = dict(executor_options or {})
    if name == "local":
        opts = dict(
            gpus=gpus, runs_per_gpu=runs_per_gpu, max_parallel=max_parallel, threads=threads
        )
        opts["device"] = device
    elif name == "debug":
        opts = dict(threads=threads, device=device)
    elif name == "slurm":
        opts = {k: v for k, v in (rc.options.get("slurm") or {}).items()}
        opts.setdefault("folder", str(rc.layout.slurm_log_dir))
        if threads is not None:
            opts.setdefault("cpus_per_task", threads)
        opts["device"] = device
    elif name == "ray":
        opts = {k: v for k, v in (rc.options.get("ray") or {}).items()}
        if runs_per_gpu is not None:
            opts.setdefault("num_gpus", 1.0 / runs_per_gpu)
        if threads is not None:
            opts.setdefault("num_cpus", threads)
        opts["device"] = device
    else:
        opts = {}
    opts.update(extra)
    return get_executor(name, **opts)


def _queue(
    runs: Iterable[Run],
    *,
    mode: str,
    executor: str | Executor | None,
    gpus: Any,
    runs_per_gpu: int | None,
    max_parallel: int | None,
    threads: int | None,
    rerun: bool,
    engine: str | None,
    device: str | None,
    seed: int | None,
    kind: str | None,
    n_samples: int | None,
    checkpoint: str,
    dry_run: bool,
    quiet: bool,
    progress: bool | None,
    executor_options: Mapping[str, Any] | None,
    script_options: Any,
) -> QueueResult:
    runs = list(runs)
    rc = _collection_of(runs)
    train = rc.options.get("train") or {}
    engine = _pick(engine, train, "engine", "torch")
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    device = _pick(device, train, "device")
    seed = _pick(seed, train, "seed")
    n_samples = _pick(n_samples, train, "posterior_samples")
    if isinstance(executor, Executor):
        ex = executor
    else:
        name = _pick(executor, train, "executor", "local")
        ex = _build_executor(
            name,
            rc,
            gpus=_pick(gpus, train, "gpus"),
            runs_per_gpu=_pick(runs_per_gpu, train, "runs_per_gpu"),
            max_parallel=_pick(max_parallel, train, "max_parallel"),
            threads=_pick(threads, train, "threads"),
            device=device,
            executor_options=executor_options,
        )
    items = [
        (
            run,
            RunTask.from_run(
                run,
                mode=mode,
                engine=engine,
                device=device,
                seed=seed,
                kind=kind,
                n_samples=n_samples,
                checkpoint=checkpoint,
                rerun=rerun,
                script_options=script_options,
            ),
        )
        for run in runs
    ]
    if mode == "train" and not dry_run:
        for run in runs:  # params.json next to the runs, as MATLAB's folders have
            rc.require_param_folder(run.params)
    return run_queue(items, ex, quiet=quiet, progress=progress, dry_run=dry_run)


def train_runs(
    runs: Iterable[Run],
    *,
    executor: str | Executor | None = None,
    gpus: str | Iterable[int | str] | None = None,
    runs_per_gpu: int | None = None,
    max_parallel: int | None = None,
    threads: int | None = None,
    rerun: bool = False,
    engine: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    progress: bool | None = None,
    executor_options: Mapping[str, Any] | None = None,
    script_options: Any = None,
) -> QueueResult:
    """Train ``runs`` (prepare -> train -> posterior means -> model_params -> done marker).

    Parameters
    ----------
    runs
        Runs of one collection.
    executor
        ``local`` (default), ``debug`` (in this process), ``slurm`` or ``ray``, or an
        :class:`Executor` instance.
    gpus, runs_per_gpu, max_parallel, threads
        Local executor slots (see :class:`~lfads_runs.executors.local.LocalExecutor`).
    rerun
        Ignore done markers (training still resumes from the latest checkpoint).
    engine
        ``torch`` (ours, default) or ``external`` (the original run_lfads.py scripts).
    device, seed
        Passed to the engine (device None: CUDA when available, else CPU).
    dry_run
        Only say what would run.
    quiet, progress
        No progress lines on stderr; a progress bar (tqdm) of the runs instead of the
        overall lines (None: only on a terminal).
    executor_options
        Extra options of the executor (e.g. Slurm ``partition``, ``cluster="local"``).
    script_options
        :class:`~lfads_runs.scripts.ScriptOptions` for the external engine.

    Every option left at None comes from the YAML ``train:`` section when set.

    Returns
    -------
    QueueResult
        ``.summary()`` reads "N done, M skipped, K failed"; ``.exit_code`` is 0, 1 or 130.
    """
    return _queue(
        runs,
        mode="train",
        executor=executor,
        gpus=gpus,
        runs_per_gpu=runs_per_gpu,
        max_parallel=max_parallel,
        threads=threads,
        rerun=rerun,
        engine=engine,
        device=device,
        seed=seed,
        kind=None,
        n_samples=None,
        checkpoint="lve",
        dry_run=dry_run,
        quiet=quiet,
        progress=progress,
        executor_options=executor_options,
        script_options=script_options,
    )


def sample_posteriors(
    runs: Iterable[Run],
    *,
    kind: str | None = None,
    n_samples: int | None = None,
    checkpoint: str = "lve",
    executor: str | Executor | None = None,
    gpus: str | Iterable[int | str] | None = None,
    runs_per_gpu: int | None = None,
    max_parallel: int | None = None,
    threads: int | None = None,
    rerun: bool = False,
    engine: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    progress: bool | None = None,
    executor_options: Mapping[str, Any] | None = None,
    script_options: Any = None,
) -> QueueResult:
    """Posterior sampling (and ``model_params``) for runs that are trained.

    Untrained runs are skipped; runs whose posterior files of ``kind`` exist are
    skipped unless ``rerun``. Other parameters as in :func:`train_runs`.
    """
    return _queue(
        runs,
        mode="posterior",
        executor=executor,
        gpus=gpus,
        runs_per_gpu=runs_per_gpu,
        max_parallel=max_parallel,
        threads=threads,
        rerun=rerun,
        engine=engine,
        device=device,
        seed=seed,
        kind=kind,
        n_samples=n_samples,
        checkpoint=checkpoint,
        dry_run=dry_run,
        quiet=quiet,
        progress=progress,
        executor_options=executor_options,
        script_options=script_options,
    )
