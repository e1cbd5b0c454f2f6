"""A sweep: the loop over a plan's packs, each run by ``execute.run_pack``, skipping what is recorded.

Nothing is lost: each record is written atomically when its run ends; a run
whose loss turns non-finite is recorded as failed and the sweep goes on; SIGINT
or SIGTERM checkpoints the current runs and stops, and the same command resumes
(``--force`` included: a forced sweep remembers which runs it still owes, so
its rerun resumes instead of starting over). Processes that share an output
directory claim each run before training it (``claims``), so shards, SLURM
array tasks or two terminals never train the same run twice.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.runner.data import DatasetCache
from benchmarks.runner.display import estimates, print_estimate, print_todo
from benchmarks.runner.evaluate import DEFAULT_OPTIONS, EvaluationOptions
from benchmarks.runner.evaluator import InlineEvaluator, PooledEvaluator
from benchmarks.runner.execute import blocked_datasets, run_pack
from benchmarks.runner.plan import make_plan
from benchmarks.runner.progress import SweepProgress
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.state import ForcedSweep, SweepResult, run_states
from benchmarks.runner.train import Interrupted

__all__ = ["run_sweep", "stop_on_signals"]


@contextmanager
def stop_on_signals(enabled: bool = True, console: Console | None = None) -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM into a flag the training loop polls, so it can checkpoint and stop.

    The first signal is acknowledged at once (training checkpoints at its next step; an evaluation
    under way finishes and writes its record); a second stops at once, saying so. Disabled inside a
    submitit job: submitit owns the signals there (SIGUSR2 checkpoints and requeues the task,
    SIGTERM is bypassed), and overriding them would break requeueing.
    """
    received: list[int] = []
    previous = {}
    say = (console or Console(stderr=True)).print

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if received:  # a second signal: stop now
            say(
                f"[red]{name} again: stopping now.[/] Records already written are kept; a run being "
                "evaluated has no record yet, and the same command resumes it from its last checkpoint."
            )
            raise KeyboardInterrupt
        received.append(signum)
        say(
            f"[yellow]{name} received:[/] a run in training checkpoints at its next step; a run being "
            "evaluated finishes and writes its record; then vaebench stops (exit 130). Send it again "
            "to stop at once."
        )

    if enabled:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. a test runner's worker)
                pass
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_sweep(
    specs: list[RunSpec],
    out_dir: Path,
    device: torch.device,
    pack: int,
    *,
    force: bool = False,
    retry_failed: bool = False,
    shard: tuple[int, int] | None = None,
    console: Console | None = None,
    data: DatasetCache | None = None,
    progress_interval: float = 30.0,
    estimate: bool = True,
    options: EvaluationOptions = DEFAULT_OPTIONS,
    eval_workers: int = 0,
) -> SweepResult:
    """Train and evaluate every run of the plan that is owed (``state.run_states``).

    ``force`` reruns every run (resumably); ``retry_failed`` reruns runs recorded as failed,
    which are otherwise reported again and make the exit code non-zero. Compatible runs
    train together in packs of up to ``pack`` (``plan.pack_size``); ``shard`` ``(i, n)`` runs
    the i-th of n disjoint slices of the plan. The caller has checked that ``out_dir`` is
    writable (``records.check_writable``). ``options``: how each evaluation runs;
    ``eval_workers`` > 0 scores the runs in that many worker processes while the next pack trains
    (``evaluator.PooledEvaluator``), 0 in this process after each pack.
    """
    console = console or Console()
    out_dir = Path(out_dir)
    plan = make_plan(specs, pack)
    if shard is not None:
        plan = plan.select_shard(*shard)
    result = SweepResult()
    forced = ForcedSweep(out_dir, plan.runs) if force else None
    if forced is not None and forced.resumed:
        console.print(
            f"Resuming the interrupted --force sweep: {len(forced.owed)} of {len(plan.runs)} run(s) "
            "still to rerun."
        )
    elif forced is not None and forced.concurrent:
        console.print(
            f"Another --force sweep of these runs is running; joining it: {len(forced.owed)} of "
            f"{len(plan.runs)} run(s) still to rerun (each is trained by one of the two)."
        )
    states = run_states(plan.runs, out_dir, forced=forced.owed if forced else None, retry_failed=retry_failed)
    for spec in plan.runs:
        if states[spec.run_id].due == "unreadable":
            problem = states[spec.run_id].problem
            console.print(f"[red]skipping {spec.run_id}: {problem} (move it away to rerun; not overwritten)")
    owed = {s.run_id for s in result.tally(plan.runs, states, out_dir)}

    if result.skipped:
        console.print(f"{len(result.skipped)} run(s) already recorded under {out_dir / 'runs'}: skipped.")
    if result.previously_failed:
        console.print(
            f"[yellow]{len(result.previously_failed)} run(s) are recorded as failed and were not rerun "
            "(--retry-failed reruns them)."
        )
    todo_packs = [[s for s in p.runs if s.run_id in owed] for p in plan.packs]
    todo_packs = [p for p in todo_packs if p]
    if not todo_packs:
        console.print("Nothing to run.")
        return result

    data = data or DatasetCache(device, console)
    blocked = blocked_datasets([s for p in todo_packs for s in p], data)
    for (name, source), why in blocked.items():
        runs = [s for p in todo_packs for s in p if (s.dataset, s.dataset_source) == (name, source)]
        console.print(f"[red]blocked[/] {len(runs)} run(s) on {name}: {why}")
        result.blocked.update({s.run_id: why for s in runs})
    todo_packs = [p for p in todo_packs if (p[0].dataset, p[0].dataset_source) not in blocked]
    todo = [s for p in todo_packs for s in p]
    if not todo:
        return result
    print_todo(console, todo, device)
    seconds = estimates(todo, device, options) if estimate else {}
    if estimate:
        print_estimate(console, seconds)
    if any(len(p) > 1 for p in todo_packs):
        console.print(
            f"Training in {len(todo_packs)} pack(s) of up to {plan.pack_size} compatible runs "
            "(--pack 1 turns it off)."
        )
    progress = SweepProgress(console, todo, seconds, interval=progress_interval)
    evaluator = PooledEvaluator(eval_workers) if eval_workers > 0 else InlineEvaluator()
    if eval_workers > 0:
        console.print(
            f"Scoring in {eval_workers} worker process(es) while the next pack trains, "
            f"{options.fit_jobs} fit thread(s) each (--eval-workers, --fit-jobs)."
        )
    with stop_on_signals(console=console) as stop, progress, closing(evaluator):
        for group in todo_packs:
            if stop:  # a signal during the last pack's evaluation: said below
                break
            try:
                run_pack(
                    group,
                    out_dir,
                    device,
                    data,
                    progress,
                    result,
                    retry_failed=retry_failed,
                    forced=forced,
                    stop=stop,
                    console=console,
                    options=options,
                    evaluator=evaluator,
                )
                evaluator.collect()
            except Interrupted as exc:
                progress.stop()
                console.print(f"[yellow]{exc}. Run the same command again to resume.")
                result.interrupted = True
                break
        evaluator.drain()  # the runs still being scored write their records, also after a signal
        if stop and not result.interrupted:  # the signal came while a run was being evaluated
            progress.stop()
            console.print(
                "[yellow]stopped on a signal after evaluation:[/] the run(s) being evaluated finished and "
                "their records are written; the same command resumes whatever is left."
            )
            result.interrupted = True
    if forced is not None and not result.interrupted:
        forced.settle()  # runs another process trained meanwhile are no longer owed
    return result
