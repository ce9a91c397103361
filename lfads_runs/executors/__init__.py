"""Executors: where runs train (this machine, Slurm through submitit, Ray), one protocol.

:func:`train_runs` and :func:`sample_posteriors` are what ``rc.train()``,
``lfads-runs train`` and ``lfads-runs posterior`` call. Their options form one
:class:`QueueOptions` record; options come from it, else from the collection's
YAML (``train:`` and the executor's own section, ``slurm:`` or ``ray:``), else
the defaults.

Backends are registered in :data:`EXECUTORS` (name -> module and class); a
backend's optional dependency is imported only when it is used. Each backend
class declares its options (:attr:`Executor.options`, with types, defaults, help
and command-line flags), its YAML section and how a queue's options map onto its
own (:meth:`Executor.settings`): the CLI, :func:`get_executor` and the error
messages all read those declarations.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..pipeline import RunTask
from .base import Executor, Job, QueueResult, Reporter, run_queue
from .options import ExecutorOption, QueueOptions, check_posterior
from .registry import EXECUTORS

if TYPE_CHECKING:
    from ..collection import Run, RunCollection

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorOption",
    "Job",
    "QueueOptions",
    "QueueResult",
    "Reporter",
    "build_executor",
    "executor_class",
    "executor_classes",
    "get_executor",
    "run_queue",
    "train_runs",
    "sample_posteriors",
]


def executor_class(name: str) -> type[Executor]:
    """The executor class registered as ``name`` (imports its module, not its extra)."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    module, cls = EXECUTORS[name]
    return getattr(importlib.import_module(module), cls)


def executor_classes() -> dict[str, type[Executor]]:
    """Every registered executor class by name, in registry order."""
    return {name: executor_class(name) for name in EXECUTORS}


def get_executor(name: str, **options: Any) -> Executor:
    """An executor instance; options left at None take the executor's defaults.

    Raises
    ------
    ConfigError
        Unknown executor, an option it does not take (the message lists the valid
        options with their defaults) or a bad value (the message names the option).
    """
    cls = executor_class(name)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(k for k in given if cls.option(k) is None)
    if unknown:
        valid = ", ".join(f"{o.name}={o.default!r}" for o in cls.options)
        raise ConfigError(
            f"executor {name!r} does not take {', '.join(unknown)}; its options are: {valid}"
        )
    checked = {
        o.name: o.check(given[o.name], f"executor {name!r}") for o in cls.options if o.name in given
    }
    return cls(**checked)


def build_executor(rc: RunCollection, options: QueueOptions) -> Executor:
    """The executor of a queue over ``rc``'s runs: ``options.executor`` (default: the
    YAML ``train.executor``, else ``local``) set up from its YAML section, the queue
    options it shares and ``options.executor_options``, in increasing precedence."""
    if isinstance(options.executor, Executor):
        if options.executor_options:
            raise ConfigError(
                "executor_options apply to an executor given by name, not to an "
                f"executor instance ({options.executor.name})"
            )
        return options.executor
    options = _with_yaml(rc, options)
    name = str(options.executor)
    cls = executor_class(name)
    settings = cls.settings(rc, options)
    settings.update(options.executor_options or {})
    return get_executor(name, **settings)


def _with_yaml(rc: RunCollection, options: QueueOptions) -> QueueOptions:
    """``options`` completed from ``rc``'s ``train:`` section; a bad value there is
    an error naming the configuration file."""
    try:
        return options.with_defaults(rc.options.get("train"))
    except ConfigError as exc:
        raise ConfigError(f"{rc.source or rc.name}: train: {exc}") from None


def _collection_of(runs: list[Run]):
    if not runs:
        raise ConfigError("no runs selected")
    rc = runs[0].collection
    if any(r.collection is not rc for r in runs):
        raise ConfigError("all runs of one queue must belong to the same collection")
    return rc


def _queue(
    runs: Iterable[Run],
    options: QueueOptions,
    *,
    mode: str,
    kind: str | None = None,
    n_samples: int | None = None,
    checkpoint: str = "lve",
) -> QueueResult:
    runs = list(runs)
    rc = _collection_of(runs)
    train = rc.options.get("train") or {}
    options = _with_yaml(rc, options)
    if n_samples is None:
        n_samples = train.get("posterior_samples")
    ex = build_executor(rc, options)
    items = [
        (
            run,
            RunTask.from_run(
                run,
                mode=mode,
                engine=str(options.engine),
                device=options.device,
                seed=options.seed,
                kind=kind,
                n_samples=n_samples,
                checkpoint=checkpoint,
                rerun=options.rerun,
                script_options=options.script_options,
            ),
        )
        for run in runs
    ]
    if mode == "train" and not options.dry_run:
        for run in runs:  # params.json next to the runs, as MATLAB's folders have
            rc.require_param_folder(run.params)
    return run_queue(
        items, ex, quiet=options.quiet, progress=options.progress, dry_run=options.dry_run
    )


def train_runs(
    runs: Iterable[Run], options: QueueOptions | None = None, /, **overrides: Any
) -> QueueResult:
    """Train ``runs`` (prepare -> train -> posterior means -> model_params -> done marker).

    Parameters
    ----------
    runs
        Runs of one collection.
    options
        A :class:`QueueOptions` record (executor, resources, engine, output).
    **overrides
        Fields of :class:`QueueOptions` by keyword (``executor="slurm"``,
        ``max_parallel=2``, ``quiet=True``, ...), applied over ``options``.

    Every option left at None comes from the YAML ``train:`` section when set.

    Returns
    -------
    QueueResult
        ``.summary()`` reads "N done, M skipped, K failed"; ``.exit_code`` is 0, 1 or 130.

    Raises
    ------
    ConfigError
        An unknown option or a bad value (the message names it).
    """
    return _queue(runs, QueueOptions.build(options, **overrides), mode="train")


def sample_posteriors(
    runs: Iterable[Run],
    options: QueueOptions | None = None,
    /,
    *,
    kind: str | None = None,
    n_samples: int | None = None,
    checkpoint: str = "lve",
    **overrides: Any,
) -> QueueResult:
    """Posterior sampling (and ``model_params``) for runs that are trained.

    Untrained runs are skipped; runs whose posterior files of ``kind`` exist are
    skipped unless ``rerun``. ``kind`` and ``n_samples`` default to each run's
    ``posterior_mean_kind`` / ``num_samples_posterior`` (``n_samples``: the YAML
    ``train.posterior_samples`` first); ``checkpoint`` is ``lve``, ``latest`` or a
    checkpoint prefix. ``options`` and ``overrides`` as in :func:`train_runs`.
    """
    check_posterior(kind, n_samples, checkpoint)
    queue = QueueOptions.build(options, **overrides)
    return _queue(
        runs, queue, mode="posterior", kind=kind, n_samples=n_samples, checkpoint=checkpoint
    )
