"""Which runs are owed: the state of every planned run in an output directory, and the sweep's tally.

``run_states`` is the one place that reads what the output directory holds for
a list of runs (a record ok or failed, an unreadable record, a claim held by a
live process, nothing) and decides, with ``--force`` and ``--retry-failed``
applied, what each run is *due*: to be trained ("owed"), or left as it is
("recorded", "failed", "unreadable", "claimed"). The sweep, the SLURM backend,
``vaebench status`` and ``vaebench plan`` all read it. ``ForcedSweep`` is the
``--force`` promise a sweep keeps on disk so that its rerun resumes it, and
``SweepResult`` the tally that every backend returns and the CLI reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from benchmarks.runner.claims import claim_holder
from benchmarks.runner.records import RecordError, RunRecord, checkpoint_path, read_record, record_path
from benchmarks.runner.spec import RunSpec
from vae_zoo.checkpoint import previous_path
from vaebench.atomic import atomic_write_text
from vaebench.paths import check_component, path_under

__all__ = ["DUES", "RunState", "run_states", "ForcedSweep", "SweepResult"]

#: What a run is due, by ``run_states``: trained, or left as it is and why.
DUES = ("owed", "recorded", "failed", "unreadable", "claimed")


@dataclass(frozen=True)
class RunState:
    """One planned run in the output directory.

    Attributes:
        held: what the directory holds: "ok" or "failed" (a record), "unreadable" or "pending".
        due: what the run is due (``DUES``): "owed" (to train), "recorded" (ok, or not owed by a
            forced sweep), "failed" (recorded failed, not retried), "unreadable" (never overwritten)
            or "claimed" (a live process is training it; only when ``run_states`` checks claims).
        record: the record, when one was read.
        problem: why the record is unreadable.
        holder: who holds the claim (host, pid, SLURM job), when claimed.
    """

    held: str
    due: str
    record: RunRecord | None = None
    problem: str = ""
    holder: dict | None = None

    @property
    def shown(self) -> str:
        """The state a plan shows: what the directory holds, or "claimed" while a process trains it."""
        return "claimed" if self.due == "claimed" else self.held

    @property
    def failure(self) -> tuple[int, str]:
        """(step, reason) of a recorded failure."""
        failure = (self.record.failure if self.record is not None else None) or {}
        return failure.get("step", -1), failure.get("reason", "")


def _due(held: str, run_id: str, force: bool, retry_failed: bool, forced: Collection[str] | None) -> str:
    if forced is not None:  # a forced sweep owes what its promise lists, and nothing else
        return "owed" if run_id in forced else "recorded"
    if force:
        return "owed"
    if held == "ok":
        return "recorded"
    if held == "failed" and not retry_failed:
        return "failed"
    if held == "unreadable":
        return "unreadable"
    return "owed"  # pending, or failed and retried


def run_states(
    specs: Sequence[RunSpec],
    out_dir: Path,
    *,
    force: bool = False,
    retry_failed: bool = False,
    forced: Collection[str] | None = None,
    claims: bool = False,
) -> dict[str, RunState]:
    """run_id -> ``RunState`` of each run, read from ``out_dir``.

    Args:
        specs: the runs.
        out_dir: the output directory holding their records and claims.
        force: every run is owed (``--force``).
        retry_failed: runs recorded as failed are owed (``--retry-failed``).
        forced: the run ids a ``ForcedSweep`` still owes; the others are due nothing.
        claims: an owed run whose claim a live process holds is "claimed" rather than owed
            (what ``status`` and ``plan`` show; a sweep claims each run itself before training).
    """
    states: dict[str, RunState] = {}
    for spec in specs:
        path = record_path(out_dir, spec.suite, spec.run_id)
        record, problem = None, ""
        if not path.exists():
            held = "pending"
        else:
            try:
                record = read_record(path)
                held = record.status
            except RecordError as exc:
                held, problem = "unreadable", str(exc)
        due = _due(held, spec.run_id, force, retry_failed, forced)
        holder = None
        if claims and due == "owed":
            holder = claim_holder(out_dir, spec.suite, spec.run_id)
            if holder is not None:
                due = "claimed"
        states[spec.run_id] = RunState(held, due, record, problem, holder)
    return states


class ForcedSweep:
    """A ``--force`` sweep's promise, kept in the output directory until it is fulfilled.

    On its first start it deletes the old checkpoints of its runs (old records are replaced
    as the new ones are written) and writes ``sweeps/<suite>/force-<key>.json`` listing the
    runs it still owes, its start time and its process; each finished run is struck off, under
    a lock, in the file itself (so two processes forcing the same runs strike each other's
    runs, and neither leaves a stale promise). The same command after an interrupt finds the
    list and resumes it (keeping the new checkpoints) instead of starting over; while the
    process that wrote it is still alive, it is a concurrent sweep (``concurrent``), not an
    interrupted one.
    """

    def __init__(self, out_dir: Path, specs: Sequence[RunSpec]):
        ids = sorted(r.run_id for r in specs)
        key = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
        suite = specs[0].suite if specs else "none"
        self.out_dir = Path(out_dir)
        self.path = path_under(out_dir, "sweeps", check_component(suite, "suite name"), f"force-{key}.json")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock():
            promise = self._read()
            self.concurrent = promise is not None and _alive(promise.get("owner") or {})
            self.resumed = promise is not None and not self.concurrent
            if promise is not None:
                self.owed = set(promise["owed"]) & set(ids)
                self.started = float(promise.get("started", 0.0))
            else:
                self.owed, self.started = set(ids), time.time()
                for spec in specs:
                    checkpoint = checkpoint_path(out_dir, spec.suite, spec.run_id)
                    checkpoint.unlink(missing_ok=True)
                    previous_path(checkpoint).unlink(missing_ok=True)
            self._write(self.owed)

    def _lock(self) -> FileLock:
        return FileLock(str(self.path.with_suffix(".lock")))

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None

    def _write(self, owed: set[str]) -> None:
        if owed:
            owner = {"host": socket.gethostname(), "pid": os.getpid()}
            payload = {"owed": sorted(owed), "started": self.started, "owner": owner}
            atomic_write_text(self.path, json.dumps(payload, indent=1) + "\n")
        else:
            self.path.unlink(missing_ok=True)

    def done(self, run_id: str) -> None:
        """Strike ``run_id`` off the promise (in the file, where another process may have struck others)."""
        self.owed.discard(run_id)
        with self._lock():
            promise = self._read()
            if promise is not None:
                self.owed &= set(promise["owed"])
                self._write(set(promise["owed"]) - {run_id})

    def settle(self) -> None:
        """After the sweep, strike from the promise the runs recorded since it began.

        By any process: those another process was training when this one reached them.
        """
        with self._lock():
            promise = self._read()
            if promise is None:
                return
            still = set(promise["owed"])
            for run_id in list(still):
                record = next(iter((self.out_dir / "runs").glob(f"*/{run_id}.json")), None)
                if record is not None and record.stat().st_mtime >= self.started:
                    still.discard(run_id)
            self.owed &= still
            self._write(still)


def _alive(owner: dict) -> bool:
    """Whether the process that wrote a promise still runs (on this host; another host's is unknown)."""
    if owner.get("host") != socket.gethostname() or not owner.get("pid"):
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(owner["pid"]) != os.getpid()


@dataclass
class SweepResult:
    """What a sweep (or one pack of it) did, by run id; every backend returns one."""

    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # recorded ok before this sweep
    failed: list[tuple[str, int, str]] = field(default_factory=list)  # (run_id, step, reason), this sweep
    previously_failed: list[tuple[str, int, str]] = field(
        default_factory=list
    )  # recorded failed, not retried
    unreadable: list[str] = field(default_factory=list)  # corrupt records or checkpoints, by path
    claimed_elsewhere: list[str] = field(default_factory=list)  # another live process is training them
    blocked: dict[str, str] = field(default_factory=dict)  # run_id -> why (a missing official file)
    submitted: list[str] = field(default_factory=list)  # cluster job ids, when the sweep was only submitted
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every run is recorded ok, 130 when interrupted, 1 when anything failed or is missing."""
        if self.interrupted:
            return 130
        if self.failed or self.previously_failed or self.unreadable or self.blocked:
            return 1
        return 0

    def tally(self, specs: Sequence[RunSpec], states: dict[str, RunState], out_dir: Path) -> list[RunSpec]:
        """Count the runs that are due nothing (recorded, failed, unreadable); return the owed ones."""
        owed = []
        for spec in specs:
            state = states[spec.run_id]
            if state.due == "owed":
                owed.append(spec)
            elif state.due == "recorded":
                self.skipped.append(spec.run_id)
            elif state.due == "failed":
                self.previously_failed.append((spec.run_id, *state.failure))
            elif state.due == "unreadable":
                self.unreadable.append(str(record_path(out_dir, spec.suite, spec.run_id)))
            elif state.due == "claimed":
                self.claimed_elsewhere.append(spec.run_id)
        return owed

    def add(self, other: SweepResult) -> None:
        """Fold in the result of one pack (a cluster task's)."""
        self.completed += other.completed
        self.skipped += other.skipped
        self.failed += other.failed
        self.previously_failed += other.previously_failed
        self.unreadable += other.unreadable
        self.claimed_elsewhere += other.claimed_elsewhere
        self.blocked.update(other.blocked)

    def to_dict(self) -> dict:
        """The result as JSON-ready data (a SLURM task's return value)."""
        return {
            "completed": self.completed,
            "skipped": self.skipped,
            "failed": [list(f) for f in self.failed],
            "previously_failed": [list(f) for f in self.previously_failed],
            "unreadable": self.unreadable,
            "claimed_elsewhere": self.claimed_elsewhere,
            "blocked": self.blocked,
            "interrupted": self.interrupted,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SweepResult:
        """The result that ``to_dict`` wrote."""
        return cls(
            completed=list(data["completed"]),
            skipped=list(data["skipped"]),
            failed=[tuple(f) for f in data["failed"]],
            previously_failed=[tuple(f) for f in data["previously_failed"]],
            unreadable=list(data["unreadable"]),
            claimed_elsewhere=list(data.get("claimed_elsewhere", [])),
            blocked=dict(data["blocked"]),
            interrupted=bool(data.get("interrupted", False)),
        )
