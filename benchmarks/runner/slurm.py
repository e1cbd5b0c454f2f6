"""SLURM through submitit: one job-array task per pack, each running exactly the code of a local run.

``vaebench run --backend slurm`` plans the suite here (the login node), skips
the packs whose runs are all recorded, and submits one array task per pack
with ``submitit`` (``pip install "vaebench[slurm]"``). A task calls
``execute.run_pack`` on its pack's owed runs, with the same claims and records as a local
run, into the output directory (which must be on a filesystem the nodes
share). A timeout or a preemption requeues the task through submitit's own
checkpointing (``PackTask.checkpoint``): submitit owns the signals inside the
job (vaebench installs no SIGTERM/SIGINT handler there), and the requeued task
resumes its runs from their checkpoints, ending with the records of an
uninterrupted run.

Without ``--no-wait`` the command follows the jobs (records appearing, job
states from ``squeue``) and exits as a local run does; with it, it prints the
job ids and returns. Submitted job ids are kept under ``slurm/<suite>/jobs.json``
for ``vaebench status``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.runner.backends import (
    CLUSTER_OPTIONS,
    Backend,
    BackendError,
    BackendOptions,
    register_backend,
)
from benchmarks.runner.data import DatasetCache
from benchmarks.runner.evaluator import resolve_evaluation
from benchmarks.runner.execute import run_pack
from benchmarks.runner.plan import make_plan, pack_size
from benchmarks.runner.progress import SweepProgress
from benchmarks.runner.records import record_path
from benchmarks.runner.spec import RunSpec, definition_modules, import_definitions
from benchmarks.runner.state import ForcedSweep, SweepResult, run_states
from benchmarks.runner.train import resolve_device
from vaebench.atomic import atomic_write_text
from vaebench.paths import check_component, path_under

# submitit is optional (the "slurm" extra): it is imported where a SLURM run needs it, so that the
# runner and a local sweep work without it.

__all__ = ["SlurmBackend", "PackTask", "slurm_job_states", "submitted_jobs"]

SUBMITIT_HINT = 'pip install "vaebench[slurm]"'
DEFAULT_TIMEOUT_MIN = 60 * 24


class PackTask:
    """One array task: one pack's owed runs through ``run_pack``; checkpointable for submitit."""

    def __init__(
        self,
        out_dir: str,
        specs: list[dict],
        device: str,
        force: bool,
        retry_failed: bool,
        modules: list[str],
        fit_jobs: int | None = None,
        channels_last: bool = False,
        encode_batch: int | None = None,
    ):
        self.out_dir, self.specs, self.device = out_dir, specs, device
        self.force, self.retry_failed = force, retry_failed
        self.modules = modules  # where the pack's models and datasets are defined
        # How the evaluation runs, resolved on the node (its cores); one pack a task, so no workers.
        self.fit_jobs, self.channels_last, self.encode_batch = fit_jobs, channels_last, encode_batch

    def __call__(self) -> dict:
        # Plug-ins registered by import (not by entry point) are known on the node as they were
        # where the plan was made.
        """Run the pack on the node: train its owed runs; the sweep's result as a dict."""
        for module in self.modules:
            import_definitions(module)
        specs = [RunSpec.from_dict(s) for s in self.specs]
        out_dir, device = Path(self.out_dir), resolve_device(self.device)
        console = Console(file=sys.stdout, force_terminal=False, width=140)
        # A forced task keeps its promise on disk, so its requeued self resumes rather than restarts.
        forced = ForcedSweep(out_dir, specs) if self.force else None
        result = SweepResult()
        progress = SweepProgress(console, specs, {}, interval=30.0)
        # No signal handler: submitit's stay in charge of SIGUSR2/SIGTERM inside the job.
        with progress:
            run_pack(
                specs,
                out_dir,
                device,
                DatasetCache(device, console),
                progress,
                result,
                retry_failed=self.retry_failed,
                forced=forced,
                console=console,
                options=resolve_evaluation(device, self.fit_jobs, 0, self.channels_last, self.encode_batch)[
                    0
                ],
            )
        return result.to_dict()

    def checkpoint(self, *args, **kwargs):
        """Requeue the same task: its runs resume from their own checkpoints (submitit's protocol)."""
        import submitit

        return submitit.helpers.DelayedSubmission(PackTask(**self.__dict__))


def submitted_jobs(out_dir: Path, suite: str) -> list[str]:
    """The SLURM job ids submitted for ``suite``, as ``slurm/<suite>/jobs.json`` lists them."""
    path = path_under(out_dir, "slurm", check_component(suite, "suite name"), "jobs.json")
    try:
        return json.loads(path.read_text())["job_ids"]
    except (OSError, json.JSONDecodeError, KeyError):
        return []


def slurm_job_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> state, from ``squeue``.

    Queued and running jobs, and finished ones until the controller forgets them after its MinJobAge
    (300 s by default).
    """
    if not job_ids or shutil.which("squeue") is None:
        return {}
    base = sorted({j.split("_")[0] for j in job_ids})
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(base)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    states = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


# squeue states of a task that has not ended yet (SLURM's JOB STATE CODES)
_LIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"})
_SETTLE_SECONDS = 120.0


class QuietSacct(logging.Filter):
    """A logging filter that drops submitit's repeated "Bypassing sacct error" warning.

    A cluster without job accounting repeats that warning at every poll; this says once instead where
    the job states come from (squeue, which needs no accounting).
    """

    def __init__(self, say):
        super().__init__()
        self.say, self.dropped = say, 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in record.getMessage():
            return True
        if not self.dropped:
            self.say(
                "[dim]sacct is not available on this cluster (no job accounting): task states are read "
                "from squeue instead.[/]"
            )
        self.dropped += 1
        return False


@register_backend("slurm")
class SlurmBackend(Backend):
    """A SLURM cluster through submitit: one array task per pack."""

    name = "slurm"
    accepts = CLUSTER_OPTIONS

    def __init__(self, options: BackendOptions, console: Console | None = None):
        super().__init__(options, console)

    def check(self) -> None:
        """Refuse what SLURM cannot run: --shard, no submitit, no sbatch, bad resources."""
        super().check()
        if self.options.shard is not None:
            raise BackendError("--shard is for schedulers driven by hand; --backend slurm submits every pack")
        if self.options.eval_workers:
            raise BackendError(
                "--eval-workers scores a pack while the next one trains in the same process; a SLURM "
                "task trains one pack, so it scores in its own process (--array-parallelism runs tasks "
                "side by side)"
            )
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise BackendError(
                f"--backend slurm needs submitit, which is not installed: {SUBMITIT_HINT}"
            ) from None
        if shutil.which("sbatch") is None:
            raise BackendError(
                "--backend slurm needs SLURM's sbatch on PATH, and it is not there: run on a login node "
                "of your cluster (or start a local one with .ci/local-slurm start)"
            )
        for name in ("gpus_per_job", "cpus_per_job", "timeout_min", "array_parallelism"):
            value = getattr(self.options, name)
            if value is not None and value < (0 if name == "gpus_per_job" else 1):
                raise BackendError(f"--{name.replace('_', '-')} must be a positive integer; got {value}")
        if self.options.mem_gb is not None and not self.options.mem_gb > 0:
            raise BackendError(f"--mem-gb must be > 0; got {self.options.mem_gb}")
        self._test_submission()

    def _test_submission(self) -> None:
        """Ask sbatch whether the cluster accepts the tasks' resource request, submitting nothing.

        With ``--test-only``, so that a bad partition or more GPUs, CPUs or memory than a node has are
        refused up front.
        """
        o = self.options
        flags = [f"--time={o.timeout_min or DEFAULT_TIMEOUT_MIN}"]
        if o.partition:
            flags.append(f"--partition={o.partition}")
        if o.gpus_per_job:
            flags.append(f"--gpus-per-node={o.gpus_per_job}")
        if o.cpus_per_job:
            flags.append(f"--cpus-per-task={o.cpus_per_job}")
        if o.mem_gb:
            flags.append(f"--mem={int(o.mem_gb * 1024)}M")
        try:
            out = subprocess.run(
                ["sbatch", "--test-only", *flags, "--wrap=true"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendError(f"sbatch --test-only {' '.join(flags)} did not answer: {exc}") from None
        if out.returncode != 0:
            why = " ".join(line.strip() for line in out.stderr.splitlines() if line.strip())
            raise BackendError(f"SLURM refuses tasks with {' '.join(flags)}: {why or 'no reason given'}")

    @property
    def job_device(self) -> str:
        """The device the jobs train on: the one asked for, else cuda when GPUs are requested."""
        if self.options.device != "auto":
            return self.options.device
        return "cuda" if (self.options.gpus_per_job or 0) > 0 else "cpu"

    def pack_size(self) -> int:
        """The pack size for the jobs' device."""
        return pack_size(self.options.pack, "cuda" if self.job_device.startswith("cuda") else "cpu")

    def run(self, specs, out_dir: Path):
        """Submit one array task per pack and, unless --no-wait, follow the jobs to the end."""
        import submitit  # the optional extra (see the imports)

        o = self.options
        out_dir = Path(out_dir).resolve()
        plan = make_plan(specs, self.pack_size())
        states = run_states(plan.runs, out_dir, force=o.force, retry_failed=o.retry_failed)
        result = SweepResult()
        owed = {s.run_id for s in result.tally(plan.runs, states, out_dir)}
        packs = [[s for s in p.runs if s.run_id in owed] for p in plan.packs]
        packs = [p for p in packs if p]
        if not packs:
            self.console.print("Nothing to submit: every run is recorded.")
            return result
        suite = plan.runs[0].suite
        folder = path_under(out_dir, "slurm", check_component(suite, "suite name"))
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
        # --requeue: a preempted or failed node's task goes back to the queue (submitit has no option for it).
        params = {
            "timeout_min": o.timeout_min or DEFAULT_TIMEOUT_MIN,
            "name": f"vaebench-{suite}",
            "slurm_additional_parameters": {"requeue": True},
        }
        if o.partition:
            params["slurm_partition"] = o.partition
        if o.gpus_per_job:
            params["gpus_per_node"] = o.gpus_per_job
        if o.cpus_per_job:
            params["cpus_per_task"] = o.cpus_per_job
        if o.mem_gb:
            params["mem_gb"] = o.mem_gb
        if o.array_parallelism:
            params["slurm_array_parallelism"] = o.array_parallelism
        executor.update_parameters(**params)
        tasks = [
            PackTask(
                str(out_dir),
                [s.to_dict() for s in p],
                self.job_device,
                o.force,
                o.retry_failed,
                sorted({m for s in p for m in definition_modules(s)}),
                o.fit_jobs,
                o.channels_last,
                o.encode_batch,
            )
            for p in packs
        ]
        try:
            jobs = executor.submit_array(tasks)
        except submitit.core.utils.FailedJobError as exc:
            raise BackendError(f"sbatch refused the tasks: {' '.join(str(exc).split())}") from None
        job_ids = [job.job_id for job in jobs]
        folder.mkdir(parents=True, exist_ok=True)
        known = submitted_jobs(out_dir, suite)
        atomic_write_text(folder / "jobs.json", json.dumps({"job_ids": known + job_ids}, indent=1) + "\n")
        self.console.print(
            f"Submitted {len(jobs)} array task(s) for {sum(len(p) for p in packs)} run(s) of suite {suite}: "
            f"job {job_ids[0].split('_')[0]} ({', '.join(job_ids[:4])}{', ...' * (len(job_ids) > 4)}); "
            f"logs under {folder}."
        )
        if o.no_wait:
            self.console.print(f"Follow them with `vaebench status --suite {suite} --out {out_dir}`.")
            result.submitted = job_ids
            return result
        return self._follow(jobs, packs, out_dir, result)

    def _follow(self, jobs, packs, out_dir: Path, result: SweepResult) -> SweepResult:
        runs = [s for p in packs for s in p]
        tty = self.console.is_terminal
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[states]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not tty,
        )
        last_line = 0.0
        last_said = ""
        quiet = QuietSacct(self.console.print)
        submitit_log = logging.getLogger("submitit")
        submitit_log.addFilter(quiet)
        with progress:
            task = progress.add_task("runs recorded", total=len(runs), states="")
            while True:
                done = sum(job.done() for job in jobs)
                recorded = sum(record_path(out_dir, s.suite, s.run_id).exists() for s in runs)
                states = slurm_job_states([j.job_id for j in jobs])
                counts: dict[str, int] = {}
                for state in states.values():
                    counts[state] = counts.get(state, 0) + 1
                summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
                summary = (
                    f"{summary}, {done}/{len(jobs)} tasks finished"
                    if summary
                    else f"{done}/{len(jobs)} tasks finished"
                )
                progress.update(task, completed=recorded, states=summary)
                # Without a terminal: a line when anything changes (a task starting, preempted and
                # requeued, ending; a run recorded), and every 30 s to show the command is alive.
                said = f"{recorded}/{len(runs)} runs recorded; {summary}"
                if not tty and (said != last_said or time.monotonic() - last_line > 30):
                    last_line, last_said = time.monotonic(), said
                    self.console.print(f"[{time.strftime('%H:%M:%S')}] {said}")
                if done == len(jobs):
                    break
                time.sleep(2)
        # a task's result is written before its process exits, so the controller can still list it as
        # running; wait (bounded) until it lists every task as ended, so that `status` right after this
        # command says what happened, not what was happening
        deadline = time.monotonic() + _SETTLE_SECONDS
        while time.monotonic() < deadline:
            states = slurm_job_states([j.job_id for j in jobs])
            if not any(state in _LIVE_STATES for state in states.values()):
                break
            time.sleep(1)
        for job in jobs:
            try:
                outcome = job.result()
            except Exception as exc:  # the task itself crashed: its runs are not recorded
                result.unreadable.append(
                    f"job {job.job_id} failed: {str(exc).splitlines()[0]} (log: {job.paths.stderr})"
                )
                continue
            result.add(SweepResult.from_dict(outcome))
        submitit_log.removeFilter(quiet)
        return result
