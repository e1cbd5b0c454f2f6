"""The plan's cost: seconds per training step from a few steps of the real loop, plus evaluation.

Training is timed by ``train.train_runs`` itself (the one loop), on random
images of the dataset's shape, so estimating needs no dataset on disk and
trains nothing that is kept. Evaluation (``evaluation_costs``, per metric entry)
is the encoding, timed here too (one pass of the run's encoder on random images),
times the grid points the metrics reach for the first time, plus each metric's
fits (``MetricSpec.fit_cost``, measured at the study's settings and scaled by the
points it fits). The evaluation's cache encodes each grid point once, and a
metric's draws of ``d`` points reach an expected ``N (1 - exp(-d / N))`` of the
N grid points (``evaluate.expected_first_reach``); the sampled representation reuses its
metric's points (the same seed draws them). An evaluation expected to reach ENCODE_AHEAD_REACH of
the grid, whose encoding can encode it ahead (``CachedEncoder.can_encode_ahead``: on a CPU, without
--channels-last or --encode-batch), encodes all of it in its first lookup, and the estimate counts
it so. The encoding is timed with the evaluation's options (``EvaluationOptions``: its memory
format and passes). The same per-metric costs give the evaluation's ETA.

Each timing is taken once per process for its key (``timing_key``, ``encoding_key``): runs that
differ only in a regularizer's strength or in their seed run the same network on the same data,
so they cost the same, and so do datasets of one shape (the paper suite's 2,520 runs: 40 step
timings, where there were 455, once per unpackable run, and 40 encoding timings, where there
were 180, once per strength). A suite whose runs differ only in training settings or pairs
shares one encoding timing between them.
"""

from __future__ import annotations

import json
import math
import time

import torch

from benchmarks.datasets import TrainingImages, get_dataset_class
from benchmarks.runner.encoding import FORWARD_BATCH, ScoringPasses
from benchmarks.runner.evaluate import (
    DEFAULT_OPTIONS,
    ENCODE_AHEAD_REACH,
    SUMMARY_POINTS,
    EvaluationOptions,
    expected_first_reach,
    metric_entry,
)
from benchmarks.runner.plan import network_structure
from benchmarks.runner.spec import RunSpec, thaw
from benchmarks.runner.train import train_runs
from metrics import get_metric
from vae_zoo import create_model

__all__ = [
    "encoding_key",
    "timing_key",
    "seconds_per_step",
    "seconds_per_image",
    "estimate_training_seconds",
    "estimate_evaluation_seconds",
    "evaluation_costs",
    "encodes_grid_ahead",
]

_TIMED_STEPS = 5


def encoding_key(spec: RunSpec) -> tuple:
    """What a run's timed encoding depends on (``_timed_encode``): its variant, network and image shape.

    The network is a packable run's layer types and shapes, whatever its regularizer's strength,
    or an unpackable run's whole config; the timing encodes random images, so datasets of one
    shape share it. Never the seed.
    """
    structure = network_structure(spec)
    network = json.dumps(thaw(spec.model_config), sort_keys=True) if structure is None else structure
    return (spec.model, network, tuple(get_dataset_class(spec.dataset).observation_shape))


def timing_key(spec: RunSpec) -> tuple:
    """What a run's timed step depends on (``_timed_steps``).

    Its ``encoding_key``, its pairs, and its training settings but the step counts (the timing
    runs its own few steps).
    """
    training = {k: v for k, v in spec.training.to_dict().items() if k not in _STEP_COUNTS}
    pairs = json.dumps(thaw(spec.pairs), sort_keys=True)
    return (*encoding_key(spec), pairs, json.dumps(training, sort_keys=True))


_STEP_COUNTS = ("steps", "log_every", "checkpoint_every")


#: Timings already taken in this process: (timing_key or encoding_key, device, threads) -> seconds;
#: an encoding's also keyed by its layout (channels_last, encode_batch).
_STEP_SECONDS: dict[tuple, float] = {}
_IMAGE_SECONDS: dict[tuple, float] = {}
#: (encoding_key, device, channels_last, encode_batch) -> whether the grid may be encoded ahead.
_AHEAD: dict[tuple, bool] = {}


def seconds_per_step(spec: RunSpec, device: torch.device) -> float:
    """The fastest of a few timed steps of ``spec``'s model, through the training loop (once per key)."""
    key = (timing_key(spec), str(device), torch.get_num_threads())
    if key not in _STEP_SECONDS:
        _STEP_SECONDS[key] = _timed_steps(spec, device)
    return _STEP_SECONDS[key]


def _timed_steps(spec: RunSpec, device: torch.device) -> float:
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
    """run_id -> estimated training seconds, timing each ``timing_key`` once."""
    return {spec.run_id: seconds_per_step(spec, device) * spec.training.steps for spec in specs}


def _scoring_passes(spec: RunSpec, device: torch.device, options: EvaluationOptions) -> ScoringPasses:
    """The runner's encoding of ``spec``'s model (untrained) on ``device`` with ``options``' layout."""
    model = create_model(spec.model, **spec.full_model_config()).to(device).eval()
    return ScoringPasses(model, device, options.channels_last, options.encode_batch)


def _timed_encode(spec: RunSpec, device: torch.device, options: EvaluationOptions) -> float:
    shape = tuple(get_dataset_class(spec.dataset).observation_shape)
    x = torch.rand(2 * FORWARD_BATCH, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    best = math.inf
    # The runner's encoders' passes: the first checks the layers run faster and the passes side by side.
    encode = _scoring_passes(spec, device, options)
    with torch.inference_mode():
        for _ in range(3):  # the first warms up
            started = time.perf_counter()
            for _ in encode(len(x), lambda batch: x[batch]):
                pass
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - started)
    return best / len(x)


def seconds_per_image(
    spec: RunSpec, device: torch.device, options: EvaluationOptions = DEFAULT_OPTIONS
) -> float:
    """Seconds to encode one image with ``spec``'s encoder on ``device``, timed (once per key)."""
    layout = (options.channels_last, options.encode_batch)
    key = (encoding_key(spec), str(device), torch.get_num_threads(), *layout)
    if key not in _IMAGE_SECONDS:
        _IMAGE_SECONDS[key] = _timed_encode(spec, device, options)
    return _IMAGE_SECONDS[key]


def encodes_grid_ahead(
    spec: RunSpec, device: torch.device, options: EvaluationOptions = DEFAULT_OPTIONS
) -> bool:
    """Whether ``spec``'s evaluation with ``options`` may encode the grid ahead (``CachedEncoder``)."""
    key = (encoding_key(spec), str(device), options.channels_last, options.encode_batch)
    if key not in _AHEAD:
        _AHEAD[key] = _scoring_passes(spec, device, options).same_codes_in_long_passes()
    return _AHEAD[key]


def evaluation_costs(
    spec: RunSpec,
    device: torch.device,
    per_image: float | None = None,
    options: EvaluationOptions = DEFAULT_OPTIONS,
) -> dict[str, float]:
    """Estimated seconds of each metric entry of ``spec``: its first encodings plus its fits (in order).

    The MI matrix's sample, the traversals and the UDR encodings are the entry ``""``. ``per_image``:
    the encoding's seconds an image (default: timed with ``options``' layout).
    """
    per_image = seconds_per_image(spec, device, options) if per_image is None else per_image
    dataset = get_dataset_class(spec.dataset)
    factor_sizes = tuple(dataset.factor_sizes)
    n_points = math.prod(factor_sizes)
    first = expected_first_reach(spec.metrics, factor_sizes)
    # An evaluation expected to reach most of the grid may encode all of it in its first lookup
    ahead = sum(first.values()) >= ENCODE_AHEAD_REACH * n_points and encodes_grid_ahead(spec, device, options)
    grid_encoded = False
    out = {}
    for entry, settings in spec.metrics.items():
        metric = get_metric(metric_entry(entry)[0])
        if dataset.stochastic_observations:  # no cache: every observation drawn is encoded
            new = metric.images_encoded(dict(settings), factor_sizes)
        elif ahead:  # the first entry to reach a point encodes the grid, the others nothing
            new = n_points if first[entry] > 0 and not grid_encoded else 0.0
            grid_encoded = grid_encoded or first[entry] > 0
        else:
            new = first[entry]
        out[entry] = new * per_image + metric.fit_cost.seconds(dict(settings), metric.study, factor_sizes)
    out[""] = SUMMARY_POINTS * per_image
    return out


def estimate_evaluation_seconds(
    spec: RunSpec,
    device: torch.device,
    per_image: float | None = None,
    options: EvaluationOptions = DEFAULT_OPTIONS,
) -> float:
    """The whole evaluation of ``spec`` with ``options``: ``evaluation_costs`` summed."""
    return sum(evaluation_costs(spec, device, per_image, options).values())
