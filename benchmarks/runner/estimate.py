"""The plan's cost: seconds per training step from a few steps of the real loop, plus evaluation.

Training is timed by ``train.train_runs`` itself (the one loop), on random
images of the dataset's shape, so estimating needs no dataset on disk and
trains nothing that is kept. Evaluation is estimated from the images each
metric declares it encodes (``MetricSpec.images_encoded``).
"""

from __future__ import annotations

import math
import time

import torch

from benchmarks.datasets import TrainingImages, get_dataset_class
from benchmarks.runner.evaluate import metric_entry
from benchmarks.runner.plan import pack_key
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.train import train_runs
from metrics import get_metric

__all__ = ["seconds_per_step", "estimate_training_seconds", "estimate_evaluation_seconds"]

_TIMED_STEPS = 5


def seconds_per_step(spec: RunSpec, device: torch.device) -> float:
    """The fastest of a few timed steps of ``spec``'s model, through the training loop."""
    shape = get_dataset_class(spec.dataset).observation_shape
    g = torch.Generator().manual_seed(0)
    images = TrainingImages(torch.randint(0, 256, (256, *shape), dtype=torch.uint8, generator=g).to(device))
    short = spec.replace(
        training=spec.training.__class__(
            **{**spec.training.to_dict(), "steps": _TIMED_STEPS, "log_every": _TIMED_STEPS}
        )
    )
    stamps: list[float] = []

    def on_progress(index: int, done: int, total: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    def random_pairs(first: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Any second image and factor 0: a pair variant's step costs the same on random images."""
        second = torch.randint(images.num_images, first.shape, generator=generator, device=first.device)
        return second, torch.zeros_like(first)

    stamps.append(time.perf_counter())
    train_runs([short], images, device, [None], pair_sampler=random_pairs, on_progress=on_progress)
    steps = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # the first step warms up
    return min(steps) if steps else math.nan


def estimate_training_seconds(specs: list[RunSpec], device: torch.device) -> dict[str, float]:
    """run_id -> estimated training seconds, timing each distinct (dataset, model, config) once."""
    per_key: dict[tuple, float] = {}
    out = {}
    for spec in specs:
        key = (spec.model, pack_key(spec))
        if key not in per_key:
            per_key[key] = seconds_per_step(spec, device)
        out[spec.run_id] = per_key[key] * spec.training.steps
    return out


def estimate_evaluation_seconds(spec: RunSpec, device: torch.device) -> float:
    """A rough prior: the images the metrics declare they encode, plus their own cost.

    Rates measured with tools/perf/train_throughput.py (results/perf/train_cpu.md):
    about 2.8e-4 s per image on 2 CPU cores, plus well under a second per metric at the
    fast settings (scaled with the training points at study sizes).
    """
    factor_sizes = tuple(get_dataset_class(spec.dataset).factor_sizes)
    images = sum(
        get_metric(metric_entry(entry)[0]).images_encoded(dict(s), factor_sizes)
        for entry, s in spec.metrics.items()
    )
    per_image, per_metric = (1e-5, 0.2) if device.type == "cuda" else (2.8e-4, 0.5)
    most = max((s.get("n_train", 0) for s in spec.metrics.values()), default=0)
    per_metric *= max(1.0, most / 2000)
    return images * per_image + per_metric * len(spec.metrics)
