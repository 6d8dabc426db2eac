"""Errors whose message is complete for the user: the driver prints them as one line (no traceback)
and exits non-zero. Each names the file, table, column or key that is wrong."""

from __future__ import annotations


class JobError(RuntimeError):
    """A job cannot proceed; the message says what to fix."""


class InputError(JobError):
    """An input file, table or column is missing, truncated or corrupt. Nothing was written."""
