"""``vaebench status``: per suite, what is recorded, failed, claimed (running) and pending, and the jobs.

Counts come from the output directory alone (records, claims, submitted job
ids; ``state.run_states`` reads them), so any process on the shared filesystem
can ask. "pending" needs the suite's plan: it is known for a suite that can be
loaded by name or path, and shown as "?" for a suite known only from its records.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.runner.records import RecordError, iter_records
from benchmarks.runner.slurm import slurm_job_states, submitted_jobs
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.state import run_states
from benchmarks.runner.suite import SuiteError, expand_suite, load_suite
from vaebench.registry import UnknownNameError

__all__ = ["suite_status"]


def _planned(out_dir: Path, suite: str | None) -> tuple[list[str], dict[str, list[RunSpec]]]:
    """The suites to report, and the planned runs of each that can be loaded."""
    if suite is not None:
        loaded = load_suite(suite)
        return [loaded.name], {loaded.name: expand_suite(loaded)}
    found = set()
    for sub in ("runs", "claims", "slurm"):
        if (out_dir / sub).is_dir():
            found |= {p.name for p in (out_dir / sub).iterdir() if p.is_dir()}
    planned = {}
    for name in sorted(found):
        try:
            planned[name] = expand_suite(load_suite(name))
        except (SuiteError, UnknownNameError):
            pass
    return sorted(found), planned


def suite_status(out_dir: Path, suite: str | None = None) -> list[dict]:
    """One row per suite counting its runs by state, with unreadable records, claims and jobs.

    Columns: runs, ok, failed, claimed, pending, unreadable (why each record could not be read),
    claims (run_id -> holder), jobs (state -> n).
    """
    out_dir = Path(out_dir)
    names, planned = _planned(out_dir, suite)
    rows = []
    for name in names:
        errors: list[RecordError] = []
        records = iter_records(out_dir, name, on_error=errors.append)
        specs = planned.get(name)
        jobs: dict[str, int] = {}
        for state in slurm_job_states(submitted_jobs(out_dir, name)).values():
            jobs[state] = jobs.get(state, 0) + 1
        if specs is None:  # a suite known only from its records: no plan, so nothing is pending or claimed
            held, claimed = [r.status for r in records], {}
        else:
            states = run_states(specs, out_dir, claims=True)
            held = [s.held for s in states.values()]
            claimed = {i: s.holder for i, s in states.items() if s.due == "claimed"}
        ok, failed = held.count("ok"), held.count("failed")
        rows.append(
            {
                "suite": name,
                "runs": len(specs) if specs is not None else None,
                "ok": ok,
                "failed": failed,
                "claimed": len(claimed),
                "pending": (len(specs) - ok - failed - len(claimed)) if specs is not None else None,
                "unreadable": [str(e) for e in errors],
                "claims": claimed,
                "jobs": jobs,
            }
        )
    return rows
