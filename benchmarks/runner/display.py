"""What the runner prints about a plan: its runs as a table, their estimated cost, a finished run's line.

``vaebench plan`` (``print_plan``: every run with its pack, state and estimate)
and a sweep before it trains (``print_todo`` and ``print_estimate``) both print
from here, so the two show runs alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.runner.estimate import estimate_evaluation_seconds, estimate_training_seconds
from benchmarks.runner.evaluate import DEFAULT_OPTIONS, EvaluationOptions
from benchmarks.runner.plan import Plan
from benchmarks.runner.protocol import compare_runs, describe_value, load_reference
from benchmarks.runner.records import RunRecord
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.state import RunState

__all__ = ["estimates", "print_estimate", "print_plan", "print_todo", "summary_line"]


def _hyperparameter(spec: RunSpec) -> str:
    strength = spec.strength
    return f"{strength[0]}={strength[1]:g}" if strength else "-"


def estimates(
    specs: Sequence[RunSpec], device: torch.device, options: EvaluationOptions = DEFAULT_OPTIONS
) -> dict[str, float]:
    """run_id -> estimated seconds: training through the loop itself, plus evaluation with ``options``."""
    training = estimate_training_seconds(list(specs), device)
    return {
        s.run_id: training[s.run_id] + estimate_evaluation_seconds(s, device, options=options) for s in specs
    }


def print_todo(console: Console, todo: Sequence[RunSpec], device: torch.device) -> None:
    """The runs a sweep is about to train."""
    table = Table(title=f"{len(todo)} run(s) to train on {device}", show_lines=False)
    for col in ("run id", "dataset", "model", "hyperparameter", "seed", "steps"):
        table.add_column(col, no_wrap=col in ("run id", "model"))  # ids stay whole in a pipe
    for spec in todo:
        table.add_row(
            spec.run_id,
            spec.dataset,
            spec.model,
            _hyperparameter(spec),
            str(spec.seed),
            str(spec.training.steps),
        )
    console.print(table)


def print_estimate(console: Console, seconds: dict[str, float]) -> None:
    """Print the sweep's estimated time in minutes."""
    console.print(
        f"Estimated time: about {sum(seconds.values()) / 60:.1f} min "
        "(training from a few timed steps of each model, plus evaluation)."
    )


def print_plan(
    console: Console,
    suite: str,
    plan: Plan,
    states: dict[str, RunState],
    out: Path,
    device: torch.device,
    estimate: bool,
) -> None:
    """`vaebench plan`: every run with its pack, its state and (for what is not recorded) its cost."""
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state.shown] = counts.get(state.shown, 0) + 1
    pending = [s for s in plan.runs if states[s.run_id].held != "ok"]
    cost = estimates(pending, device) if estimate else {}
    title = f"suite {suite}: {len(plan.runs)} run(s) in {len(plan.packs)} pack(s)"
    if plan.shard is not None:
        title += f" (shard {plan.shard[0]}/{plan.shard[1]})"
    table = Table(title=title)
    for col in ("pack", "run id", "dataset", "model", "hyperparameter", "seed", "steps", "state", "est."):
        table.add_column(col, no_wrap=col in ("run id", "model"))  # ids stay whole in a pipe
    for pack in plan.packs:
        for i, spec in enumerate(pack.runs):
            seconds = cost.get(spec.run_id)
            table.add_row(
                pack.pack_id if i == 0 else "",
                spec.run_id,
                spec.dataset,
                spec.model,
                _hyperparameter(spec),
                str(spec.seed),
                str(spec.training.steps),
                states[spec.run_id].shown,
                "" if seconds is None else f"{seconds / 60:.1f} min",
            )
    console.print(table)
    console.print(
        ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + f" (under {out / 'runs'})."
    )
    if estimate:
        console.print(
            f"Estimated cost of what is not recorded: {sum(cost.values()) / 3600:.2f} h on {device} "
            "(training timed through the training loop here, runs alone; evaluation from the images "
            "the metrics declare they encode)."
        )
    console.print(compare_runs(plan.runs).note())


def print_protocol(console: Console, specs: Sequence[RunSpec]) -> None:
    """Describe every deviation of ``specs`` from the study, then the additions.

    Deviations are grouped, with both values and the study's source (``protocol.compare_runs``);
    "matches" only when nothing differs.
    """
    diff = compare_runs(specs)
    ref = load_reference(diff.reference)
    if diff.matches:
        console.print(f"matches {diff.title}: no setting differs.")
    else:
        table = Table(title=f"{len(diff.deviations)} deviation(s) from {diff.title}")
        for column in ("group", "setting", "these runs", "the study", "study source"):
            table.add_column(column, overflow="fold")
        for d in diff.deviations:
            table.add_row(d.group, d.key, describe_value(d.value), describe_value(d.reference), d.source)
        console.print(table)
    if diff.additions:
        console.print("Additions (not in the study): " + ", ".join(d.key for d in diff.additions) + ".")
    console.print(f"Reference: benchmarks/protocols/{ref.name}.toml (disentanglement_lib {ref.commit[:7]}).")


def summary_line(spec: RunSpec, record: RunRecord) -> str:
    """A finished run's line: its final loss terms, headline scores and timing."""
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
