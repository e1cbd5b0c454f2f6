"""What the command line treats as the user's bad input, as opposed to a bug.

``UserError`` is the base of every exception that means "this input cannot be
used" (an unknown name, a bad suite field, a damaged checkpoint, a missing data
file): the CLI prints its message and exits 2 before any work. Every other
exception that reaches the CLI is a bug in vaebench (or in a plug-in): it
prints the traceback and a line asking for a report, and exits 1.

Two failures of a write are neither: ``UnwritableError`` (a read-only or
forbidden directory; the user's, exit 2) and ``DiskFullError`` (no space left;
exit ``EXIT_DISK_FULL``, distinct from 1, "runs failed", because nothing
failed: the same command resumes once there is space). ``vaebench.atomic``,
through which every file is written, raises them.
"""

from __future__ import annotations

__all__ = ["UserError", "UnwritableError", "DiskFullError", "EXIT_DISK_FULL", "BUG_REPORT"]


class UserError(Exception):
    """Bad input; the message names the bad value and what would be accepted."""


#: The exit status of a command stopped by a full disk (1 is "runs failed", 2 bad input, 130 a signal).
EXIT_DISK_FULL = 3


class UnwritableError(UserError):
    """A file could not be written because its directory is read-only or forbidden; names the path."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class DiskFullError(Exception):
    """No space was left while writing ``path``; what was written before is intact (atomic writes)."""

    def __init__(self, device: str, path: str):
        super().__init__(
            f"no space left on {device} while writing {path}; nothing recorded was lost; "
            "free space and rerun (the same command resumes)"
        )
        self.device, self.path = device, path


#: What the CLI prints under the traceback of an exception that is not the user's.
BUG_REPORT = (
    "This is a bug in vaebench (or in a plug-in it loaded), not a problem with your input. "
    "Please report it with the command you ran, the traceback above and the output of `pip show vaebench`."
)
