"""Where a plan runs: a registry of backends (a Ray or Kubernetes one plugs in without touching the runner).

A backend is a class registered under a name (built in: ``local`` and
``slurm``; third parties through the entry-point group ``vaebench.backends``).
It is built from ``BackendOptions``; ``check()`` refuses what it cannot do
before anything is submitted or trained (a ``BackendError``, exit 2), and
``run(specs, out_dir)`` executes the plan's packs and returns a ``SweepResult``.
Every backend cuts its packs with ``plan.pack_size`` and ends up in
``execute.run_pack`` on each pack, so every backend writes the same records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from rich.console import Console

from benchmarks.runner.evaluator import resolve_evaluation
from benchmarks.runner.plan import pack_size
from benchmarks.runner.state import SweepResult
from benchmarks.runner.sweep import run_sweep
from benchmarks.runner.train import resolve_device
from vaebench.errors import UserError
from vaebench.registry import Registry

__all__ = ["BACKENDS", "Backend", "BackendError", "BackendOptions", "LocalBackend", "get_backend"]


class BackendError(UserError, ValueError):
    """A backend that cannot run here, or an option it does not take; the message says what to do."""


BACKENDS: Registry[type[Backend]] = Registry(
    "backend", "vaebench.backends", builtin_modules=("benchmarks.runner.backends", "benchmarks.runner.slurm")
)
register_backend = BACKENDS.register


@dataclass(frozen=True)
class BackendOptions:
    """What the command line passes to a backend. Cluster options are None unless given."""

    device: str = "auto"  # auto | cpu | cuda (a local run resolves it; a cluster job on its node)
    force: bool = False
    retry_failed: bool = False
    pack: int | None = None
    shard: tuple[int, int] | None = None
    progress_interval: float = 30.0
    fit_jobs: int | None = None  # None: evaluator.resolve_evaluation's default for the device
    eval_workers: int | None = None
    channels_last: bool = False
    encode_batch: int | None = None
    partition: str | None = None
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    timeout_min: int | None = None
    array_parallelism: int | None = None
    no_wait: bool = False

    def given(self, names: tuple[str, ...]) -> list[str]:
        """The cluster options among ``names`` that were set."""
        return [n for n in names if getattr(self, n) not in (None, False)]


CLUSTER_OPTIONS = (
    "partition",
    "gpus_per_job",
    "cpus_per_job",
    "mem_gb",
    "timeout_min",
    "array_parallelism",
    "no_wait",
)


def option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class Backend:
    """Base of a backend: ``accepts`` names the cluster options it takes; the rest are refused."""

    name: ClassVar[str]
    accepts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: BackendOptions, console: Console | None = None):
        self.options = options
        self.console = console or Console()

    def check(self) -> None:
        """Refuse cluster options given to a backend that does not accept them (BackendError)."""
        refused = [n for n in self.options.given(CLUSTER_OPTIONS) if n not in self.accepts]
        if refused:
            flags = ", ".join(option_flag(n) for n in refused)
            raise BackendError(
                f"{flags} need(s) a cluster backend (e.g. --backend slurm); not --backend {self.name}"
            )

    def pack_size(self) -> int:
        """The number of runs this backend trains together in one pack."""
        raise NotImplementedError

    def run(self, specs, out_dir: Path) -> SweepResult:
        """Train the owed runs of ``specs`` into ``out_dir``; what was completed, skipped and failed."""
        raise NotImplementedError


def get_backend(name: str, options: BackendOptions, console: Console | None = None) -> Backend:
    """The backend ``name`` built from ``options`` and checked (UnknownNameError lists the known ones)."""
    backend = BACKENDS.get(name)(options, console)
    backend.check()
    return backend


@register_backend("local")
class LocalBackend(Backend):
    """This process, on this machine: the plan (or one ``--shard`` of it) pack after pack."""

    name = "local"

    def __init__(self, options: BackendOptions, console: Console | None = None):
        super().__init__(options, console)
        self.device: torch.device = resolve_device(options.device)

    def pack_size(self) -> int:
        """The pack size for this machine's device (``plan.pack_size``)."""
        o = self.options
        return pack_size(
            o.pack, self.device.type, device_pinned=o.device != "auto", sharded=o.shard is not None
        )

    def run(self, specs, out_dir: Path) -> SweepResult:
        """Train ``specs`` here, pack by pack (``sweep.run_sweep``)."""
        o = self.options
        options, workers = resolve_evaluation(
            self.device, o.fit_jobs, o.eval_workers, o.channels_last, o.encode_batch
        )
        return run_sweep(
            specs,
            out_dir,
            self.device,
            self.pack_size(),
            force=o.force,
            retry_failed=o.retry_failed,
            shard=o.shard,
            console=self.console,
            progress_interval=o.progress_interval,
            options=options,
            eval_workers=workers,
        )
