"""Options declared once: an executor's own options and those of a whole queue.

:class:`ExecutorOption` is one option of an executor (name, type, default, help,
the YAML section key and the command-line flag), declared on the executor class
(:attr:`~lfads_runs.executors.base.Executor.options`). The CLI builds its flags,
:func:`~lfads_runs.executors.get_executor` its checks and the error messages from
these declarations.

:class:`QueueOptions` is what one ``train`` / ``posterior`` queue is asked to do
(executor, resources, engine, output); ``rc.train()``, ``run.sample_posterior()``,
:func:`~lfads_runs.executors.train_runs` and the CLI all build one, so a bad value
gives the same error whichever way it came in.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ..exceptions import ConfigError
from .gpus import parse_gpus
from .registry import EXECUTORS

if TYPE_CHECKING:
    from ..scripts import ScriptOptions
    from .base import Executor

__all__ = ["ExecutorOption", "QueueOptions", "KINDS", "check_posterior", "check_value"]

#: Value kinds an option can declare.
KINDS = ("int", "float", "str", "bool", "mapping", "path", "choice", "any")


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


#: kind -> (test, what the error says was expected, conversion).
_CHECKS: dict[str, tuple[Callable[[Any], bool], str, Callable[[Any], Any]]] = {
    "int": (_is_int, "an integer", int),
    "float": (_is_number, "a finite number", float),
    "str": (lambda v: isinstance(v, str) and bool(v), "a non-empty string", str),
    "bool": (lambda v: isinstance(v, bool), "true or false", bool),
    "mapping": (lambda v: isinstance(v, Mapping), "a mapping", lambda v: v),
    "path": (
        lambda v: isinstance(v, str | os.PathLike) and bool(os.fspath(v)),
        "a folder path",
        lambda v: v,
    ),
}


def check_value(
    kind: str,
    value: Any,
    where: str,
    *,
    minimum: float | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """``value`` checked as ``kind`` (ints stay ints, floats become floats).

    Raises
    ------
    ConfigError
        ``<where>: expected ..., got ...``.
    """
    if kind == "choice":
        if value not in (choices or ()):
            raise ConfigError(f"{where}: expected one of {', '.join(choices or ())}, got {value!r}")
    elif kind in _CHECKS:
        test, expected, convert = _CHECKS[kind]
        if not test(value):
            raise ConfigError(f"{where}: expected {expected}, got {_shown(value)}")
        value = convert(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: expected a value >= {minimum:g}, got {value!r}")
    return value


@attrs.frozen
class ExecutorOption:
    """One option of an executor.

    Attributes
    ----------
    name
        The keyword of the executor's constructor (and of its YAML section).
    kind
        One of :data:`KINDS`; ``any`` leaves the check to ``validator``.
    default
        What the executor uses when the option is not given (shown in help and errors).
    help
        One line for ``--help`` and error messages.
    minimum, choices
        Bounds of numbers / the allowed strings of a ``choice``.
    flag
        Its command-line flag on ``train`` and ``posterior`` (e.g. ``--partition``);
        None: Python and YAML only.
    in_yaml
        Whether the executor's YAML section may set it.
    validator
        Extra check ``f(value) -> value`` raising ConfigError (e.g. GPU id lists).
    """

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    default: Any = None
    help: str = ""
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    flag: str | None = None
    in_yaml: bool = True
    validator: Callable[[Any], Any] | None = attrs.field(default=None, eq=False)

    def check(self, value: Any, owner: str) -> Any:
        """``value`` checked; None stays None (the executor's default)."""
        if value is None:
            return None
        where = f"{owner} option {self.name}"
        value = check_value(self.kind, value, where, minimum=self.minimum, choices=self.choices)
        return self.validator(value) if self.validator is not None else value

    def click_type(self) -> Any:
        """The click parameter type of :attr:`flag`."""
        import click

        if self.kind == "int":
            return click.IntRange(min=None if self.minimum is None else int(self.minimum))
        if self.kind == "float":
            return click.FloatRange(min=self.minimum)
        if self.kind == "choice":
            return click.Choice(list(self.choices or ()))
        if self.kind in ("str", "path"):
            return str
        raise TypeError(f"option {self.name}: a {self.kind} option cannot have a command-line flag")


def _optional(kind: str, minimum: float | None = None) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None:
            check_value(kind, value, attribute.name, minimum=minimum)

    return check


def _as_int(value: Any) -> Any:
    """numpy integers become ints (task JSON holds plain ints); the rest is left to the check."""
    return int(value) if _is_int(value) else value


def _check_flag(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    check_value("bool", value, attribute.name)


def _check_progress(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        check_value("bool", value, attribute.name)


def _check_executor(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None or callable(getattr(value, "submit", None)):  # an Executor instance
        return
    if not isinstance(value, str) or value not in EXECUTORS:
        raise ConfigError(
            f"executor: unknown executor {value!r}; choose one of: {', '.join(EXECUTORS)}"
        )


def _check_engine(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    from ..pipeline import ENGINES

    if value is not None and value not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {value!r}")


def _check_gpus(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    parse_gpus(value)


def _check_executor_options(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        check_value("mapping", value, attribute.name)


def _check_script_options(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    from ..scripts import ScriptOptions

    if value is not None and not isinstance(value, ScriptOptions):
        raise ConfigError(f"script_options: expected a ScriptOptions, got {_shown(value)}")


@attrs.frozen(kw_only=True)
class QueueOptions:
    """What a ``train`` or ``posterior`` queue is asked to do; every field is optional.

    Fields left at None come from the collection's YAML ``train:`` section
    (:meth:`with_defaults`), else from the executor's defaults. Bad values raise
    one :class:`~lfads_runs.ConfigError` naming the option.

    Attributes
    ----------
    executor
        ``local`` (default), ``debug`` (in this process), ``slurm`` or ``ray`` (any
        name of :data:`~lfads_runs.executors.EXECUTORS`), or an Executor instance.
    gpus, runs_per_gpu, max_parallel, threads
        Slots of the local executor (see
        :class:`~lfads_runs.executors.local.LocalExecutor`); ``threads`` and
        ``runs_per_gpu`` also size Slurm jobs and Ray tasks.
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
        Options of the executor named by ``executor`` (e.g. Slurm ``partition``,
        ``cluster="local"``); they win over its YAML section.
    script_options
        :class:`~lfads_runs.scripts.ScriptOptions` for the external engine.
    """

    executor: str | Executor | None = attrs.field(default=None, validator=_check_executor)
    gpus: str | int | Sequence[int | str] | None = attrs.field(default=None, validator=_check_gpus)
    runs_per_gpu: int | None = attrs.field(
        default=None, converter=_as_int, validator=_optional("int", 1)
    )
    max_parallel: int | None = attrs.field(
        default=None, converter=_as_int, validator=_optional("int", 1)
    )
    threads: int | None = attrs.field(
        default=None, converter=_as_int, validator=_optional("int", 1)
    )
    rerun: bool = attrs.field(default=False, validator=_check_flag)
    engine: str | None = attrs.field(default=None, validator=_check_engine)
    device: str | None = attrs.field(default=None, validator=_optional("str"))
    seed: int | None = attrs.field(default=None, converter=_as_int, validator=_optional("int", 0))
    dry_run: bool = attrs.field(default=False, validator=_check_flag)
    quiet: bool = attrs.field(default=False, validator=_check_flag)
    progress: bool | None = attrs.field(default=None, validator=_check_progress)
    executor_options: Mapping[str, Any] | None = attrs.field(
        default=None, validator=_check_executor_options
    )
    script_options: ScriptOptions | None = attrs.field(
        default=None, validator=_check_script_options
    )

    #: Fields that the YAML ``train:`` section can set (same names there).
    FROM_YAML: ClassVar[tuple[str, ...]] = (
        *("executor", "gpus", "runs_per_gpu", "max_parallel", "threads", "engine", "device"),
        "seed",
    )

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> QueueOptions:
        """The record from a method's arguments (its ``locals()``): the public ``train`` and
        ``sample_posterior`` methods spell the options out so users see them, and pass
        them on here in one place."""
        return cls(**{f.name: arguments[f.name] for f in attrs.fields(cls)})

    @classmethod
    def build(cls, options: QueueOptions | None = None, /, **overrides: Any) -> QueueOptions:
        """``options`` (default: all unset) with keyword ``overrides``; an unknown keyword
        is one ConfigError listing the valid ones."""
        if options is not None and not isinstance(options, QueueOptions):
            raise ConfigError(f"options: expected a QueueOptions, got {_shown(options)}")
        names = attrs.fields_dict(cls)
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown queue option{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                f"valid options: {', '.join(names)}"
            )
        return attrs.evolve(options, **overrides) if options else cls(**overrides)

    def with_defaults(self, train: Mapping[str, Any] | None) -> QueueOptions:
        """Unset fields taken from a YAML ``train:`` section; engine ``torch`` and
        executor ``local`` when neither sets them."""
        section = dict(train or {})
        filled = {
            k: section[k]
            for k in self.FROM_YAML
            if getattr(self, k) is None and section.get(k) is not None
        }
        out = attrs.evolve(self, **filled)
        return attrs.evolve(out, engine=out.engine or "torch", executor=out.executor or "local")


def check_posterior(kind: str | None, n_samples: int | None, checkpoint: str) -> None:
    """The options only posterior sampling takes: one ConfigError naming the bad one."""
    from ..layout import POSTERIOR_KINDS

    if kind is not None and kind not in POSTERIOR_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(POSTERIOR_KINDS)}, got {kind!r}")
    if n_samples is not None:
        check_value("int", n_samples, "n_samples", minimum=1)
    check_value("str", checkpoint, "checkpoint")
