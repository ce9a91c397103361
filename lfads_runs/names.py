"""Validation of user-chosen names (datasets, run specs, collections)."""

from __future__ import annotations

import re

from .exceptions import ConfigError

_LFADS_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_name(name: object, what: str) -> str:
    """A name that is safe as a folder name: no ``/``, ``\\``, ``..``, NUL, no leading ``.``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what} must be a non-empty string, got {name!r}")
    bad = [c for c in ("/", "\\", "\0") if c in name]
    if bad or ".." in name or name.startswith("."):
        raise ConfigError(
            f"{what} {name!r} is not allowed: names must not contain '/', '\\', '..' or NUL "
            "and must not start with '.'"
        )
    return name


def check_dataset_name(name: object) -> str:
    """Dataset names also become TensorFlow variable names (``x_2_infac_<name>.h5``)."""
    name = check_name(name, "dataset name")
    if not _LFADS_NAME.match(name):
        raise ConfigError(
            f"dataset name {name!r} is not allowed: LFADS variable names allow only letters, "
            "digits, '_', '.' and '-'"
        )
    return name
