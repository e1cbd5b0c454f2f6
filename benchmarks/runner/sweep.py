"""A sweep: expand a suite, skip what is done, train and evaluate the rest, record each run.

Nothing is lost: each record is written atomically when its run ends; a run
whose loss turns non-finite is recorded as failed and the sweep goes on; SIGINT
or SIGTERM checkpoints the current run and stops, and the same command resumes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from benchmarks.runner.evaluate import evaluate_run
from benchmarks.runner.packing import plan_packs, train_packed
from benchmarks.runner.records import (
    RecordError,
    artifact_path,
    checkpoint_path,
    provenance,
    read_record,
    record_path,
    write_record,
)
from benchmarks.runner.suite import RunSpec
from benchmarks.runner.train import Diverged, Interrupted, TrainResult, resolve_precision, train_run
from vae_zoo.checkpoint import CheckpointError

__all__ = ["SweepResult", "run_sweep", "check_writable", "build_record", "default_pack_size"]

#: Runs per pack when --pack is not given. The CPU is already filled by one model
#: (packing measured 0.4-0.7x there); on a GPU one small model leaves it idle.
DEFAULT_PACK = {"cpu": 1, "cuda": 36}


def default_pack_size(device: torch.device) -> int:
    return DEFAULT_PACK.get(device.type, 1)


@dataclass
class SweepResult:
    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)  # (run_id, step, reason)
    unreadable: list[str] = field(default_factory=list)  # corrupt records or checkpoints, by path
    interrupted: bool = False


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
def _stop_on_signals() -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM into a flag the training loop polls, so it can checkpoint and stop."""
    received: list[int] = []
    previous = {}

    def handler(signum, frame):
        if received:  # a second signal: stop now
            raise KeyboardInterrupt
        received.append(signum)

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


def _hyper(spec: RunSpec) -> str:
    strength = spec.strength
    return f"{strength[0]}={strength[1]:g}" if strength else "-"


def build_record(spec: RunSpec, *, status: str, **fields: Any) -> dict[str, Any]:
    strength = spec.strength
    return {
        "schema": "vaebench.run/1",
        "run_id": spec.run_id,
        "suite": spec.suite,
        "status": status,
        "spec": spec.to_dict(),
        "strength": {"field": strength[0], "value": strength[1]} if strength else None,
        "metrics": {},
        "metric_seconds": {},
        "metric_warnings": {},
        "mi_matrix": None,
        "curve": {},
        "final": {},
        "failure": None,
        "timing": {},
        **fields,
    }


def _estimate_seconds(spec: RunSpec, device: torch.device, images_u8: torch.Tensor) -> float:
    """Seconds per training step of this spec's model on this device, from a few timed steps."""
    from benchmarks.datasets import to_float
    from benchmarks.runner.train import make_optimizers
    from vae_zoo import create_model

    model = create_model(spec.model, **spec.model_config).to(device)
    optimizer, aux = make_optimizers(model, 1e-4, device)
    b = spec.training["batch_size"]
    x = to_float(images_u8[:b])
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        out = model(x)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if aux is not None:
            aux.zero_grad()
            model.auxiliary_loss(out).backward()
            aux.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def run_sweep(
    specs: list[RunSpec],
    out_dir: Path,
    device: torch.device,
    *,
    force: bool = False,
    pack: int | None = None,
    console: Console | None = None,
    load_images=None,
) -> SweepResult:
    """Train and evaluate every spec whose record does not exist yet (all of them with ``force``).

    Compatible runs train together in packs of up to ``pack`` (default: ``default_pack_size``);
    each still gets its own checkpoint and record.
    """
    from benchmarks.runner.data import DatasetCache

    console = console or Console()
    out_dir = Path(out_dir)
    check_writable(out_dir)
    result = SweepResult()
    todo: list[RunSpec] = []
    for spec in specs:
        path = record_path(out_dir, spec.suite, spec.run_id)
        if path.exists() and not force:
            try:
                read_record(path)
                result.skipped.append(spec.run_id)
            except RecordError as exc:
                console.print(f"[red]skipping {spec.run_id}: {exc} (move it away to rerun; not overwritten)")
                result.unreadable.append(str(path))
            continue
        todo.append(spec)

    if result.skipped:
        console.print(f"{len(result.skipped)} run(s) already recorded under {out_dir / 'runs'}: skipped.")
    if not todo:
        console.print("Nothing to run.")
        return result

    data = load_images or DatasetCache(device, console)
    plan = Table(title=f"{len(todo)} run(s) to train on {device}", show_lines=False)
    for col in ("run id", "dataset", "model", "hyperparameter", "seed", "steps"):
        plan.add_column(col)
    estimate = 0.0
    per_model: dict[tuple[str, str], float] = {}
    for spec in todo:
        plan.add_row(
            spec.run_id, spec.dataset, spec.model, _hyper(spec), str(spec.seed), str(spec.training["steps"])
        )
    console.print(plan)
    for spec in todo:
        key = (spec.dataset, spec.model)
        if key not in per_model:
            per_model[key] = _estimate_seconds(spec, device, data.images(spec.dataset, spec.dataset_source))
        estimate += per_model[key] * spec.training["steps"] + data.evaluation_estimate(spec)
    console.print(
        f"Estimated time: about {estimate / 60:.1f} min (training from a few timed steps, plus evaluation)."
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    pack_size = pack if pack is not None else default_pack_size(device)
    packs = [[RunSpec(**d) for d in group] for group in plan_packs([s.to_dict() for s in todo], pack_size)]
    if any(len(p) > 1 for p in packs):
        console.print(
            f"Training in {len(packs)} pack(s) of up to {pack_size} compatible runs (--pack 1 turns it off)."
        )
    with _stop_on_signals() as stop, progress:
        sweep_task = progress.add_task("sweep", total=len(todo), rate="")
        for group in packs:
            if stop:
                result.interrupted = True
                break
            first = group[0]
            label = (
                f"{first.model} {_hyper(first)} seed {first.seed}"
                if len(group) == 1
                else f"pack of {len(group)}"
            )
            run_task = progress.add_task(label, total=first.training["steps"], rate="")
            last = [time.perf_counter(), 0]

            def on_step(*args, task=run_task, last=last) -> None:
                done = args[-2]  # (steps done, total) alone; (run index, steps done, total) packed
                now = time.perf_counter()
                if done <= last[1]:
                    return
                rate = (done - last[1]) / max(now - last[0], 1e-9)
                last[:] = [now, done]
                progress.update(task, completed=done, rate=f"{rate:,.0f} steps/s")

            ckpts = [checkpoint_path(out_dir, s.suite, s.run_id) for s in group]
            if force:
                for ckpt in ckpts:
                    ckpt.unlink(missing_ok=True)
            try:
                outcomes = _train_group(group, data, device, ckpts, on_step, lambda: bool(stop))
            except Interrupted as exc:
                progress.stop()
                console.print(f"[yellow]{exc}. Run the same command again to resume.")
                result.interrupted = True
                break
            except CheckpointError as exc:
                console.print(f"[red]skipping {label}: {exc}")
                named = [str(c) for c in ckpts if str(c) in str(exc)]
                result.unreadable.extend(named or [str(exc)])
                progress.remove_task(run_task)
                continue
            progress.remove_task(run_task)
            for spec, outcome in zip(group, outcomes):
                record = _record(spec, outcome, data, device, out_dir)
                write_record(record_path(out_dir, spec.suite, spec.run_id), record)
                progress.advance(sweep_task)
                if record["status"] == "failed":
                    failure = record["failure"]
                    result.failed.append((spec.run_id, failure["step"], failure["reason"]))
                    console.print(
                        f"[red]FAILED[/] {spec.run_id} {spec.model} {_hyper(spec)} seed {spec.seed}: "
                        f"{failure['reason']}"
                    )
                else:
                    result.completed.append(spec.run_id)
                    console.print(_summary_line(spec, record))
    return result


def _summary_line(spec: RunSpec, record: dict[str, Any]) -> str:
    m, f, t = record["metrics"], record["final"], record["timing"]
    shown = [
        f"{k}={m[k]:.3f}"
        for k in ("mig", "dci_disentanglement", "factor_vae_eval_accuracy")
        if m.get(k) is not None
    ]
    return (
        f"[green]done[/] {spec.run_id} {spec.dataset}/{spec.model} {_hyper(spec)} seed {spec.seed}: "
        f"recon={f.get('reconstruction', float('nan')):.1f} kl={f.get('kl', float('nan')):.2f} "
        + " ".join(shown)
        + f" ({t['train_seconds']:.0f}s train, {t['eval_seconds']:.0f}s eval,"
        f" {t['images_per_second']:,.0f} img/s)"
    )


def _train_group(group, data, device, ckpts, on_step, should_stop) -> list[TrainResult | Diverged]:
    """Train one run alone or a pack together; a divergence is an outcome, not an exception."""
    first = group[0]
    images = data.images(first.dataset, first.dataset_source)
    if len(group) == 1:
        try:
            return [
                train_run(first.to_dict(), images, device, ckpts[0], on_step=on_step, should_stop=should_stop)
            ]
        except Diverged as exc:
            return [exc]
    return train_packed(
        [s.to_dict() for s in group], images, device, ckpts, on_step=on_step, should_stop=should_stop
    )


def _record(spec: RunSpec, outcome: TrainResult | Diverged, data, device, out_dir: Path) -> dict[str, Any]:
    """Evaluate a trained run (or describe a diverged one) as a record."""
    dataset = data.dataset(spec.dataset, spec.dataset_source)
    precision = resolve_precision(spec.training["precision"], device)
    prov = provenance(str(device), data.device_name, precision, dataset.provenance())
    if isinstance(outcome, Diverged):
        return build_record(
            spec, status="failed", failure={"step": outcome.step, "reason": outcome.reason}, provenance=prov
        )
    started = time.perf_counter()
    evaluation = evaluate_run(spec, outcome.model, dataset, device)
    eval_seconds = time.perf_counter() - started
    evaluation.save_artifacts(artifact_path(out_dir, spec.suite, spec.run_id))
    return build_record(
        spec,
        status="ok",
        metrics=evaluation.metrics,
        metric_seconds=evaluation.seconds,
        metric_warnings=evaluation.warnings,
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
