"""Validation of user-chosen names (datasets, run specs, collections)."""

from __future__ import annotations

import re

from .exceptions import ConfigError

#: Longest file name (one path component) of common file systems (ext4, APFS, NTFS).
MAX_NAME_BYTES = 255
#: Dataset names become parts of longer file names (``model_runs_lfads_<name>.h5_...``).
MAX_DATASET_NAME_BYTES = 128

_LFADS_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_name(name: object, what: str) -> str:
    """A name that is safe as a folder name: no ``/``, ``\\``, ``..``, control characters, no
    leading ``.``, at most 255 bytes."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what} must be a non-empty string, got {name!r}")
    bad = [c for c in ("/", "\\", "\0") if c in name]
    if bad or ".." in name or name.startswith("."):
        raise ConfigError(
            f"{what} {name!r} is not allowed: names must not contain '/', '\\', '..' or NUL "
            "and must not start with '.'"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        # A newline or escape in a folder name breaks logs, status tables and shell scripts.
        raise ConfigError(
            f"{what} {name!r} is not allowed: names must not contain control characters "
            "(newline, tab, escape, ...)"
        )
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(
            f"{what} {name[:40]!r}... is {len(name.encode('utf-8'))} bytes long; a folder "
            f"name may have at most {MAX_NAME_BYTES} bytes"
        )
    return name


def check_dataset_name(name: object) -> str:
    """Dataset names also become TensorFlow variable names (``x_2_infac_<name>.h5``)."""
    name = check_name(name, "dataset name")
    if len(name.encode("utf-8")) > MAX_DATASET_NAME_BYTES:
        raise ConfigError(
            f"dataset name {name[:40]!r}... is too long: at most {MAX_DATASET_NAME_BYTES} "
            "bytes, because file names such as model_runs_lfads_<name>.h5_valid_<kind> and "
            "their temporary files are built from it"
        )
    if not _LFADS_NAME.match(name):
        raise ConfigError(
            f"dataset name {name!r} is not allowed: LFADS variable names allow only letters, "
            "digits, '_', '.' and '-'"
        )
    return name
