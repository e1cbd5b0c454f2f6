"""The dataset registry and its loaders: ``register_dataset``, ``list_datasets``, ``load_dataset``.

Built-in datasets register when their modules are imported; the registry
imports them lazily, and third-party datasets register with the decorator or
the entry-point group ``vaebench.datasets``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vaebench.registry import Registry

if TYPE_CHECKING:
    from .dataset import GroundTruthDataset

__all__ = ["DATASETS", "get_dataset_class", "list_datasets", "load_dataset", "register_dataset"]

DATASETS: Registry[type[GroundTruthDataset]] = Registry(
    "dataset",
    "vaebench.datasets",
    builtin_modules=(
        "benchmarks.datasets.dsprites",
        "benchmarks.datasets.shapes3d",
        "benchmarks.datasets.dsprites_variants",
        "benchmarks.datasets.scream",
        "benchmarks.datasets.smallnorb",
        "benchmarks.datasets.cars3d",
        "benchmarks.datasets.mpi3d",
        "benchmarks.datasets.toy",
    ),
)
register_dataset = DATASETS.register


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching a shell-style wildcard, sorted."""
    return DATASETS.names(pattern)


def get_dataset_class(name: str) -> type[GroundTruthDataset]:
    """The dataset class registered as ``name`` (UnknownNameError lists close names)."""
    return DATASETS.get(name)


def load_dataset(
    name: str, source: str = "auto", root: str | os.PathLike | None = None, *, progress: bool = True
) -> GroundTruthDataset:
    """The dataset ``name`` with its cache ready (generated or converted on first use)."""
    return get_dataset_class(name)(source=source, root=root, progress=progress).prepare()
