"""Datasets loaded once per sweep, and the training images each serves.

Memory (measured by tools/perf/memory.py, results/perf/memory_cpu.md): on
the CPU the training images are read from the cache file batch by batch, so
nothing of a dataset is held in memory (dSprites' cache is bit-packed, 377 MB
on disk; 3D Shapes' is 5.9 GB); on CUDA they are one device-resident uint8
copy (2.8 GiB of GPU memory for dSprites, 5.9 GB for 3D Shapes), uploaded in
chunks of 16,384 images without a host copy of the whole dataset.
"""

from __future__ import annotations

import torch
from rich.console import Console

from benchmarks.datasets import GroundTruthDataset, TrainingImages, load_dataset
from benchmarks.runner.provenance import cpu_model


def device_name(device: torch.device) -> str:
    """The GPU's name for a CUDA device, else the CPU model."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


class DatasetCache:
    """One dataset object and one ``TrainingImages`` per (name, source), loaded once.

    The images are read by index on the CPU, and kept as a device-resident uint8 copy on CUDA.
    """

    def __init__(self, device: torch.device, console: Console | None = None):
        self.device = device
        self.device_name = device_name(device)
        self.console = console or Console()
        self._datasets: dict[tuple[str, str], GroundTruthDataset] = {}
        self._images: dict[tuple[str, str], TrainingImages] = {}

    def dataset(self, name: str, source: str) -> GroundTruthDataset:
        """The dataset object for (name, source), loaded on first use."""
        key = (name, source)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(name, source)
        return self._datasets[key]

    def training_images(self, name: str, source: str) -> TrainingImages:
        """What the training loop draws batches from (``GroundTruthDataset.training_images``), once."""
        key = (name, source)
        if key not in self._images:
            self._images[key] = self.dataset(name, source).training_images(self.device)
        return self._images[key]
