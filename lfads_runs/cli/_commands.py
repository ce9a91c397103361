"""Imports every command module so that its commands register on the group."""

from . import list_cmd  # noqa: F401
