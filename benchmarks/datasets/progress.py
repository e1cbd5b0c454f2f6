"""The rich progress bar every long dataset step shows (verify, convert, generate, download)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["progress_bar"]


def progress_bar(*, transfer: bool = False, disable: bool = False) -> Progress:
    """A rich progress bar; ``transfer`` shows bytes and speed instead of a count."""
    if transfer:
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn())
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=disable, transient=False)
