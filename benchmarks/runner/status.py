"""``vaebench status``: per suite, what is recorded, failed, claimed (running) and pending, and the jobs.

Counts come from the output directory alone (records, claims, submitted job
ids), so any process on the shared filesystem can ask. "pending" needs the
suite's plan: it is known for a suite that can be loaded by name or path,
and shown as "?" for a suite known only from its records.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.runner.claims import claim_holder
from benchmarks.runner.records import RecordError, iter_records

__all__ = ["suite_status"]


def suite_status(out_dir: Path, suite: str | None = None) -> list[dict]:
    """One row per suite: runs, ok, failed, claimed, pending, claims (run_id -> holder), jobs (state -> n)."""
    from benchmarks.runner.slurm import slurm_job_states, submitted_jobs
    from benchmarks.runner.suite import SuiteError, expand_suite, load_suite
    from vaebench.registry import UnknownNameError

    out_dir = Path(out_dir)
    planned: dict[str, list[str]] = {}
    if suite is not None:
        loaded = load_suite(suite)
        planned[loaded.name] = [s.run_id for s in expand_suite(loaded)]
        names = [loaded.name]
    else:
        found = set()
        for sub in ("runs", "claims", "slurm"):
            if (out_dir / sub).is_dir():
                found |= {p.name for p in (out_dir / sub).iterdir() if p.is_dir()}
        names = sorted(found)
        for name in names:
            try:
                planned[name] = [s.run_id for s in expand_suite(load_suite(name))]
            except (SuiteError, UnknownNameError):
                pass
    rows = []
    for name in names:
        errors: list[RecordError] = []
        records = {r.run_id: r for r in iter_records(out_dir, name, on_error=errors.append)}
        ids = planned.get(name)
        claims_dir = out_dir / "claims" / name
        claim_ids = sorted(p.stem for p in claims_dir.glob("*.lock")) if claims_dir.is_dir() else []
        claims = {}
        for run_id in claim_ids:
            holder = claim_holder(out_dir, name, run_id)
            if holder is not None:
                claims[run_id] = holder
        states = slurm_job_states(submitted_jobs(out_dir, name))
        jobs: dict[str, int] = {}
        for state in states.values():
            jobs[state] = jobs.get(state, 0) + 1
        in_plan = set(ids) if ids is not None else set(records)
        ok = sum(1 for i, r in records.items() if i in in_plan and r.ok)
        failed = sum(1 for i, r in records.items() if i in in_plan and not r.ok)
        claimed = sum(1 for i in claims if i in in_plan and i not in records)
        rows.append(
            {
                "suite": name,
                "runs": len(ids) if ids is not None else None,
                "ok": ok,
                "failed": failed,
                "claimed": claimed,
                "pending": (len(in_plan) - ok - failed - claimed) if ids is not None else None,
                "unreadable": len(errors),
                "claims": claims,
                "jobs": jobs,
            }
        )
    return rows
