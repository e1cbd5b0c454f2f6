"""Claims: many processes share one output directory and never train the same run at once.

A run is claimed by an exclusive lock, waited for briefly (the ``filelock`` package),
on ``claims/<suite>/<run_id>.lock``. The lock is the operating system's
(``flock``), so it dies with its process: the claim of a process that crashed
or was killed is released by the kernel and the next process reclaims it. A
JSON note beside the lock (``<run_id>.claim.json``) says who holds it (host, pid, SLURM job, since when)
for ``vaebench status``; a note whose lock is free is stale and is replaced.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from benchmarks.runner.records import run_file
from vaebench.atomic import atomic_write_text

__all__ = ["claim_path", "note_path", "try_claim", "Claim", "claim_holder"]


def claim_path(out_dir: Path, suite: str, run_id: str) -> Path:
    """The lock file of one run's claim: ``<out>/claims/<suite>/<run_id>.lock``."""
    return run_file(out_dir, "claims", suite, run_id, ".lock")


def note_path(lock: Path) -> Path:
    """The holder's note beside a claim's lock: ``<run_id>.claim.json``.

    A name no record has (a record is ``<run_id>.json``), so releasing a claim can never delete a record.
    """
    return lock.with_suffix(".claim.json")


class Claim:
    """A held claim on one run; ``release()`` (or the process's end) frees it."""

    def __init__(self, lock: FileLock, note: Path):
        self._lock, self.note = lock, note

    def release(self) -> None:
        """Remove the claim's note and release its lock."""
        self.note.unlink(missing_ok=True)
        self._lock.release()


#: How long ``try_claim`` waits for a busy lock. ``claim_holder`` (``vaebench status``) holds a free
#: lock for an instant to see whether it is free; a trainer that met that probe with no wait would
#: leave the run to nobody. A real holder trains for far longer than this.
CLAIM_WAIT_S = 0.5


def _lock(path: Path) -> FileLock:
    return FileLock(str(path), timeout=0, is_singleton=False, thread_local=False)


def try_claim(out_dir: Path, suite: str, run_id: str, wait: float = CLAIM_WAIT_S) -> Claim | None:
    """Claim the run, or None when another live process holds it (after ``wait`` seconds)."""
    path = claim_path(out_dir, suite, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(path)
    try:
        lock.acquire(timeout=wait, poll_interval=0.05)
    except Timeout:
        return None
    note = note_path(path)
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": _slurm_job_id(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(note, json.dumps(holder) + "\n")
    return Claim(lock, note)


def _slurm_job_id() -> str | None:
    """The id squeue and ``slurm/<suite>/jobs.json`` know this SLURM task by.

    ``ARRAY_TASK`` for an array task (whose own SLURM_JOB_ID is another number), else the job id.
    """
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def claim_holder(out_dir: Path, suite: str, run_id: str) -> dict | None:
    """Who holds the run's claim now, or None when nobody does (a stale note is cleared)."""
    path = claim_path(out_dir, suite, run_id)
    if not path.exists():
        return None
    lock = _lock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:  # held: the note says by whom
        pass
    except OSError:  # a read-only output directory: the lock cannot be probed; a note says who held it
        if not note_path(path).exists():
            return None
    else:  # free: whatever note was there is stale
        note_path(path).unlink(missing_ok=True)
        lock.release()
        return None
    try:
        return json.loads(note_path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {"host": "?", "pid": None}
