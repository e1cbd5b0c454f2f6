"""A sweep: plan a suite into packs, skip what is recorded, claim, train, evaluate and record the rest.

Nothing is lost: each record is written atomically when its run ends; a run
whose loss turns non-finite is recorded as failed and the sweep goes on; SIGINT
or SIGTERM checkpoints the current runs and stops, and the same command resumes
(``--force`` included: a forced sweep remembers which runs it still owes, so
its rerun resumes instead of starting over). Processes that share an output
directory claim each run before training it (``claims``), so shards, SLURM
array tasks or two terminals never train the same run twice.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.datasets.pairs import PairSampler
from benchmarks.runner.claims import try_claim
from benchmarks.runner.plan import Plan, make_plan
from benchmarks.runner.progress import SweepProgress
from benchmarks.runner.records import (
    RecordError,
    RunRecord,
    artifact_path,
    checkpoint_path,
    provenance,
    read_record,
    record_path,
    write_record,
)
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.train import Diverged, Interrupted, TrainResult, resolve_precision, train_runs
from vae_zoo.checkpoint import CheckpointError, read_checkpoint
from vaebench.atomic import atomic_write_text

__all__ = [
    "SweepResult",
    "run_sweep",
    "check_writable",
    "default_pack_size",
    "run_states",
    "ForcedSweep",
]

#: Runs per pack when --pack is not given. The CPU is already filled by one model
#: (packing measured 0.4-0.7x there); on a GPU one small model leaves it idle.
DEFAULT_PACK = {"cpu": 1, "cuda": 36}


def default_pack_size(device: torch.device) -> int:
    return DEFAULT_PACK.get(device.type, 1)


@dataclass
class SweepResult:
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

    def to_dict(self) -> dict:
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


def check_writable(out_dir: Path) -> None:
    """Fail before any training if the output directory cannot be written."""
    out_dir = Path(out_dir)
    try:
        (out_dir / "runs").mkdir(parents=True, exist_ok=True)
        probe = out_dir / "runs" / ".write_probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"output directory {out_dir} is not writable: {exc}") from None


@contextmanager
def _stop_on_signals(enabled: bool = True) -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM into a flag the training loop polls, so it can checkpoint and stop.

    Disabled inside a submitit job: submitit owns the signals there (SIGUSR2 checkpoints and
    requeues the task, SIGTERM is bypassed), and overriding them would break requeueing.
    """
    received: list[int] = []
    previous = {}

    def handler(signum, frame):
        if received:  # a second signal: stop now
            raise KeyboardInterrupt
        received.append(signum)

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


def run_states(plan: Plan, out_dir: Path) -> dict[str, tuple[str, RunRecord | str | None]]:
    """run_id -> ("ok" | "failed", record), ("unreadable", message) or ("pending", None)."""
    states: dict[str, tuple[str, RunRecord | str | None]] = {}
    for spec in plan.runs:
        path = record_path(out_dir, spec.suite, spec.run_id)
        if not path.exists():
            states[spec.run_id] = ("pending", None)
            continue
        try:
            record = read_record(path)
        except RecordError as exc:
            states[spec.run_id] = ("unreadable", str(exc))
            continue
        states[spec.run_id] = (record.status, record)
    return states


class ForcedSweep:
    """A ``--force`` sweep's promise, kept in the output directory until it is fulfilled.

    On its first start it deletes the old checkpoints of its runs (old records are replaced
    as the new ones are written) and writes ``sweeps/<suite>/force-<key>.json`` listing the
    runs it still owes; each finished run is struck off. The same command after an interrupt
    finds the list and resumes it (keeping the new checkpoints) instead of starting over.
    """

    def __init__(self, out_dir: Path, plan: Plan):
        ids = sorted(r.run_id for r in plan.runs)
        key = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
        suite = plan.runs[0].suite if plan.runs else "none"
        self.path = Path(out_dir) / "sweeps" / suite / f"force-{key}.json"
        self.resumed = self.path.exists()
        if self.resumed:
            self.owed = set(json.loads(self.path.read_text())["owed"]) & set(ids)
        else:
            self.owed = set(ids)
            for spec in plan.runs:
                checkpoint_path(out_dir, spec.suite, spec.run_id).unlink(missing_ok=True)
            self._write()

    def _write(self) -> None:
        if self.owed:
            atomic_write_text(self.path, json.dumps({"owed": sorted(self.owed)}, indent=1) + "\n")
        else:
            self.path.unlink(missing_ok=True)

    def done(self, run_id: str) -> None:
        self.owed.discard(run_id)
        self._write()


def run_sweep(
    specs: list[RunSpec],
    out_dir: Path,
    device: torch.device,
    *,
    force: bool = False,
    retry_failed: bool = False,
    pack: int | None = None,
    shard: tuple[int, int] | None = None,
    console: Console | None = None,
    data=None,
    progress_interval: float = 30.0,
    handle_signals: bool = True,
    estimate: bool = True,
) -> SweepResult:
    """Train and evaluate every run of the plan that is not recorded yet.

    ``force`` reruns every run (resumably); ``retry_failed`` reruns runs recorded as failed,
    which are otherwise reported again and make the exit code non-zero. Compatible runs
    train together in packs of up to ``pack`` (default: ``default_pack_size``); ``shard``
    ``(i, n)`` runs the i-th of n disjoint slices of the plan.
    """
    from benchmarks.runner.data import DatasetCache

    console = console or Console()
    out_dir = Path(out_dir)
    check_writable(out_dir)
    plan = make_plan(specs, pack if pack is not None else default_pack_size(device))
    if shard is not None:
        plan = plan.select_shard(*shard)
    result = SweepResult()
    forced = ForcedSweep(out_dir, plan) if force else None
    if forced is not None and forced.resumed:
        console.print(
            f"Resuming the interrupted --force sweep: {len(forced.owed)} of {len(plan.runs)} run(s) "
            "still to rerun."
        )
    states = run_states(plan, out_dir)
    todo_ids = set()
    for spec in plan.runs:
        state, detail = states[spec.run_id]
        if forced is not None and spec.run_id in forced.owed:
            todo_ids.add(spec.run_id)
        elif forced is not None or state == "ok":
            result.skipped.append(spec.run_id)
        elif state == "failed" and not retry_failed:
            failure = detail.failure or {}
            result.previously_failed.append((spec.run_id, failure.get("step", -1), failure.get("reason", "")))
        elif state == "unreadable":
            console.print(f"[red]skipping {spec.run_id}: {detail} (move it away to rerun; not overwritten)")
            result.unreadable.append(str(record_path(out_dir, spec.suite, spec.run_id)))
        else:  # pending, or failed and retried
            todo_ids.add(spec.run_id)

    if result.skipped:
        console.print(f"{len(result.skipped)} run(s) already recorded under {out_dir / 'runs'}: skipped.")
    if result.previously_failed:
        console.print(
            f"[yellow]{len(result.previously_failed)} run(s) are recorded as failed and were not rerun "
            "(--retry-failed reruns them)."
        )
    todo_packs = [[s for s in p.runs if s.run_id in todo_ids] for p in plan.packs]
    todo_packs = [p for p in todo_packs if p]
    todo = [s for p in todo_packs for s in p]
    if not todo:
        console.print("Nothing to run.")
        return result

    data = data or DatasetCache(device, console)
    todo, todo_packs = _drop_blocked(todo, todo_packs, data, result, console)
    if not todo:
        return result
    _print_plan(console, todo, device)
    estimates = _estimates(todo, device, console) if estimate else {}
    if any(len(p) > 1 for p in todo_packs):
        console.print(
            f"Training in {len(todo_packs)} pack(s) of up to {plan.pack_size} compatible runs "
            "(--pack 1 turns it off)."
        )
    progress = SweepProgress(console, todo, estimates, interval=progress_interval)
    with _stop_on_signals(handle_signals) as stop, progress:
        for group in todo_packs:
            if stop:
                result.interrupted = True
                break
            claims, group = _claim(group, out_dir, force, retry_failed, forced, result, console)
            if not group:
                continue
            try:
                _train_and_record(group, data, device, out_dir, progress, stop, result, forced, console)
            except Interrupted as exc:
                progress.stop()
                console.print(f"[yellow]{exc}. Run the same command again to resume.")
                result.interrupted = True
                break
            finally:
                for claim in claims:
                    claim.release()
    return result


def _drop_blocked(todo, todo_packs, data, result: SweepResult, console: Console):
    """Prepare each dataset once, before any training; runs on a dataset whose official file is
    missing are listed as blocked on it and the rest of the suite runs."""
    from benchmarks.datasets import OfficialFileMissingError

    blocked_datasets: dict[tuple[str, str], str] = {}
    for key in sorted({(s.dataset, s.dataset_source) for s in todo}):
        try:
            data.dataset(*key)
        except OfficialFileMissingError as exc:
            blocked_datasets[key] = str(exc)
    if not blocked_datasets:
        return todo, todo_packs
    for (name, source), why in blocked_datasets.items():
        runs = [s for s in todo if (s.dataset, s.dataset_source) == (name, source)]
        console.print(f"[red]blocked[/] {len(runs)} run(s) on {name}: {why}")
        for spec in runs:
            result.blocked[spec.run_id] = why
    keep = [[s for s in p if (s.dataset, s.dataset_source) not in blocked_datasets] for p in todo_packs]
    keep = [p for p in keep if p]
    return [s for p in keep for s in p], keep


def _print_plan(console: Console, todo: list[RunSpec], device: torch.device) -> None:
    table = Table(title=f"{len(todo)} run(s) to train on {device}", show_lines=False)
    for col in ("run id", "dataset", "model", "hyperparameter", "seed", "steps"):
        table.add_column(col)
    for spec in todo:
        strength = spec.strength
        hyper = f"{strength[0]}={strength[1]:g}" if strength else "-"
        table.add_row(spec.run_id, spec.dataset, spec.model, hyper, str(spec.seed), str(spec.training.steps))
    console.print(table)


def _estimates(todo: list[RunSpec], device: torch.device, console: Console) -> dict[str, float]:
    """run_id -> estimated seconds (training through the loop itself, plus evaluation)."""
    from benchmarks.runner.estimate import estimate_evaluation_seconds, estimate_training_seconds

    training = estimate_training_seconds(todo, device)
    out = {s.run_id: training[s.run_id] + estimate_evaluation_seconds(s, device) for s in todo}
    console.print(
        f"Estimated time: about {sum(out.values()) / 60:.1f} min "
        "(training from a few timed steps of each model, plus evaluation)."
    )
    return out


def _claim(group, out_dir, force, retry_failed, forced, result: SweepResult, console: Console):
    """Claim each run of the pack; drop those another process holds or has finished meanwhile."""
    claims, kept = [], []
    for spec in group:
        claim = try_claim(out_dir, spec.suite, spec.run_id)
        if claim is None:
            console.print(f"{spec.run_id} is being trained by another process: left to it.")
            result.claimed_elsewhere.append(spec.run_id)
            continue
        path = record_path(out_dir, spec.suite, spec.run_id)
        owed = forced is not None and spec.run_id in forced.owed
        if path.exists() and not owed:  # recorded by another process since the plan was read
            try:
                record = read_record(path)
            except RecordError:
                record = None
            if record is not None and (record.ok or not retry_failed):
                claim.release()
                result.skipped.append(spec.run_id)
                continue
        claims.append(claim)
        kept.append(spec)
    return claims, kept


def _train_and_record(group, data, device, out_dir, progress, stop, result, forced, console) -> None:
    first = group[0]
    dataset = data.dataset(first.dataset, first.dataset_source)
    images = data.training_images(first.dataset, first.dataset_source)
    ckpts = [checkpoint_path(out_dir, s.suite, s.run_id) for s in group]
    try:
        starts = [_checkpoint_step(c) for c in ckpts]
    except CheckpointError as exc:
        console.print(f"[red]skipping {', '.join(s.run_id for s in group)}: {exc}")
        result.unreadable.append(str(exc))
        return
    progress.start_pack(group, starts)
    noise = dataset.observation_noise if getattr(dataset, "stochastic_observations", False) else None
    pairs = None if first.pairs is None else PairSampler(dataset.grid, **first.pairs)
    try:
        outcomes = train_runs(
            group,
            images,
            device,
            ckpts,
            observation_noise=noise,
            pair_sampler=pairs,
            on_progress=progress.on_progress,
            should_stop=lambda: bool(stop),
        )
    except CheckpointError as exc:
        console.print(f"[red]skipping {', '.join(s.run_id for s in group)}: {exc}")
        result.unreadable.append(str(exc))
        progress.end_pack()
        return
    progress.end_pack()
    for spec, outcome in zip(group, outcomes):
        record = _record(spec, outcome, dataset, data.device_name, device, out_dir)
        write_record(record_path(out_dir, spec.suite, spec.run_id), record)
        if forced is not None:
            forced.done(spec.run_id)
        progress.run_done(spec, record)
        if record.status == "failed":
            result.failed.append((spec.run_id, record.failure["step"], record.failure["reason"]))
            console.print(f"[red]FAILED[/] {spec.run_id} {spec.label()}: {record.failure['reason']}")
        else:
            result.completed.append(spec.run_id)
            console.print(_summary_line(spec, record))


def _checkpoint_step(path: Path) -> int:
    """The step a run's checkpoint holds (0 when there is none), to say "resumed at step K"."""
    if not path.exists():
        return 0
    return int(read_checkpoint(path).get("step", 0))


def _summary_line(spec: RunSpec, record: RunRecord) -> str:
    m, f, t = record.metrics, record.final, record.timing
    shown = [
        f"{k}={m[k]:.3f}"
        for k in ("mig", "dci_disentanglement", "factor_vae_eval_accuracy")
        if m.get(k) is not None
    ]
    return (
        f"[green]done[/] {spec.run_id} {spec.dataset}/{spec.label()}: "
        f"recon={f.get('reconstruction', float('nan')):.1f} kl={f.get('kl', float('nan')):.2f} "
        + " ".join(shown)
        + f" ({t['train_seconds']:.0f}s train, {t['eval_seconds']:.0f}s eval,"
        f" {t['images_per_second']:,.0f} img/s)"
    )


def _record(
    spec: RunSpec, outcome: TrainResult | Diverged, dataset, device_name, device, out_dir
) -> RunRecord:
    """Evaluate a trained run (or describe a diverged one) as a record."""
    from benchmarks.runner.evaluate import evaluate_run

    precision = resolve_precision(spec.training.precision, device)
    prov = provenance(str(device), device_name, precision, dataset.provenance())
    if isinstance(outcome, Diverged):
        return RunRecord.for_spec(
            spec, status="failed", failure={"step": outcome.step, "reason": outcome.reason}, provenance=prov
        )
    started = time.perf_counter()
    evaluation = evaluate_run(spec, outcome.model, dataset, device)
    eval_seconds = time.perf_counter() - started
    evaluation.save_artifacts(artifact_path(out_dir, spec.suite, spec.run_id))
    return RunRecord.for_spec(
        spec,
        status="ok",
        metrics=evaluation.metrics,
        metric_seconds=evaluation.seconds,
        metric_warnings=evaluation.warnings,
        evaluation=evaluation.counts,
        mi_matrix=evaluation.mi_matrix,
        curve=outcome.curve,
        final=outcome.final,
        timing={
            "train_seconds": outcome.train_seconds,
            "eval_seconds": eval_seconds,
            "images_per_second": outcome.images_per_second,
            "resumed_from_step": outcome.resumed_from_step,
        },
        provenance=prov,
    )
