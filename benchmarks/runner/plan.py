"""The plan: a sweep's runs cut into packs, the one idempotent unit of work, and sliced into shards.

The plan owns the packing policy: which runs may train together (``pack_key``:
same data, network structure and loop settings; a variant the stacked network
cannot evaluate trains alone) and how many (``pack_size``, the one pack-size
rule, which ``vaebench plan`` and every backend apply alike).

``make_plan(specs, pack_size)`` groups compatible runs into packs (``plan_packs``)
in the suite's expansion order, so the same suite and flags give the same
packs on every machine. A pack's id is a hash of its members' run ids.
``Plan.select_shard(i, n)`` is the i-th of n disjoint slices (packs i, i+n, i+2n, ...;
0 <= i < n, as SLURM array and Kubernetes indexed-job indices count): the n
shards together are the whole plan. Sharding happens before recorded runs are
skipped, so every shard sees the same plan whatever is already done.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.runner.protocol import compare_run
from benchmarks.runner.spec import RunSpec, thaw
from vae_zoo import VAE, get_model
from vaebench.errors import UserError

__all__ = [
    "Pack",
    "Plan",
    "make_plan",
    "parse_shard",
    "ShardError",
    "DEFAULT_PACK",
    "pack_size",
    "check_packable",
    "pack_key",
    "plan_packs",
    "why_not_packable",
]


#: Runs per pack when --pack is not given, by the type of the device that trains. The CPU is already
#: filled by one model (packing measured 0.4-0.7x there); on a GPU one small model leaves it idle.
DEFAULT_PACK = {"cpu": 1, "cuda": 36}


def pack_size(
    pack: int | None, device_type: str, *, device_pinned: bool = True, sharded: bool = False
) -> int:
    """The one pack-size rule: ``pack`` when given, else ``DEFAULT_PACK`` of the training device.

    A shard's plan must not depend on the machine that runs it (every shard must cut the same
    packs), so a sharded plan whose device was not pinned (``--device auto``) does not pack.
    """
    if pack is not None:
        if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
            raise UserError(f"--pack must be a positive integer; got {pack!r}")
        return pack
    if sharded and not device_pinned:
        return 1
    return DEFAULT_PACK.get(device_type, 1)


#: The methods a packable variant leaves to the core: packing evaluates the network for all
#: runs at once and calls only the variant's ``assemble_loss`` (hence its ``regularizer``).
_CORE_METHODS = (
    "forward",
    "encode",
    "decode",
    "assemble_loss",
    "pool_views",
    "make_auxiliary_optimizer",
    "auxiliary_loss",
)


@functools.lru_cache(maxsize=256)
def _skeleton(model: str, config_json: str) -> tuple[str | None, str]:
    """(reason the variant cannot be packed or None, a description of its network's structure)."""
    cls = get_model(model)
    for name in _CORE_METHODS:
        if getattr(cls, name) is not getattr(VAE, name):
            return f"{model} overrides VAE.{name}", ""
    with torch.device("meta"):  # structure only, no memory and no random numbers
        instance = cls(**json.loads(config_json))
    outside = [n for n, _ in instance.named_parameters() if not n.startswith(("encoder.", "decoder."))]
    if outside:
        return f"{model} has parameters outside the encoder and decoder ({', '.join(outside[:3])})", ""
    if any(True for _ in instance.buffers()):
        return f"{model} has buffers, which packing does not stack", ""
    structure = f"{instance.encoder!r}\n{instance.decoder!r}"  # layer types and shapes
    return None, hashlib.sha256(structure.encode()).hexdigest()[:16]


def _structure(spec: RunSpec) -> tuple[str | None, str]:
    return _skeleton(spec.model, json.dumps(thaw(spec.model_config), sort_keys=True))


def why_not_packable(spec: RunSpec) -> str | None:
    """Why the run of ``spec`` must train alone, or None when it can be packed."""
    return _structure(spec)[0]


def network_structure(spec: RunSpec) -> str | None:
    """A packable run's network, as a hash of its layer types and shapes; None for a run that trains alone."""
    reason, structure = _structure(spec)
    return None if reason is not None else structure


def pack_key(spec: RunSpec) -> tuple:
    """Runs with equal keys can train in one pack. A run that cannot be packed gets a key of its own."""
    reason, structure = _structure(spec)
    if reason is not None:
        return ("alone", spec.run_id)
    config = get_model(spec.model).make_config(**thaw(spec.model_config))
    t = spec.training
    return (
        "packed",
        get_model(spec.model).views,  # pairs and single images never share a batch
        json.dumps(thaw(spec.pairs), sort_keys=True),
        spec.dataset,
        spec.dataset_source,
        config.architecture,
        config.latent_dim,
        config.likelihood,
        config.in_channels,
        t.batch_size,
        t.steps,
        t.learning_rate,
        t.optimizer,
        t.precision,
        structure,
    )


def check_packable(specs: Sequence[RunSpec]) -> None:
    """Refuse a pack whose runs do not share one ``pack_key``, saying why."""
    keys = {pack_key(s) for s in specs}
    if len(keys) > 1 or next(iter(keys))[0] == "alone":
        reasons = [f"{s.model}: {why_not_packable(s)}" for s in specs if why_not_packable(s)]
        raise ValueError(
            "runs of one pack must share pack_key (dataset, network, latent size, likelihood, batch "
            "size, steps, learning rate, optimiser, precision)"
            + (f"; cannot pack {'; '.join(reasons)}" if reasons else "")
        )


def plan_packs(specs: Sequence[RunSpec], pack_size: int) -> list[list[RunSpec]]:
    """Split specs into packs of at most ``pack_size`` compatible runs, in the order given.

    Compatible runs are grouped by ``pack_key`` (groups ordered by their first run) and
    cut into consecutive chunks; ``pack_size=1`` gives one run per pack (packing off).
    """
    if isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1:
        raise ValueError(f"pack_size must be a positive integer; got {pack_size!r}")
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(pack_key(spec), []).append(spec)
    return [group[i : i + pack_size] for group in groups.values() for i in range(0, len(group), pack_size)]


class ShardError(UserError, ValueError):
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
        """``pack-<12 hex>``: a hash of the pack's run ids, in order."""
        digest = hashlib.sha256("\n".join(r.run_id for r in self.runs).encode()).hexdigest()
        return f"pack-{digest[:12]}"

    def __len__(self) -> int:
        return len(self.runs)


@dataclass(frozen=True)
class Plan:
    """The packs to train, the pack size they were cut with, and the shard they belong to (if any)."""

    packs: tuple[Pack, ...]
    pack_size: int
    shard: tuple[int, int] | None = None

    @property
    def runs(self) -> list[RunSpec]:
        """Every run of every pack, in training order."""
        return [run for pack in self.packs for run in pack.runs]

    def select_shard(self, index: int, count: int) -> Plan:
        """The index-th of count disjoint slices of the packs (round-robin, which spreads costly packs)."""
        if self.shard is not None:
            raise ValueError("a shard cannot be sharded again")
        return Plan(self.packs[index::count], self.pack_size, (index, count))

    def to_json_rows(self) -> list[dict[str, Any]]:
        """One object per run: ids, names, the full model config, the training settings, the protocol."""
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
    seen: set[str] = set()
    unique = []
    for spec in specs:
        if spec.run_id not in seen:
            seen.add(spec.run_id)
            unique.append(spec)
    return Plan(tuple(Pack(tuple(p)) for p in plan_packs(unique, pack_size)), pack_size)
