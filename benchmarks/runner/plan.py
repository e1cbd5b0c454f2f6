"""The plan: a sweep's runs cut into packs, the one idempotent unit of work, and sliced into shards.

``make_plan(specs, pack_size)`` groups compatible runs into packs (``packing.plan_packs``)
in the suite's expansion order, so the same suite and flags give the same
packs on every machine. A pack's id is a hash of its members' run ids.
``Plan.shard(i, n)`` is the i-th of n disjoint slices (packs i, i+n, i+2n, ...;
0 <= i < n, as SLURM array and Kubernetes indexed-job indices count): the n
shards together are the whole plan. Sharding happens before recorded runs are
skipped, so every shard sees the same plan whatever is already done.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.runner.spec import RunSpec, thaw

__all__ = ["Pack", "Plan", "make_plan", "parse_shard", "ShardError"]


class ShardError(ValueError):
    """A --shard value that is not I/N with 0 <= I < N."""


def parse_shard(value: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), refusing anything but integers 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if not match:
        raise ShardError(f"--shard must be I/N with integers 0 <= I < N (e.g. 0/4); got {value!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ShardError(f"--shard {value}: need 0 <= I < N and N >= 1 (shards are numbered 0 to N-1)")
    return index, count


@dataclass(frozen=True)
class Pack:
    """Runs that train together as one computation (one run when packing is off)."""

    runs: tuple[RunSpec, ...]

    @property
    def pack_id(self) -> str:
        digest = hashlib.sha256("\n".join(r.run_id for r in self.runs).encode()).hexdigest()
        return f"pack-{digest[:12]}"

    def __len__(self) -> int:
        return len(self.runs)


@dataclass(frozen=True)
class Plan:
    packs: tuple[Pack, ...]
    pack_size: int
    shard: tuple[int, int] | None = None

    @property
    def runs(self) -> list[RunSpec]:
        return [run for pack in self.packs for run in pack.runs]

    def pack_of(self) -> dict[str, str]:
        """run_id -> pack_id."""
        return {run.run_id: pack.pack_id for pack in self.packs for run in pack.runs}

    def select_shard(self, index: int, count: int) -> Plan:
        """The index-th of count disjoint slices of the packs (round-robin, which spreads costly packs)."""
        if self.shard is not None:
            raise ValueError("a shard cannot be sharded again")
        return Plan(self.packs[index::count], self.pack_size, (index, count))

    def to_json_rows(self) -> list[dict[str, Any]]:
        """One object per run: ids, names, the full model config, the training settings, the protocol."""
        from benchmarks.runner.protocol import compare_run

        rows = []
        for pack in self.packs:
            for run in pack.runs:
                rows.append(
                    {
                        "run_id": run.run_id,
                        "pack_id": pack.pack_id,
                        "suite": run.suite,
                        "model": run.model,
                        "dataset": run.dataset,
                        "dataset_source": run.dataset_source,
                        "seed": run.seed,
                        "model_config": run.full_model_config(),
                        "training": run.training.to_dict(),
                        "protocol": compare_run(run).to_dict(),
                        "metrics": thaw(run.metrics),
                        "evaluation_seed": run.evaluation_seed,
                    }
                )
        return rows


def make_plan(specs: Sequence[RunSpec], pack_size: int) -> Plan:
    """The packs of ``specs``; duplicate run ids (the same run listed twice) are planned once."""
    from benchmarks.runner.packing import plan_packs

    seen: set[str] = set()
    unique = []
    for spec in specs:
        if spec.run_id not in seen:
            seen.add(spec.run_id)
            unique.append(spec)
    return Plan(tuple(Pack(tuple(p)) for p in plan_packs(unique, pack_size)), pack_size)
