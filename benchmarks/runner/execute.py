"""One pack, start to end: claim its runs, train them together, evaluate each, write each record.

``run_pack`` is the unit every backend executes (the local sweep pack after
pack, a SLURM array task on its one pack). ``record_of`` is the one mapping
from a training outcome and an evaluation to a ``RunRecord``; ``score`` runs an
evaluation through it (artifacts included), for a run just trained and for
``rescore`` (`vaebench eval`), which re-scores a finished run from its
checkpoint: its training provenance stays, the evaluation's own is new.

A test hook: with ``VAEBENCH_SIGNAL_AT_STEP=SIGNAL@STEP`` (e.g. ``SIGTERM@25``)
the process sends itself that signal once, when a run it trains first reaches
that step, so the tests interrupt a sweep at a point it reaches
deterministically instead of racing a sleep against it.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.datasets import GroundTruthDataset, OfficialFileMissingError, load_dataset
from benchmarks.datasets.pairs import PairSampler
from benchmarks.runner.claims import Claim, try_claim
from benchmarks.runner.data import DatasetCache, device_name
from benchmarks.runner.display import summary_line
from benchmarks.runner.estimate import evaluation_costs
from benchmarks.runner.evaluate import (
    DEFAULT_OPTIONS,
    Evaluation,
    EvaluationOptions,
    evaluate_run,
    metric_entry,
)
from benchmarks.runner.evaluator import EvaluationJob, InlineEvaluator, PooledEvaluator
from benchmarks.runner.progress import SweepProgress
from benchmarks.runner.provenance import evaluation_provenance, run_provenance
from benchmarks.runner.records import (
    RecordError,
    RunRecord,
    artifact_path,
    checkpoint_path,
    read_record,
    record_path,
    write_record,
)
from benchmarks.runner.settings import resolve_precision
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.state import ForcedSweep, SweepResult
from benchmarks.runner.train import Diverged, TrainResult, train_runs
from metrics import get_metric
from vae_zoo import VAE
from vae_zoo.checkpoint import (
    CheckpointError,
    model_from_payload,
    read_checkpoint,
    read_checkpoint_or_previous,
)
from vaebench.errors import UserError

__all__ = ["SIGNAL_AT_STEP", "blocked_datasets", "record_of", "rescore", "run_pack", "score"]

#: The environment variable of the test hook (see the module's docstring).
SIGNAL_AT_STEP = "VAEBENCH_SIGNAL_AT_STEP"


def record_of(
    spec: RunSpec,
    outcome: TrainResult | Diverged,
    provenance: dict,
    evaluation: Evaluation | None = None,
    eval_seconds: float = 0.0,
    scored_by: dict | None = None,
) -> RunRecord:
    """The record of a run: its training outcome (a result or a divergence) and its evaluation.

    Args:
        spec: the run.
        outcome: its training result, or the divergence that ended it.
        provenance: the training's (``provenance.run_provenance``).
        evaluation: the metrics of a finished run (None for a diverged one).
        eval_seconds: the wall time of the whole evaluation.
        scored_by: the evaluation's own provenance (``provenance.evaluation_provenance``).
    """
    if isinstance(outcome, Diverged):
        return RunRecord.for_spec(
            spec,
            status="failed",
            failure={"step": outcome.step, "reason": outcome.reason},
            provenance=provenance,
        )
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
        provenance=provenance,
        evaluation_provenance=scored_by,
    )


def external_record(
    spec: dict,
    run_id: str,
    suite: str,
    evaluation: Evaluation,
    eval_seconds: float,
    metric_warnings: dict,
    device: torch.device,
    dataset: dict,
) -> RunRecord:
    """The record of a representation trained elsewhere and scored by ``vaebench score``.

    Kind "external": the spec names the encoder (``benchmarks.score.external_spec``), the training
    fields stay empty, and the provenance is the scoring's own (code, libraries, machine, data).
    """
    return RunRecord(
        run_id=run_id,
        suite=suite,
        status="ok",
        spec=spec,
        kind="external",
        metrics=evaluation.metrics,
        metric_seconds=evaluation.seconds,
        metric_warnings=metric_warnings,
        evaluation=evaluation.counts,
        mi_matrix=evaluation.mi_matrix,
        timing={"eval_seconds": eval_seconds},
        provenance=run_provenance(str(device), device_name(device), None, dataset),
    )


def score(
    spec: RunSpec,
    outcome: TrainResult | Diverged,
    provenance: dict,
    dataset: GroundTruthDataset,
    device: torch.device,
    out_dir: Path,
    *,
    metric_names: list[str] | None = None,
    earlier: RunRecord | None = None,
    progress: SweepProgress | None = None,
    options: EvaluationOptions = DEFAULT_OPTIONS,
) -> tuple[RunRecord, dict[str, float]]:
    """Evaluate a trained run and write its artifacts (record and scores).

    A diverged run is only described. The scores written are those this evaluation computed.

    ``metric_names`` scores a subset of the spec's metrics; ``earlier`` is the run's previous record,
    whose scores of other metrics (UDR's included) are kept beside the new ones; ``progress`` shows
    the metric being computed, how many are done and an ETA; ``options``: how the evaluation runs
    (recorded in its provenance).
    """
    if isinstance(outcome, Diverged):
        return record_of(spec, outcome, provenance), {}
    started = time.perf_counter()
    if progress is not None:
        progress.start_evaluation(spec, evaluation_costs(spec, device, options=options))
    try:
        on_metric = progress.on_metric if progress is not None else None
        evaluation = evaluate_run(
            spec, outcome.model, dataset, device, metric_names, on_metric=on_metric, options=options
        )
    finally:
        if progress is not None:
            progress.end_evaluation()
    eval_seconds = time.perf_counter() - started
    evaluation.save_artifacts(artifact_path(out_dir, spec.suite, spec.run_id))
    scores = dict(evaluation.metrics)
    if earlier is not None:
        evaluation.metrics = {**earlier.metrics, **evaluation.metrics}
        evaluation.seconds = {**earlier.metric_seconds, **evaluation.seconds}
        evaluation.warnings = {**earlier.metric_warnings, **evaluation.warnings}
        evaluation.counts = {**earlier.evaluation, **evaluation.counts}
    scored_by = evaluation_provenance(str(device), device_name(device), options.to_dict())
    return record_of(spec, outcome, provenance, evaluation, eval_seconds, scored_by), scores


def blocked_datasets(specs: Sequence[RunSpec], data: DatasetCache) -> dict[tuple[str, str], str]:
    """Prepare the datasets of ``specs``; (dataset, source) -> why, for each that cannot be.

    A dataset whose official file is missing is blocked; the others are prepared once, before any
    training.
    """
    blocked = {}
    for key in sorted({(s.dataset, s.dataset_source) for s in specs}):
        try:
            data.dataset(*key)
        except OfficialFileMissingError as exc:
            blocked[key] = str(exc)
    return blocked


def _signal_hook() -> Callable[[int, int, int], None] | None:
    """The test hook's ``on_progress``: signal this process once at the step ``SIGNAL_AT_STEP`` names."""
    value = os.environ.get(SIGNAL_AT_STEP)
    if not value:
        return None
    name, _, step = value.partition("@")
    signum, at = signal.Signals[name], int(step)
    fired: list[bool] = []

    def on_progress(index: int, done: int, total: int) -> None:
        if done == at and not fired:
            fired.append(True)
            os.kill(os.getpid(), signum)

    return on_progress


def _claim(
    specs: Sequence[RunSpec],
    out_dir: Path,
    retry_failed: bool,
    forced: ForcedSweep | None,
    result: SweepResult,
    console: Console,
) -> tuple[list[Claim], list[RunSpec]]:
    """Claim each run of the pack; drop those another process holds or has recorded meanwhile."""
    claims, kept = [], []
    for spec in specs:
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


def _checkpoint_step(path: Path) -> int:
    """The step the run resumes at: its newest checkpoint that verifies, else 0.

    For saying "resumed at step K"; when no checkpoint verifies, training says why
    (``train.Member.restore``).
    """
    if not path.exists():
        return 0
    try:
        return int(read_checkpoint_or_previous(path)[0].get("step", 0))
    except CheckpointError:
        return 0


def run_pack(
    specs: Sequence[RunSpec],
    out_dir: Path,
    device: torch.device,
    data: DatasetCache,
    progress: SweepProgress,
    result: SweepResult,
    *,
    retry_failed: bool = False,
    forced: ForcedSweep | None = None,
    stop: Sequence[int] = (),
    console: Console | None = None,
    options: EvaluationOptions = DEFAULT_OPTIONS,
    evaluator: InlineEvaluator | PooledEvaluator | None = None,
) -> None:
    """Claim, train, evaluate and record one pack of compatible runs.

    What happened is added to ``result``: runs completed or failed, left to another process,
    recorded meanwhile, blocked on a missing official file, or whose checkpoint is unreadable.
    Training polls ``stop`` (a signal handler's list) and raises ``train.Interrupted`` once it is
    non-empty, every unfinished run checkpointed. ``evaluator`` scores the trained runs (default:
    here, at once, an ``InlineEvaluator``); a ``PooledEvaluator`` scores them in its workers and
    writes their records when the caller collects them, each run's claim held until then.
    """
    console = console or Console()
    evaluator = evaluator or InlineEvaluator()
    first = specs[0]
    blocked = blocked_datasets([first], data)
    if blocked:
        why = next(iter(blocked.values()))
        for spec in specs:
            result.blocked[spec.run_id] = why
        return
    claims, specs = _claim(specs, out_dir, retry_failed, forced, result, console)
    held = dict(zip((s.run_id for s in specs), claims))
    pack = _Pack(out_dir, device, data, progress, result, forced, console, options, evaluator, held)
    try:
        pack.train_and_score(specs, stop)
    finally:
        for run_id, claim in held.items():
            if run_id not in evaluator.pending():  # a pending run's claim goes with its record
                claim.release()


class _Pack:
    """One pack's training and the hand-over of each trained run to the evaluator."""

    def __init__(self, out_dir, device, data, progress, result, forced, console, options, evaluator, claims):
        self.out_dir, self.device, self.data, self.progress = out_dir, device, data, progress
        self.result, self.forced, self.console = result, forced, console
        self.options, self.evaluator, self.claims = options, evaluator, claims

    def train_and_score(self, specs: Sequence[RunSpec], stop: Sequence[int]) -> None:
        """Train ``specs`` together, then submit each run's evaluation (a diverged run is only described)."""
        if not specs:
            return
        first = specs[0]
        dataset = self.data.dataset(first.dataset, first.dataset_source)
        images = self.data.training_images(first.dataset, first.dataset_source)
        ckpts = [checkpoint_path(self.out_dir, s.suite, s.run_id) for s in specs]
        try:
            starts = [_checkpoint_step(c) for c in ckpts]
        except CheckpointError as exc:
            self._unreadable(specs, exc)
            return
        self.progress.start_pack(specs, starts)
        hook = _signal_hook()

        def on_progress(index: int, done: int, total: int) -> None:
            self.progress.on_progress(index, done, total)
            if hook is not None:
                hook(index, done, total)

        noise = dataset.observation_noise if getattr(dataset, "stochastic_observations", False) else None
        pairs = None if first.pairs is None else PairSampler(dataset.grid, **first.pairs)
        try:
            outcomes = train_runs(
                specs,
                images,
                self.device,
                ckpts,
                observation_noise=noise,
                pair_sampler=pairs,
                on_progress=on_progress,
                should_stop=lambda: bool(stop),
            )
        except CheckpointError as exc:
            self._unreadable(specs, exc)
            self.progress.end_pack()
            return
        self.progress.end_pack()
        for spec, outcome, ckpt in zip(specs, outcomes, ckpts):
            self._submit(spec, outcome, ckpt, dataset)

    def _unreadable(self, specs: Sequence[RunSpec], exc: CheckpointError) -> None:
        self.console.print(f"[red]skipping {', '.join(s.run_id for s in specs)}: {exc}")
        self.result.unreadable.append(str(exc))

    def _submit(self, spec: RunSpec, outcome: TrainResult | Diverged, ckpt: Path, dataset) -> None:
        precision = resolve_precision(spec.training.precision, self.device)
        provenance = run_provenance(str(self.device), self.data.device_name, precision, dataset.provenance())

        def evaluate() -> RunRecord:
            return score(
                spec, outcome, provenance, dataset, self.device, self.out_dir,
                progress=self.progress, options=self.options,
            )[0]  # fmt: skip

        def finish(record: RunRecord) -> None:
            self.record(spec, record)

        if isinstance(outcome, Diverged):
            finish(record_of(spec, outcome, provenance))
            return

        def job() -> EvaluationJob:  # what a worker process needs, built only where one scores it
            return EvaluationJob.of(spec, ckpt, outcome, provenance, self.device, self.out_dir, self.options)

        self.evaluator.submit(job, finish, evaluate=evaluate)

    def record(self, spec: RunSpec, record: RunRecord) -> None:
        """Write a scored (or diverged) run's record, count it, and let its claim go."""
        write_record(record_path(self.out_dir, spec.suite, spec.run_id), record)
        if self.forced is not None:
            self.forced.done(spec.run_id)
        self.progress.run_done(spec, record)
        if record.status == "failed":
            self.result.failed.append((spec.run_id, record.failure["step"], record.failure["reason"]))
            self.console.print(f"[red]FAILED[/] {spec.run_id} {spec.label()}: {record.failure['reason']}")
        else:
            self.result.completed.append(spec.run_id)
            self.console.print(summary_line(spec, record))
        claim = self.claims.pop(spec.run_id, None)
        if claim is not None:
            claim.release()


def _finished_run(target: str, out_dir: Path) -> tuple[RunSpec, Path, dict]:
    """(spec, checkpoint path, checkpoint payload) of a finished run named by run id or checkpoint path."""
    target_path = Path(target)
    if target_path.suffix == ".pt" or target_path.is_file():
        payload = read_checkpoint(target_path)
        if "run_spec" not in payload:
            raise CheckpointError(
                f"checkpoint {target_path} holds no run spec; it was not written by the runner"
            )
        spec = RunSpec.from_dict(payload["run_spec"])
    else:
        matches = sorted((out_dir / "runs").glob(f"*/{target}.json"))
        if not matches:
            known = sorted(p.stem for p in (out_dir / "runs").glob("*/*.json"))
            raise UserError(
                f"no run {target!r} under {out_dir / 'runs'}; known runs: {', '.join(known) or '(none)'}"
            )
        spec = read_record(matches[0]).run_spec
        target_path = checkpoint_path(out_dir, spec.suite, spec.run_id)
        if not target_path.exists():
            raise CheckpointError(
                f"no checkpoint at {target_path}: checkpoints stay on the machine that trained the run "
                "and are never committed, so a run recorded elsewhere (the committed results/, say) "
                f"has none here. Retrain it into another directory, `vaebench run --suite {spec.suite} "
                "--out DIR`, or pass a checkpoint path. The same seed gives the same numbers only on the "
                "same CPU or GPU type and library versions (the record's provenance names them): on "
                "another machine a retrained run differs by about seed noise, so do not overwrite "
                "committed results with it."
            )
        payload = read_checkpoint(target_path)
        if "run_spec" in payload:
            # The order the run was scored in: the record's JSON sorts its keys, and the order in
            # which the metrics first reach the grid decides which images share a forward pass,
            # which can move the codes' last bits (so the scores).
            spec = RunSpec.from_dict(payload["run_spec"])
    if payload.get("step") != spec.training.steps:
        raise CheckpointError(
            f"checkpoint {target_path} is at step {payload.get('step')} of {spec.training.steps}; "
            "finish the run with `vaebench run` first"
        )
    return spec, target_path, payload


def _trained(model: VAE, record: RunRecord) -> TrainResult:
    """A recorded run's training outcome, around its model reloaded from the checkpoint."""
    timing = record.timing
    return TrainResult(
        model=model,
        curve=record.curve,
        final=record.final,
        train_seconds=timing.get("train_seconds", math.nan),
        images_per_second=timing.get("images_per_second", math.nan),
        resumed_from_step=timing.get("resumed_from_step", 0),
        precision=record.provenance.get("precision", ""),
    )


def rescore(
    target: str,
    out_dir: Path,
    metrics: list[str] | None,
    device: torch.device,
    options: EvaluationOptions = DEFAULT_OPTIONS,
    progress: SweepProgress | None = None,
) -> tuple[Path, dict[str, float | None]]:
    """Re-score a finished run from its checkpoint and rewrite its record (``vaebench eval``).

    All its metrics, or the named ones; its record and artifacts are rewritten. Returns (record path,
    the new scores). ``options``: how the evaluation runs; ``progress``: shows the metric being
    computed, how many are done and an ETA.
    """
    out_dir = Path(out_dir)
    spec, _, payload = _finished_run(target, out_dir)
    for entry in metrics or []:
        get_metric(metric_entry(entry)[0])  # unknown names fail before any work
    path = record_path(out_dir, spec.suite, spec.run_id)
    earlier = read_record(path)
    model = model_from_payload(payload).to(device).eval()
    dataset = load_dataset(spec.dataset, spec.dataset_source)
    record, scores = score(
        spec,
        _trained(model, earlier),
        earlier.provenance,
        dataset,
        device,
        out_dir,
        metric_names=metrics,
        earlier=earlier,
        progress=progress,
        options=options,
    )
    write_record(path, record)
    return path, {k: (v if math.isfinite(v) else None) for k, v in scores.items()}
