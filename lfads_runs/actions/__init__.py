"""What can be done to one run: prepare its inputs, run new trials through it, export,
draw, delete and list its files.

Every function takes the :class:`~lfads_runs.collection.Run` (or collection) it acts on;
the ``Run`` and ``RunCollection`` methods delegate here, and these modules import
:mod:`lfads_runs.collection` only for type checking, so no import circle forms.
"""
