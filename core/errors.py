"""Errors the user can fix, as opposed to bugs.

Anything raised as `UserError` reaches the user as one plain line (CLI exit 2, a message box in the
window); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input that they can fix; the message is shown verbatim."""


class Cancelled(Exception):
    """Raised from a progress callback to stop a job cooperatively."""
