"""Imports every command module so that its commands register on the group."""

from . import dump_cmd, list_cmd, plot_cmd, prepare_cmd  # noqa: F401
