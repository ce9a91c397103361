"""File formats: every reader and writer of LFADS and lfads-run-manager files.

Readers close their files and return arrays or records, never an open handle.
Writers write to a temporary file in the destination folder and rename it.
"""
