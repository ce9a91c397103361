"""Imports every command module so that its commands register on the group."""

from . import list_cmd, prepare_cmd  # noqa: F401
