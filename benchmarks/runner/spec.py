"""A run spec: everything that determines one run's numbers, typed and immutable. Its hash is the run id.

``RunSpec`` holds typed settings (``settings.RunTraining`` for the loop, read-only
mappings for the model config and the metric settings). No mapping is shared
between specs: each spec owns deep, read-only copies, so changing one spec's
settings (or the suite's dict it came from) can never change another's.

``to_dict`` gives the canonical JSON-like form that records and checkpoints
store and that the run id hashes; ``from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.runner.settings import RunTraining
from vae_zoo import get_model

__all__ = ["RunSpec", "RunTraining", "definition_modules", "freeze", "import_definitions", "thaw"]


#: Leaves of a spec's values, returned as they are. Checked by exact type before the abstract
#: ``Mapping`` check, which is slow: a paper suite's plan freezes and thaws millions of values.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def freeze(value: Any) -> Any:
    """A deep, read-only copy: mappings become MappingProxyType, lists tuples."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return types.MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain JSON-like form of a frozen value: dicts and lists (what JSON reads back)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One run: dataset, model and its config, seed, training, metrics. Hashable by its run id."""

    suite: str
    dataset: str
    model: str
    model_config: Mapping[str, Any]  # the config overrides, incl. architecture, latent_dim, likelihood
    seed: int
    training: RunTraining
    metrics: Mapping[str, Mapping[str, Any]]  # metric name -> its keyword settings
    dataset_source: str = "auto"
    evaluation_seed: int = 0
    representation: str = "mean"
    #: How a weakly-supervised variant's pairs are drawn ({"k": ..., "semantics": ...},
    #: ``benchmarks.datasets.pairs``); None for a variant that trains on single observations.
    pairs: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_config", freeze(self.model_config))
        object.__setattr__(self, "metrics", freeze(self.metrics))
        if self.pairs is not None:
            object.__setattr__(self, "pairs", freeze(self.pairs))
        if isinstance(self.training, Mapping):
            object.__setattr__(self, "training", RunTraining(**self.training))

    def to_dict(self) -> dict[str, Any]:
        """The canonical plain form: what records and checkpoints store and the run id hashes.

        ``pairs`` appears only for pair variants, so the ids of every other run are unchanged.
        """
        plain = {
            "suite": self.suite,
            "dataset": self.dataset,
            "model": self.model,
            "model_config": thaw(self.model_config),
            "seed": self.seed,
            "training": self.training.to_dict(),
            "metrics": thaw(self.metrics),
            "dataset_source": self.dataset_source,
            "evaluation_seed": self.evaluation_seed,
            "representation": self.representation,
        }
        if self.pairs is not None:
            plain["pairs"] = thaw(self.pairs)
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        """The spec of a record's ``spec`` dict; ValueError naming unknown fields."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"run spec has unknown field(s) {', '.join(unknown)}; valid: {', '.join(known)}")
        return cls(**{k: v for k, v in data.items()})

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def run_id(self) -> str:
        """The run's id, ``<model>-<12 hex>``: a hash of its spec without the suite's name.

        So the same experiment has the same id wherever it is listed.
        """
        payload = {k: v for k, v in self.to_dict().items() if k != "suite"}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.model}-{digest[:12]}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.suite, self.run_id))

    @property
    def strength(self) -> tuple[str, float] | None:
        """The variant's regularisation-strength field and its value, for sweeps' x-axes."""
        cls = get_model(self.model)
        if cls.strength_field is None:
            return None
        value = self.model_config.get(cls.strength_field, getattr(cls.Config, cls.strength_field, None))
        return cls.strength_field, value

    def full_model_config(self) -> dict[str, Any]:
        """Every field of the variant's Config, defaults included (what actually builds the model)."""
        config = get_model(self.model).make_config(**thaw(self.model_config))
        return dataclasses.asdict(config)

    def label(self) -> str:
        """``model field=value seed S``, for progress lines."""
        strength = self.strength
        hyper = f" {strength[0]}={strength[1]:g}" if strength else ""
        return f"{self.model}{hyper} seed {self.seed}"


# -- where a run's model and dataset are defined, for another process (a SLURM task, a scoring worker) --


def definition_modules(spec: RunSpec) -> list[str]:
    """Module names, or a file path for what the running script (``__main__``) defines itself.

    Another process imports them (``import_definitions``) to know a plug-in registered by import.
    """
    from benchmarks.datasets import get_dataset_class

    out = []
    for cls in (get_model(spec.model), get_dataset_class(spec.dataset)):
        module = sys.modules.get(cls.__module__)
        if cls.__module__ == "__main__" and getattr(module, "__file__", None):
            spec_name = getattr(getattr(module, "__spec__", None), "name", None)  # python -m pkg.mod
            out.append(spec_name or str(Path(module.__file__).resolve()))
        else:
            out.append(cls.__module__)
    return out


def import_definitions(module: str) -> None:
    """Import a module by name, or a script by path (as its file's stem: its main block does not run)."""
    if not module.endswith(".py"):
        importlib.import_module(module)
        return
    name = Path(module).stem
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, module)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
