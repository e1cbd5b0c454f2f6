"""Which runs are owed, and how many runs a pack holds: one answer each, for every caller."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.runner.claims import try_claim
from benchmarks.runner.plan import DEFAULT_PACK, pack_size
from benchmarks.runner.records import RunRecord, record_path, write_record
from benchmarks.runner.state import SweepResult, run_states
from benchmarks.runner.suite import expand_suite, load_suite
from vaebench.errors import UserError


@pytest.fixture(scope="module")
def specs():
    return expand_suite(load_suite("quick"))[:5]


def _record(out, spec, status):
    failure = {"step": 3, "reason": "kl became nan"} if status == "failed" else None
    write_record(
        record_path(out, spec.suite, spec.run_id), RunRecord.for_spec(spec, status=status, failure=failure)
    )


def test_each_run_is_due_what_the_directory_and_the_flags_say(specs, tmp_path):
    ok, failed, unreadable, claimed, pending = specs
    _record(tmp_path, ok, "ok")
    _record(tmp_path, failed, "failed")
    record_path(tmp_path, unreadable.suite, unreadable.run_id).write_text("{not json")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from benchmarks.runner.claims import try_claim; "
            "c = try_claim(*sys.argv[1:4]); print('held', flush=True); time.sleep(600)",
            str(tmp_path),
            claimed.suite,
            claimed.run_id,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        due = {i: s.due for i, s in run_states(specs, tmp_path, claims=True).items()}
        assert due == {
            ok.run_id: "recorded",
            failed.run_id: "failed",
            unreadable.run_id: "unreadable",
            claimed.run_id: "claimed",
            pending.run_id: "owed",
        }
        # a sweep claims each run itself, so it does not look at claims
        assert run_states(specs, tmp_path)[claimed.run_id].due == "owed"
    finally:
        holder.kill()
        holder.wait()
    retried = run_states(specs, tmp_path, retry_failed=True)
    assert retried[failed.run_id].due == "owed" and retried[ok.run_id].due == "recorded"
    assert all(s.due == "owed" for s in run_states(specs, tmp_path, force=True).values())
    promise = run_states(specs, tmp_path, forced={pending.run_id})
    assert [i for i, s in promise.items() if s.due == "owed"] == [pending.run_id]

    result = SweepResult()
    owed = result.tally(specs, run_states(specs, tmp_path), tmp_path)
    assert [s.run_id for s in owed] == [claimed.run_id, pending.run_id]
    assert result.skipped == [ok.run_id] and result.previously_failed == [(failed.run_id, 3, "kl became nan")]
    assert result.unreadable == [str(record_path(tmp_path, unreadable.suite, unreadable.run_id))]
    assert try_claim(tmp_path, claimed.suite, claimed.run_id) is not None  # the holder's claim died with it


def test_one_pack_size_rule():
    assert pack_size(None, "cpu") == DEFAULT_PACK["cpu"] == 1
    assert pack_size(None, "cuda") == DEFAULT_PACK["cuda"] > 1
    assert pack_size(None, "cuda", device_pinned=False, sharded=True) == 1  # a shard's plan is the machine's
    assert pack_size(None, "cuda", device_pinned=True, sharded=True) == DEFAULT_PACK["cuda"]
    assert pack_size(8, "cpu") == 8
    with pytest.raises(UserError, match="--pack must be a positive integer"):
        pack_size(0, "cpu")


def test_a_forced_sweeps_promise_is_struck_in_the_file_and_a_live_one_is_not_called_interrupted(tmp_path):
    """Concurrent forced sweeps strike each other's runs; a live promise is not called interrupted.

    Two processes forcing the same runs strike each other's runs in the one promise file, so none is
    left stale; a promise whose writer still runs is a concurrent sweep, one whose writer is gone an
    interrupted one.
    """
    import json
    import os

    from benchmarks.runner.state import ForcedSweep
    from benchmarks.runner.suite import expand_suite, load_suite

    specs = expand_suite(load_suite("quick"))[:3]
    first = ForcedSweep(tmp_path, specs)
    assert not first.resumed and not first.concurrent and first.path.exists()
    promise = json.loads(first.path.read_text())
    promise["owner"]["pid"] = os.getppid()  # as if another live process had written it
    first.path.write_text(json.dumps(promise))
    second = ForcedSweep(tmp_path, specs)
    assert second.concurrent and not second.resumed
    first.done(specs[0].run_id)
    second.done(specs[1].run_id)
    second.done(specs[2].run_id)  # second's view still owes specs[0]: the file must not bring it back
    assert not first.path.exists()

    third = ForcedSweep(tmp_path, specs)
    promise = json.loads(third.path.read_text())
    promise["owner"]["pid"] = 2**22 + 12345  # no such process: the sweep that wrote it was interrupted
    third.path.write_text(json.dumps(promise))
    assert ForcedSweep(tmp_path, specs).resumed


def test_sacct_errors_of_a_cluster_without_accounting_are_said_once_not_at_every_poll():
    import logging

    from benchmarks.runner.slurm import QuietSacct

    said = []
    quiet = QuietSacct(said.append)
    log = logging.getLogger("submitit")
    log.addFilter(quiet)
    try:
        for call in range(3):  # as submitit logs it at each poll
            log.warning(f"Call #{call} - Bypassing sacct error Command returned 1, status may be inaccurate.")
        assert quiet.dropped == 3 and len(said) == 1 and "squeue" in said[0]
        assert quiet.filter(logging.makeLogRecord({"msg": "another warning"}))  # others pass
    finally:
        log.removeFilter(quiet)
