"""Where a trained run is scored: in the training process, or in worker processes beside it.

``InlineEvaluator`` scores each run as its pack finishes training, in the
training process (the default on a CPU, where training and scoring share the
same cores). ``PooledEvaluator`` (``--eval-workers N``, the default on a GPU
node) hands each run to one of N worker processes, which read the run's final
checkpoint and score it on the same device while the next pack trains: the
metrics' fits are CPU-bound and would otherwise leave the GPU idle. Either way
``execute.score`` computes the evaluation and ``finish`` (the caller's) writes
the record in the training process, so a record is the same wherever it was
scored: the model is the checkpoint's, bit for bit, and the evaluation draws
from its own seeds (tested on the CPU with the same code path).

Workers are spawned (CUDA cannot be forked), ignore SIGINT and SIGTERM (the
training process drains them after a first signal and stops them after a
second), and are bounded: at most N runs are scored at once and at most N more
wait, so a fast trainer blocks before the finished models pile up. Each worker
runs its metrics' fits on ``fit_jobs`` threads; the sweep divides the
machine's cores between the trainer and the workers (``pooled_fit_jobs``). A
worker encodes with the training process's torch threads, not ``fit_jobs``: on a
CPU an image's codes can depend on the threads computing its pass (on a 2-core
AMD EPYC a toy model's pass of 6 images gave other last bits on one thread than
on two, its passes of 218 and 32 did not, and the unsupervised scores moved), so
fewer would change the record. The encoding's threads are in the evaluation's provenance.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.runner.evaluate import EvaluationOptions
from benchmarks.runner.provenance import usable_cores
from benchmarks.runner.records import RunRecord
from benchmarks.runner.spec import RunSpec, definition_modules, import_definitions
from benchmarks.runner.train import TrainResult

__all__ = ["EvaluationJob", "InlineEvaluator", "PooledEvaluator", "pooled_fit_jobs", "resolve_evaluation"]

#: One run's evaluation done: its record, to be written by the training process.
Finish = Callable[[RunRecord], None]
#: Builds the picklable job a worker process scores a run from (only a pooled evaluator calls it).
MakeJob = Callable[[], "EvaluationJob"]


def pooled_fit_jobs(workers: int, cores: int | None = None) -> int:
    """Fit threads per worker: the cores left by the trainer (one), shared between the workers."""
    cores = usable_cores() if cores is None else cores
    return max(1, (cores - 1) // max(1, workers))


#: Worker processes a GPU node scores in by default, while the next pack trains.
CUDA_EVAL_WORKERS = 2


def resolve_evaluation(
    device: torch.device,
    fit_jobs: int | None,
    eval_workers: int | None,
    channels_last: bool = False,
    encode_batch: int | None = None,
) -> tuple[EvaluationOptions, int]:
    """The evaluation options and worker count a sweep on ``device`` runs with; None means the default.

    Workers: none on a CPU (training and scoring share its cores), CUDA_EVAL_WORKERS on a GPU.
    Fit threads: every usable core without workers, else ``pooled_fit_jobs``.
    """
    if eval_workers is None:
        eval_workers = CUDA_EVAL_WORKERS if device.type == "cuda" else 0
    if fit_jobs is None:
        fit_jobs = pooled_fit_jobs(eval_workers) if eval_workers else usable_cores()
    options = EvaluationOptions(fit_jobs=fit_jobs, channels_last=channels_last, encode_batch=encode_batch)
    return options, eval_workers


@dataclass(frozen=True)
class EvaluationJob:
    """What a worker needs to score one trained run; picklable (no model, no tensors)."""

    spec: dict[str, Any]
    checkpoint: str  # the run's final checkpoint
    outcome: dict[str, Any]  # TrainResult's fields but the model
    provenance: dict[str, Any]  # the training's
    device: str
    out_dir: str
    options: EvaluationOptions
    modules: tuple[str, ...]  # where the run's model and dataset are defined (a plug-in's module)
    torch_threads: int  # the training process's: the worker encodes with as many (see the module docstring)

    @classmethod
    def of(
        cls,
        spec: RunSpec,
        checkpoint: Path,
        outcome: TrainResult,
        provenance: dict,
        device: torch.device,
        out_dir: Path,
        options: EvaluationOptions,
    ) -> EvaluationJob:
        """The job of a run trained to ``outcome``, whose final model is at ``checkpoint``."""
        fields = {k: getattr(outcome, k) for k in TrainResult.__dataclass_fields__ if k != "model"}
        modules = tuple(definition_modules(spec))
        return cls(
            spec.to_dict(),
            str(checkpoint),
            fields,
            provenance,
            str(device),
            str(out_dir),
            options,
            modules,
            torch.get_num_threads(),
        )


def _ignore_signals() -> None:
    """A worker leaves SIGINT and SIGTERM to the training process, which drains or stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def score_job(job: EvaluationJob) -> str:
    """A worker's task: read the run's final checkpoint, score it (artifacts written); its record as JSON."""
    from benchmarks.datasets import load_dataset
    from benchmarks.runner.execute import score
    from vae_zoo.checkpoint import model_from_payload, read_checkpoint

    for module in job.modules:
        import_definitions(module)
    torch.set_num_threads(job.torch_threads)  # the codes of scoring in the training process
    device = torch.device(job.device)
    spec = RunSpec.from_dict(job.spec)
    model = model_from_payload(read_checkpoint(job.checkpoint, map_location=device)).to(device).eval()
    dataset = load_dataset(spec.dataset, spec.dataset_source, progress=False)
    outcome = TrainResult(model=model, **job.outcome)
    record, _ = score(spec, outcome, job.provenance, dataset, device, Path(job.out_dir), options=job.options)
    return record.to_json()


class InlineEvaluator:
    """Scores each run in the training process, as soon as it is submitted."""

    workers = 0

    def submit(self, job: MakeJob, finish: Finish, *, evaluate: Callable[[], RunRecord]) -> None:
        """Score now (``evaluate``, with the caller's progress display) and hand the record to ``finish``.

        ``job`` (what a worker process would need) is not built: the run is scored here.
        """
        finish(evaluate())

    def pending(self) -> set[str]:
        """Run ids submitted and not finished: none."""
        return set()

    def collect(self, block: bool = False) -> None:
        """Nothing waits."""

    def drain(self) -> None:
        """Nothing waits."""

    def close(self) -> None:
        """Nothing to stop."""


class PooledEvaluator:
    """Scores runs in ``workers`` spawned processes while the training process goes on."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_signals
        )
        self._futures: dict[Future, tuple[str, Finish]] = {}

    def submit(self, job: MakeJob, finish: Finish, *, evaluate: Callable[[], RunRecord]) -> None:
        """Queue the job ``job()`` builds; ``finish`` gets its record in this process, from ``collect``."""
        while len(self._futures) >= 2 * self.workers:  # bounded: the trainer waits for a free slot
            self.collect(block=True)
        built = job()
        future = self._pool.submit(score_job, built)
        self._futures[future] = (RunSpec.from_dict(built.spec).run_id, finish)

    def pending(self) -> set[str]:
        """Run ids submitted whose record is not yet handed on."""
        return {run_id for run_id, _ in self._futures.values()}

    def collect(self, block: bool = False) -> None:
        """Hand every finished evaluation's record to its ``finish``; ``block``: wait for at least one.

        A worker's exception (a bug) is raised here, in the training process.
        """
        if not self._futures:
            return
        done, _ = wait(list(self._futures), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            _, finish = self._futures.pop(future)
            finish(RunRecord.from_json(future.result()))

    def drain(self) -> None:
        """Wait for every submitted evaluation and hand on its record."""
        while self._futures:
            self.collect(block=True)

    def close(self) -> None:
        """Stop the workers; evaluations not finished are dropped (their runs resume from the checkpoint)."""
        if self._futures:  # stopping before they finished (a second signal, an error): do not wait
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
