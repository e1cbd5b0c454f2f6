"""What the command line treats as the user's bad input, as opposed to a bug.

``UserError`` is the base of every exception that means "this input cannot be
used" (an unknown name, a bad suite field, a damaged checkpoint, a missing data
file): the CLI prints its message and exits 2 before any work. Every other
exception that reaches the CLI is a bug in vaebench (or in a plug-in): it
prints the traceback and a line asking for a report, and exits 1.
"""

from __future__ import annotations

__all__ = ["UserError", "BUG_REPORT"]


class UserError(Exception):
    """Bad input; the message names the bad value and what would be accepted."""


#: What the CLI prints under the traceback of an exception that is not the user's.
BUG_REPORT = (
    "This is a bug in vaebench (or in a plug-in it loaded), not a problem with your input. "
    "Please report it with the command you ran, the traceback above and the output of `pip show vaebench`."
)
