"""Scale-out: SLURM against a real cluster, shards, claims, plans, status and bad input.

The SLURM tests need ``sbatch`` (``.ci/local-slurm start`` brings up a one-node cluster) and are
skipped, saying why, only where it is missing; under ``CI=true`` such a skip is a failure
(``slurm_cluster`` in conftest.py). The CLI runs as a subprocess wherever submitit or a second
process is involved, with ``tests/runner`` on PYTHONPATH (for the test models; the toy dataset,
``toy_squares``, is built in); the SLURM task imports the module that defines each run's model and dataset.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from scaleout_gate import GATE_STEP
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.runner.claims import claim_holder, claim_path, note_path
from benchmarks.runner.plan import make_plan
from benchmarks.runner.slurm import PackTask
from benchmarks.runner.suite import expand_suite, load_suite
from vae_zoo import VAE, register_model

HERE = Path(__file__).resolve().parent
CLI = (sys.executable, "-m", "benchmarks.cli")  # toy_squares is a built-in dataset
# The CLI with the test variant scaleout_gated registered (a SLURM task imports its module itself).
GATED_CLI = (sys.executable, "-c", "import scaleout_gate; from benchmarks.cli import app; app()")
ROOT = HERE.parents[1]
runner = CliRunner()


@register_model("scaleout_nan")
class ScaleoutNaN(VAE):
    """Test variant whose regularizer turns NaN at step 3 (a run recorded as failed)."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        pass

    def regularizer(self, terms):
        kl = terms.kl.mean()
        return (kl * float("nan") if terms.step >= 3 else kl), {"kl": kl}


def gated(tmp_path):
    """(environment of a gated SLURM run, its gate, the file saying the run waits at the gate)."""
    gate = tmp_path / "gate"
    return env(VAEBENCH_TEST_GATE=str(gate)), gate, Path(str(gate) + ".waiting")


# -- helpers ---------------------------------------------------------------------------
def write_suite(toy_suite, steps=30, seeds=(0,), checkpoint_every=10, models=None):
    """The toy suite with one cheap metric baked in (so `status --suite FILE` plans the same run ids)."""
    path = toy_suite(steps=steps)
    text = path.read_text()
    text = text.replace('names = ["mig", "sap", "unsupervised"]', 'names = ["mig"]')
    text = text.replace("seeds = [0]", f"seeds = {list(seeds)}")
    text = text.replace("checkpoint_every = 10", f"checkpoint_every = {checkpoint_every}")
    if models is not None:
        text = text.replace("[models]\nvae = [{}]\nbeta_vae = [{ beta = 2.0 }]", "[models]\n" + models)
    path.write_text(text)
    return path


def env(**extra):
    """The environment of a CLI subprocess: sbatch exports it to the job, PYTHONPATH included."""
    path = os.pathsep.join(p for p in (str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "300",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def start(*args, **kw):
    """The toy CLI as a process of its own (submitit and claims need real processes)."""
    return subprocess.Popen(
        [*kw.pop("cli", CLI), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=kw.pop("env", None) or env(),
        **kw,
    )


def finish(proc, timeout=240):
    """(exit code, output with whitespace normalised)."""
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, " ".join(out.split())


def read_lines(proc):
    """A list that a thread fills with ``proc``'s output lines as they come (for ``finish_reading``)."""
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.reader = reader
    return lines


def finish_reading(proc, lines, timeout=240):
    """``finish`` for a process whose output ``read_lines`` collects."""
    proc.wait(timeout=timeout)
    proc.reader.join(timeout=30)
    return proc.returncode, " ".join("".join(lines).split())


def cli(*args, timeout=240, **kw):
    return finish(start(*args, **kw), timeout)


def invoke(*args):
    """The CLI in this process (fast: for status and for refusals)."""
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())


def records(out, suite="toy"):
    return {p.stem: json.loads(p.read_text()) for p in sorted((Path(out) / "runs" / suite).glob("*.json"))}


def same_record(record):
    """Everything a run's record says but its wall times and when (and from which commit) it was written.

    Other work is committed to this checkout while a test runs, so the commit is left out with the
    timestamps; the device, library versions, thread count and dataset provenance must match.
    """
    out = {
        k: v
        for k, v in record.items()
        if k not in ("timing", "metric_seconds", "provenance", "evaluation_provenance")
    }
    for key in ("provenance", "evaluation_provenance"):
        out[key] = {
            k: v
            for k, v in (record.get(key) or {}).items()
            if k not in ("created", "git_commit", "git_dirty")
        }
    return out


def done_lines(output):
    """Run ids a sweep's log says it trained and recorded."""
    return re.findall(r"\bdone (\S+) toy_squares/", output)


def status_rows(output):
    """The `vaebench status` table as {suite: {column: cell}}."""
    lines = [line for line in output.splitlines() if "│" in line or "┃" in line]
    header = [c.strip() for c in lines[0].strip("┃ ").split("┃")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def status(out, *extra):
    result = runner.invoke(app, ["status", "--out", str(out), *map(str, extra)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return status_rows(result.output), result.output


def suite_run_ids(suite_path):
    return [s.run_id for s in expand_suite(load_suite(str(suite_path)))]


def job_ids(out, suite="toy"):
    path = Path(out) / "slurm" / suite / "jobs.json"
    return json.loads(path.read_text())["job_ids"] if path.exists() else []


def job_state(job_id):
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%T", "-j", job_id], capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip()


def scontrol_show(job_id):
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


def wait_for(condition, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def cancel_jobs():
    """Output directories whose submitted SLURM jobs are cancelled at the end, however the test ends."""
    outs = []
    yield outs
    ids = sorted({j.split("_")[0] for out in outs for j in job_ids(out)})
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


# -- SLURM: the same records as a local run ---------------------------------------------
@pytest.mark.slow  # needs the SLURM cluster
def test_slurm_writes_the_records_of_a_local_run(toy_suite, slurm_cluster, tmp_path, cancel_jobs):
    suite = write_suite(toy_suite)
    local_out, slurm_out = tmp_path / "local", tmp_path / "slurm"
    cancel_jobs.append(slurm_out)
    local = start("run", "--suite", suite, "--device", "cpu", "--out", local_out)
    code, output = cli("run", "--suite", suite, "--device", "cpu", "--backend", "slurm", "--out", slurm_out)
    assert code == 0, output
    assert "Submitted 2 array task(s) for 2 run(s) of suite toy" in output
    assert "2 run(s) completed" in output, output
    code, local_output = finish(local)
    assert code == 0, local_output

    local_records, slurm_records = records(local_out), records(slurm_out)
    assert set(local_records) == set(slurm_records) == set(suite_run_ids(suite))
    for run_id, record in local_records.items():
        assert slurm_records[run_id]["status"] == "ok"
        assert same_record(slurm_records[run_id]) == same_record(record), run_id
        assert slurm_records[run_id]["provenance"]["device"] == "cpu"

    # the jobs are known to status (finished ones, while the controller remembers them), and a rerun
    # submits nothing
    rows, _ = status(slurm_out, "--suite", suite)
    assert rows["toy"]["recorded ok"] == "2" and rows["toy"]["pending"] == "0"
    assert rows["toy"]["SLURM jobs"] == "2 completed"
    code, output = invoke(
        "run", "--suite", suite, "--device", "cpu", "--backend", "slurm", "--out", slurm_out
    )
    assert code == 0 and "Nothing to submit: every run is recorded" in output, output
    assert len(job_ids(slurm_out)) == 2


@pytest.mark.slow
def test_the_smoke_suite_through_slurm_writes_the_records_of_a_local_run(
    slurm_cluster, tmp_path, cancel_jobs
):
    """The smoke suite on the SLURM backend records what a local run records.

    `--suite smoke --backend slurm` against a local run: several minutes on 2 CPUs (every metric on
    dSprites).
    """
    local_out, slurm_out = tmp_path / "local", tmp_path / "slurm"
    cancel_jobs.append(slurm_out)
    args = ("run", "--suite", "smoke", "--device", "cpu")
    local = start(*args, "--out", local_out)
    code, output = cli(*args, "--backend", "slurm", "--out", slurm_out, timeout=1800)
    assert code == 0, output
    code, local_output = finish(local, timeout=1800)
    assert code == 0, local_output
    local_records, slurm_records = records(local_out, "smoke"), records(slurm_out, "smoke")
    assert len(local_records) == 2 and set(local_records) == set(slurm_records)
    for run_id, record in local_records.items():
        assert same_record(slurm_records[run_id]) == same_record(record), run_id


# -- SLURM: preempted, requeued, resumed ------------------------------------------------
@pytest.mark.slow  # needs the SLURM cluster
def test_a_preempted_task_is_requeued_and_ends_with_the_record_of_an_uninterrupted_run(
    toy_suite, slurm_cluster, tmp_path, cancel_jobs
):
    """A --no-wait SLURM task preempted after its checkpoint requeues and resumes from it.

    --no-wait prints the job and returns; status shows it; SIGUSR2 (SLURM's preemption warning, as
    submitit's ``job._interrupt()`` sends it) once the run has checkpointed makes submitit checkpoint
    and requeue the task.
    """
    suite = write_suite(toy_suite, steps=150, checkpoint_every=10, models="scaleout_gated = [{}]")
    (run_id,) = suite_run_ids(suite)
    out = tmp_path / "slurm"
    cancel_jobs.append(out)
    reference = start("run", "--suite", suite, "--device", "cpu", "--out", tmp_path / "local", cli=GATED_CLI)
    gated_env, gate, waiting = gated(tmp_path)

    code, output = cli(
        "run", "--suite", suite, "--device", "cpu", "--backend", "slurm", "--no-wait", "--out", out,
        cli=GATED_CLI, env=gated_env,
    )  # fmt: skip
    assert code == 0, output
    (job,) = job_ids(out)
    assert f"job {job.split('_')[0]}" in output and "vaebench status" in output, output
    assert not records(out)  # it returned before the run ended
    rows, _ = status(out, "--suite", suite)
    assert rows["toy"]["SLURM jobs"] in ("1 pending", "1 running", "1 configuring"), rows

    checkpoint = out / "checkpoints" / "toy" / f"{run_id}.pt"
    wait_for(waiting.exists, 120, f"the task to wait at step {GATE_STEP}")
    assert checkpoint.exists()
    rows, text = status(out, "--suite", suite)
    assert rows["toy"]["claimed (running)"] == "1" and rows["toy"]["pending"] == "0", text
    assert f"SLURM job {job}" in text and rows["toy"]["SLURM jobs"] == "1 running", text

    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
    # A requeued job waits (BeginTime) before it may start again; let it start now.
    requeued = lambda: scontrol_show(job).get("Restarts", "0") != "0" and job_state(job) == "PENDING"  # noqa: E731
    wait_for(requeued, 60, "the task to be requeued")
    gate.touch()  # the requeued task goes past step 25
    # Not StartTime=now: slurmd revokes the killed run's credential with a one-second resolution,
    # and a relaunch within the same second is killed as "Job credential revoked" (exit 1, FAILED;
    # slurmctld.log says so). Three seconds on, the new credential is past the revocation.
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+3"], check=True, timeout=30)
    wait_for(lambda: job_state(job) == "COMPLETED", 180, "the requeued task to complete", interval=0.5)

    log = Path(out, "slurm", "toy", job)
    err = "".join(p.read_text() for p in log.glob("*_log.err"))
    assert "Caught signal SIGUSR2" in err, err
    (record,) = records(out).values()
    assert record["status"] == "ok"
    assert record["timing"]["resumed_from_step"] == 20  # the last checkpoint before the gate
    assert scontrol_show(job)["Restarts"] == "1"

    code, ref_output = finish(reference)
    assert code == 0, ref_output
    (ref,) = records(tmp_path / "local").values()
    assert ref["timing"]["resumed_from_step"] == 0
    assert same_record(record) == same_record(ref)

    rows, _ = status(out, "--suite", suite)
    assert rows["toy"]["recorded ok"] == "1" and rows["toy"]["claimed (running)"] == "0"
    assert rows["toy"]["SLURM jobs"] == "1 completed"


@pytest.mark.slow  # needs the SLURM cluster
def test_a_followed_sweep_waits_through_a_requeue_and_reports_the_resumed_run(
    toy_suite, slurm_cluster, tmp_path, cancel_jobs
):
    """A waiting SLURM run follows a preempted, requeued task until it records the run.

    Without --no-wait, a task preempted and requeued mid-run is not taken for finished (submitit
    counts REQUEUED, PENDING and PREEMPTED as incomplete); the command returns once the requeued task
    has resumed and recorded the run.
    """
    suite = write_suite(toy_suite, steps=150, checkpoint_every=10, models="scaleout_gated = [{}]")
    (run_id,) = suite_run_ids(suite)
    out = tmp_path / "slurm"
    cancel_jobs.append(out)
    gated_env, gate, waiting = gated(tmp_path)
    follower = start(
        "run", "--suite", suite, "--device", "cpu", "--backend", "slurm", "--out", out,
        cli=GATED_CLI, env=gated_env,
    )  # fmt: skip
    lines = read_lines(follower)
    checkpoint = out / "checkpoints" / "toy" / f"{run_id}.pt"
    wait_for(waiting.exists, 120, f"the task to wait at step {GATE_STEP}")
    assert checkpoint.exists()
    (job,) = job_ids(out)
    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
    requeued = lambda: scontrol_show(job).get("Restarts", "0") != "0" and job_state(job) == "PENDING"  # noqa: E731
    wait_for(requeued, 60, "the task to be requeued")

    # The follower says each change of its tasks' states (without a terminal): once it has said the
    # task is pending after running, it has seen the requeued task and taken it for unfinished.
    def saw_requeue():
        said = [line for line in list(lines) if "runs recorded;" in line]
        running = [i for i, line in enumerate(said) if "1 running" in line]
        return running and any("1 pending" in line for line in said[running[0] + 1 :])

    wait_for(saw_requeue, 60, "the follower to report the requeued task pending")
    assert follower.poll() is None, "the followed sweep returned while its task was requeued"
    gate.touch()
    # now+3, not now: a relaunch in the second of the kill is refused (see the test above)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+3"], check=True, timeout=30)

    code, output = finish_reading(follower, lines)
    assert code == 0, output
    assert "1 run(s) completed" in output, output
    (record,) = records(out).values()
    assert record["status"] == "ok" and record["timing"]["resumed_from_step"] == 20
    assert scontrol_show(job)["Restarts"] == "1"

    reference = start("run", "--suite", suite, "--device", "cpu", "--out", tmp_path / "local", cli=GATED_CLI)
    code, ref_output = finish(reference)
    assert code == 0, ref_output
    (ref,) = records(tmp_path / "local").values()
    assert same_record(record) == same_record(ref)
    rows, _ = status(out, "--suite", suite)
    assert rows["toy"]["recorded ok"] == "1" and rows["toy"]["SLURM jobs"] == "1 completed"


def test_a_slurm_task_runs_its_pack_and_writes_the_records_of_a_local_run(toy_suite, tmp_path):
    """The task's code, called here without a cluster: ``run_pack`` on its pack, nothing else."""
    suite = write_suite(toy_suite, steps=10)
    local = tmp_path / "local"
    assert invoke("run", "--suite", suite, "--out", local, "--device", "cpu")[0] == 0
    out = tmp_path / "task"
    for spec in expand_suite(load_suite(str(suite))):
        outcome = PackTask(str(out), [spec.to_dict()], "cpu", False, False, [])()
        assert outcome["completed"] == [spec.run_id] and not outcome["failed"]
    assert {i: same_record(r) for i, r in records(out).items()} == {
        i: same_record(r) for i, r in records(local).items()
    }


# -- shards and claims: two processes at once ------------------------------------------
@pytest.mark.slow  # trains through subprocesses
def test_two_shards_at_once_train_every_run_exactly_once(toy_suite, tmp_path):
    suite = write_suite(toy_suite, steps=10)
    out = tmp_path / "out"
    procs = [start("run", "--suite", suite, "--shard", f"{i}/2", "--out", out) for i in range(2)]
    results = [finish(p) for p in procs]
    for code, output in results:
        assert code == 0, output
    trained = [done_lines(output) for _, output in results]
    plan = make_plan(expand_suite(load_suite(str(suite))), 1)
    for i in range(2):
        assert sorted(trained[i]) == sorted(s.run_id for s in plan.select_shard(i, 2).runs)
    assert sorted(trained[0] + trained[1]) == sorted(suite_run_ids(suite))  # each exactly once
    recs = records(out)
    assert set(recs) == set(suite_run_ids(suite)) and all(r["status"] == "ok" for r in recs.values())
    assert all(r["timing"]["resumed_from_step"] == 0 for r in recs.values())


@pytest.mark.slow  # trains through subprocesses
def test_two_processes_with_the_same_selection_train_every_run_exactly_once(toy_suite, tmp_path):
    suite = write_suite(toy_suite, steps=10)
    out = tmp_path / "out"
    procs = [start("run", "--suite", suite, "--out", out) for _ in range(2)]
    results = [finish(p) for p in procs]
    for code, output in results:
        assert code == 0, output
    trained = done_lines(results[0][1]) + done_lines(results[1][1])
    assert sorted(trained) == sorted(suite_run_ids(suite)), results  # the claims kept them apart
    recs = records(out)
    assert set(recs) == set(suite_run_ids(suite)) and all(r["status"] == "ok" for r in recs.values())


# -- the plan: shards partition it, and it is the same in every process -----------------
@pytest.fixture(scope="module")
def shipped_specs():
    return {name: expand_suite(load_suite(name)) for name in ("quick", "smoke", "paper")}


@pytest.mark.parametrize(
    ("suite", "pack"),
    [
        ("quick", 1),
        ("quick", 36),
        ("smoke", 1),
        pytest.param("paper", 36, marks=pytest.mark.slow),  # 2520 runs in 483 packs (7 s)
        pytest.param("paper", 1, marks=pytest.mark.slow),
    ],
)
def test_shards_partition_the_plan(shipped_specs, suite, pack):
    plan = make_plan(shipped_specs[suite], pack)
    all_packs = [p.pack_id for p in plan.packs]
    assert len(set(all_packs)) == len(all_packs)
    for n in range(1, 8):
        shards = [plan.select_shard(i, n) for i in range(n)]
        packs = [p.pack_id for s in shards for p in s.packs]
        runs = [r.run_id for s in shards for r in s.runs]
        assert len(packs) == len(set(packs)) and sorted(packs) == sorted(all_packs), n  # disjoint, whole
        assert sorted(runs) == sorted(r.run_id for r in plan.runs), n
        assert [s.shard for s in shards] == [(i, n) for i in range(n)]
        sizes = [len(s.packs) for s in shards]
        assert max(sizes) - min(sizes) <= 1  # round robin


@pytest.mark.slow  # two CLI subprocesses (5 s)
def test_the_plan_is_the_same_in_two_fresh_processes_and_pack_ids_hash_their_runs(tmp_path):
    args = ("plan", "--suite", "quick", "--pack", "3", "--json", "--no-estimate", "--device", "cpu")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cli", *args, "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(PYTHONHASHSEED=seed),  # str hashing differs between the two processes
            cwd=tmp_path,
        )
        for seed in ("1", "2")
    ]
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
        outputs.append([json.loads(line) for line in stdout.splitlines()])
    first, second = outputs
    assert [(r["run_id"], r["pack_id"]) for r in first] == [(r["run_id"], r["pack_id"]) for r in second]
    assert len({r["pack_id"] for r in first}) > 1 and len(first) > len({r["pack_id"] for r in first})
    members: dict[str, list[str]] = {}
    for row in first:
        members.setdefault(row["pack_id"], []).append(row["run_id"])
    for pack_id, run_ids in members.items():
        assert pack_id == "pack-" + hashlib.sha256("\n".join(run_ids).encode()).hexdigest()[:12]
    assert [r["run_id"] for r in first] == [
        s.run_id for s in make_plan(expand_suite(load_suite("quick")), 3).runs
    ]


# -- claims --------------------------------------------------------------------------
HOLD = """
import sys, time
from benchmarks.runner.claims import try_claim
claim = try_claim(sys.argv[1], sys.argv[2], sys.argv[3])
print("held" if claim else "busy", flush=True)
if claim and sys.argv[4:] == ["hold"]:
    time.sleep(600)
"""


def hold_claim(out, suite, run_id, hold=True):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out), suite, run_id, *(["hold"] if hold else [])],
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    return proc, proc.stdout.readline().strip()


@pytest.mark.slow  # three holder processes, one killed (11 s)
def test_a_claim_excludes_other_processes_and_a_killed_holders_claim_is_recovered(tmp_path):
    out = tmp_path / "out"
    holder, answer = hold_claim(out, "toy", "run-a")
    try:
        assert answer == "held"
        other, answer = hold_claim(out, "toy", "run-a", hold=False)
        assert answer == "busy" and other.wait(timeout=30) == 0
        assert claim_holder(out, "toy", "run-a")["pid"] == holder.pid
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    note = note_path(claim_path(out, "toy", "run-a"))
    assert note.exists()  # the killed holder left its note behind...
    assert claim_holder(out, "toy", "run-a") is None and not note.exists()  # ...which is stale
    nxt, answer = hold_claim(out, "toy", "run-a", hold=False)
    assert answer == "held" and nxt.wait(timeout=30) == 0


@pytest.mark.slow  # a claim-holding process beside a sweep (6 s)
def test_status_after_a_local_run_and_a_claimed_run_is_not_trained_twice(toy_suite, tmp_path):
    """vae is recorded, scaleout_nan fails, beta_vae is claimed by another process: left to it."""
    suite = write_suite(
        toy_suite, steps=10, models="vae = [{}]\nbeta_vae = [{ beta = 2.0 }]\nscaleout_nan = [{}]"
    )
    by_model = {s.model: s.run_id for s in expand_suite(load_suite(str(suite)))}
    out = tmp_path / "out"
    holder, answer = hold_claim(out, "toy", by_model["beta_vae"])
    try:
        assert answer == "held"
        code, output = invoke("run", "--suite", suite, "--out", out)
        assert code == 1, output  # the failed run
        assert f"{by_model['beta_vae']} is being trained by another process: left to it" in output
        assert "1 run(s) left to the other process(es)" in output
        assert set(records(out)) == {by_model["vae"], by_model["scaleout_nan"]}

        rows, text = status(out, "--suite", suite)
        assert rows["toy"] == {
            "suite": "toy",
            "runs": "3",
            "recorded ok": "1",
            "failed": "1",
            "claimed (running)": "1",
            "pending": "0",
            "SLURM jobs": "-",
        }
        assert f"toy/{by_model['beta_vae']}: claimed by" in text and f"pid {holder.pid}" in text
        rows, _ = status(out)  # a suite known only from its records: no plan, so "?"
        assert rows["toy"]["runs"] == "?" and rows["toy"]["recorded ok"] == "1"
    finally:
        holder.kill()
        holder.wait(timeout=30)
    rows, _ = status(out, "--suite", suite)
    assert rows["toy"]["claimed (running)"] == "0" and rows["toy"]["pending"] == "1"
    code, output = invoke("run", "--suite", suite, "--out", out)
    assert code == 1 and done_lines(output) == [by_model["beta_vae"]], output  # nan: recorded failed


# -- bad input: exit 2 before anything is submitted or trained --------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "3/2"], "--shard 3/2: need 0 <= I < N"),
        (["--shard", "x"], "--shard must be I/N with integers 0 <= I < N"),
        (["--shard", "0/0"], "need 0 <= I < N and N >= 1"),
        (["--backend", "kubernetes"], "unknown backend 'kubernetes'. Known backends: local, slurm"),
        (["--partition", "debug"], "--partition need(s) a cluster backend (e.g. --backend slurm)"),
        (["--no-wait"], "--no-wait need(s) a cluster backend"),
        (["--backend", "slurm", "--shard", "0/2"], "--shard is for schedulers driven by hand"),
    ],
)
def test_bad_scale_out_input_exits_2_before_anything_runs(toy_suite, tmp_path, args, message):
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", write_suite(toy_suite), "--out", out, *args)
    assert code == 2 and message in output, output
    assert not out.exists()


def test_slurm_without_sbatch_exits_2(toy_suite, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", write_suite(toy_suite), "--backend", "slurm", "--out", out)
    assert code == 2 and "--backend slurm needs SLURM's sbatch on PATH" in output, output
    assert not out.exists()


def test_slurm_without_submitit_names_the_extra(monkeypatch):
    from benchmarks.runner.backends import BackendError, BackendOptions, get_backend

    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(BackendError, match=re.escape('pip install "vaebench[slurm]"')):
        get_backend("slurm", BackendOptions())


@pytest.mark.slow  # a CLI subprocess (4 s); test_slurm_without_submitit_names_the_extra runs by default
def test_slurm_without_submitit_exits_2_naming_the_extra(toy_suite, tmp_path):
    out = tmp_path / "out"
    code = (
        "import runpy, sys; sys.modules['submitit'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_module('benchmarks.cli', run_name='__main__')"
    )
    args = ["run", "--suite", str(write_suite(toy_suite)), "--backend", "slurm", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", code, "vaebench", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=240,
    )
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "--backend slurm needs submitit, which is not installed" in message, (
        message
    )
    assert not out.exists()
    assert 'pip install "vaebench[slurm]"' in message, message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partition", "no_such_partition"], "invalid partition"),
        (["--cpus-per-job", "4096"], "SLURM refuses tasks with"),
    ],
)
@pytest.mark.slow  # needs the SLURM cluster
def test_slurm_refuses_what_the_cluster_cannot_run_before_submitting(
    toy_suite, slurm_cluster, tmp_path, args, message
):
    out = tmp_path / "out"
    before = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    code, output = invoke("run", "--suite", write_suite(toy_suite), "--backend", "slurm", "--out", out, *args)
    assert code == 2 and message.lower() in output.lower(), output
    assert not out.exists()  # nothing submitted: submitit writes its folder before sbatch
    assert subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout == before


# -- the skip rule ----------------------------------------------------------------------
def test_a_slurm_test_that_cannot_run_is_skipped_but_fails_under_ci(monkeypatch):
    # A copy of this folder's conftest, loaded from its path: under pytest's default import mode
    # the module it is registered as depends on which other conftest.py files were collected.
    import importlib.util

    spec = importlib.util.spec_from_file_location("runner_conftest", HERE / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="sbatch is not on PATH"):
        conftest._skip_or_fail("SLURM's sbatch is not on PATH")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest._skip_or_fail("SLURM's sbatch is not on PATH")
