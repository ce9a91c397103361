"""Command templates (the collection's ``dump_command``) filled in without a shell.

A template is a list of arguments, or a string split once into arguments with
POSIX shell quoting rules (``shlex.split``). Placeholders are substituted inside
each argument, so a run spec called ``sp;touch X;`` or a folder with a space in
its path stays one argument and is never interpreted by a shell. Only the known
placeholders are replaced; every other brace is kept as written
(``awk 'BEGIN {print 1}'`` works). An argument that is exactly ``{flags}`` becomes
one argument per flag. Shell features (pipes, ``$(...)``) need an explicit
``["sh", "-c", "script", "{output_dir}"]`` whose script reads ``"$0"``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from .exceptions import ConfigError

__all__ = ["PLACEHOLDERS", "split_template", "fill_template"]

#: The placeholders a dump command may use.
PLACEHOLDERS = ("input_dir", "output_dir", "run_dir", "flags")

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def split_template(template: str | Sequence[str], what: str = "dump_command") -> list[str]:
    """The template's arguments; ``ConfigError`` for unbalanced quotes or an empty command."""
    if isinstance(template, str):
        try:
            args = shlex.split(template)
        except ValueError as exc:  # "No closing quotation"
            raise ConfigError(f"{what}: cannot split {template!r} into arguments: {exc}") from None
    else:
        args = list(template)
    if not args or not all(isinstance(a, str) for a in args) or not args[0]:
        raise ConfigError(f"{what}: expected a non-empty command, got {template!r}")
    return args


def fill_template(
    template: str | Sequence[str],
    values: Mapping[str, str | Sequence[str]],
    what: str = "dump_command",
) -> list[str]:
    """The argv of ``template`` with ``{name}`` replaced by ``values[name]``.

    A list value (``flags``) standing alone as an argument expands to several
    arguments; inside a longer argument it is joined with spaces.
    """
    out: list[str] = []
    for arg in split_template(template, what):
        whole = _PLACEHOLDER.fullmatch(arg)
        if whole and not isinstance(values[whole.group(1)], str):
            out.extend(values[whole.group(1)])
            continue
        out.append(_PLACEHOLDER.sub(lambda m: _as_text(values[m.group(1)]), arg))
    return out


def _as_text(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else " ".join(value)
