"""Scoring a trained model: the metrics package samples, the runner encodes.

The representation is the posterior mean (Locatello et al. 2019). As in
disentanglement_lib's evaluation protocol, every metric starts from its own
``RandomState(evaluation_seed)`` and ``metrics.evaluate_metric`` draws what the
metric needs. Every metric therefore draws the same train points, and the
intervention metrics revisit grid points too: the runner hands the metrics flat
grid indices as "observations" and encodes each index once (the images of a
grid point are fixed and the encoder is deterministic in eval mode), which
makes a whole evaluation cost about one pass over the distinct points it touches.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.datasets import GroundTruthDataset, to_float
from benchmarks.runner.suite import RunSpec
from vae_zoo import VAE

__all__ = [
    "Evaluation",
    "CachedEncoder",
    "IndexSampler",
    "evaluate_run",
    "reevaluate",
    "estimate_evaluation_seconds",
]

TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 8)
#: Points of the shared sample behind the record's MI matrix and per-latent KL.
SUMMARY_POINTS = 2000


@dataclass
class Evaluation:
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    mi_matrix: dict[str, Any] | None = None
    traversals: np.ndarray | None = None  # (n_latents, n_steps, C, 64, 64) uint8
    kl_per_dim: np.ndarray | None = None  # (n_latents,)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # metric name -> messages it warned

    def save_artifacts(self, path: Path) -> None:
        """Traversal images for the figures, as a compressed npz written atomically."""
        if self.traversals is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez_compressed(
            tmp, traversals=self.traversals, traversal_values=TRAVERSAL_VALUES, kl_per_dim=self.kl_per_dim
        )
        tmp.replace(path)


class IndexSampler:
    """The dataset as the metrics' sampler, with flat grid indices standing in for images."""

    def __init__(self, dataset: GroundTruthDataset):
        self.dataset = dataset
        self.factor_sizes = tuple(dataset.factor_sizes)

    def sample_factors(self, n: int, rng) -> np.ndarray:
        return self.dataset.sample_factors(n, rng)

    def sample_observations_from_factors(self, factors: np.ndarray, rng=None) -> np.ndarray:
        return self.dataset.grid.factors_to_indices(factors)  # (n,) int64


class CachedEncoder:
    """Flat indices (n,) -> posterior mean and logvar (n, D), each grid point encoded once."""

    def __init__(self, model: VAE, dataset: GroundTruthDataset, device: torch.device, batch_size: int = 1024):
        self.model, self.dataset, self.device, self.batch_size = model, dataset, device, batch_size
        d = model.config.latent_dim
        self.posterior = np.zeros((len(dataset), 2, d))  # (N, [mean, logvar], D)
        self.done = np.zeros(len(dataset), dtype=bool)
        self.encoded = 0

    @torch.no_grad()
    def _fill(self, indices: np.ndarray) -> None:
        todo = np.unique(indices[~self.done[indices]])
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            x = to_float(torch.from_numpy(self.dataset.images_at(chunk)).to(self.device))
            mean, logvar = self.model.encode(x)
            self.posterior[chunk, 0] = mean.double().cpu().numpy()
            self.posterior[chunk, 1] = logvar.double().cpu().numpy()
            self.done[chunk] = True
            self.encoded += len(chunk)

    def posterior_of(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._fill(indices)
        return self.posterior[indices, 0], self.posterior[indices, 1]

    def mean_of(self, indices: np.ndarray) -> np.ndarray:
        """The representation scored in the study: the posterior mean."""
        return self.posterior_of(indices)[0]


def evaluate_run(
    spec: RunSpec,
    model: VAE,
    dataset: GroundTruthDataset,
    device: torch.device,
    metric_names: list[str] | None = None,
) -> Evaluation:
    """Every metric of the spec (or the named subset), the MI matrix, and traversal images."""
    from metrics import discrete_mutual_info, evaluate_metric, get_metric, histogram_discretize

    model = model.to(device).eval()
    encoder = CachedEncoder(model, dataset, device)
    sampler = IndexSampler(dataset)
    result = Evaluation()
    for name in metric_names if metric_names is not None else list(spec.metrics):
        metric = get_metric(name)
        overrides = dict(spec.metrics.get(name) or metric.settings("fast"))
        if "exclude_factors" in inspect.signature(metric.function).parameters:
            # A property of the dataset, not of the suite (Chen et al. drop dSprites' shape).
            overrides.setdefault("exclude_factors", tuple(dataset.mig_chen_excluded_factors))
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # kept in the record, not lost in the log
            warnings.simplefilter("always")
            scores = evaluate_metric(
                metric,
                sampler,
                encoder.mean_of,
                np.random.RandomState(spec.evaluation_seed),
                encode_posterior=encoder.posterior_of,
                **overrides,
            )
        result.seconds[name] = time.perf_counter() - started
        if caught:
            result.warnings[name] = sorted({str(w.message) for w in caught})
        result.metrics.update({k: float(v) for k, v in scores.items()})
    result.seconds["points_encoded"] = float(encoder.encoded)

    rng = np.random.RandomState(spec.evaluation_seed)
    factors = dataset.sample_factors(SUMMARY_POINTS, rng)
    mean, logvar = encoder.posterior_of(sampler.sample_observations_from_factors(factors))
    mi = discrete_mutual_info(histogram_discretize(mean, 20), factors)  # (codes, factors), nats
    result.mi_matrix = {"codes_by_factors": mi.tolist(), "factor_names": list(dataset.factor_names)}
    result.kl_per_dim = (0.5 * (mean**2 + np.exp(logvar) - logvar - 1.0)).mean(axis=0)
    result.traversals = traversals(model, mean[0], device)
    return result


@torch.no_grad()
def traversals(model: VAE, reference_mean: np.ndarray, device: torch.device) -> np.ndarray:
    """Decode the reference mean, one latent swept over TRAVERSAL_VALUES: (D, n_steps, C, 64, 64) uint8."""
    d, n = model.config.latent_dim, len(TRAVERSAL_VALUES)
    z = torch.tensor(reference_mean, dtype=torch.float32, device=device).repeat(d, n, 1)  # (D, n, D)
    z[torch.arange(d), :, torch.arange(d)] = torch.tensor(
        TRAVERSAL_VALUES, dtype=torch.float32, device=device
    )
    images = torch.sigmoid(model.decode(z.reshape(d * n, d)))  # (D * n, C, 64, 64)
    return (images * 255).round().to(torch.uint8).cpu().numpy().reshape(d, n, *images.shape[1:])


def estimate_evaluation_seconds(spec: RunSpec, device: torch.device) -> float:
    """A rough prior for the plan's time estimate: the images the metrics encode, plus their own cost.

    Image counts from each metric's settings: ``n_train + n_test`` points; the intervention
    scores encode batches of pairs (β-VAE: ``2 * batch_size`` per point) or of one batch
    (FactorVAE, plus its variance estimate); Chen et al.'s MIG encodes its thinned grid. The
    encoder's cache makes the true count smaller. Rates measured with
    benchmarks/perf/train_throughput.py (results/perf/train_cpu.md): about 2.8e-4 s per
    image on 2 CPU cores, plus well under a second per metric at the fast settings.
    """
    from benchmarks.datasets import get_dataset_class

    factor_sizes = get_dataset_class(spec.dataset).factor_sizes
    images = 0
    for settings in spec.metrics.values():
        points = settings.get("n_train", 0) + settings.get("n_eval", settings.get("n_test", 0))
        if "n_variance_estimate" in settings:  # FactorVAE: one batch per vote
            images += settings.get("batch_size", 1) * points + settings["n_variance_estimate"]
        elif "n_eval" in settings:  # β-VAE: a pair of batches per point
            images += 2 * settings.get("batch_size", 1) * points
        elif "grid_max_values" in settings:  # Chen et al.'s MIG: the (thinned) factor grid
            most = settings["grid_max_values"]  # None: the full grid
            images += math.prod(size if most is None else min(size, most) for size in factor_sizes)
        else:
            images += points
    per_image, per_metric = (1e-5, 0.2) if device.type == "cuda" else (2.8e-4, 0.5)
    per_metric *= max(1.0, max((s.get("n_train", 0) for s in spec.metrics.values()), default=0) / 2000)
    return images * per_image + per_metric * len(spec.metrics)


def reevaluate(target: str, out_dir: Path, metrics: list[str] | None, device: torch.device, console=None):
    """`vaebench eval`: recompute metrics of a run from its checkpoint and update its record."""
    from benchmarks.datasets import load_dataset
    from benchmarks.runner.records import checkpoint_path, read_record, record_path, write_record
    from metrics import get_metric
    from vae_zoo.checkpoint import CheckpointError, model_from_payload, read_checkpoint

    out_dir = Path(out_dir)
    target_path = Path(target)
    if target_path.suffix == ".pt" or target_path.is_file():
        payload = read_checkpoint(target_path)
        if "run_spec" not in payload:
            raise CheckpointError(
                f"checkpoint {target_path} holds no run spec; it was not written by the runner"
            )
        spec = RunSpec(**payload["run_spec"])
    else:
        matches = sorted((out_dir / "runs").glob(f"*/{target}.json"))
        if not matches:
            known = sorted(p.stem for p in (out_dir / "runs").glob("*/*.json"))
            raise ValueError(
                f"no run {target!r} under {out_dir / 'runs'}; known runs: {', '.join(known) or '(none)'}"
            )
        spec = RunSpec(**read_record(matches[0])["spec"])
        target_path = checkpoint_path(out_dir, spec.suite, spec.run_id)
        payload = read_checkpoint(target_path)
    if payload.get("step") != spec.training["steps"]:
        raise CheckpointError(
            f"checkpoint {target_path} is at step {payload.get('step')} of {spec.training['steps']}; "
            "finish the run with `vaebench run` first"
        )
    for name in metrics or []:
        get_metric(name)  # unknown names fail before any work
    model = model_from_payload(payload).to(device).eval()
    dataset = load_dataset(spec.dataset, spec.dataset_source)
    evaluation = evaluate_run(spec, model, dataset, device, metrics)
    path = record_path(out_dir, spec.suite, spec.run_id)
    record = read_record(path)
    record["metrics"].update(evaluation.metrics)
    record["metric_seconds"].update({k: v for k, v in evaluation.seconds.items()})
    record["mi_matrix"] = evaluation.mi_matrix
    record.setdefault("metric_warnings", {}).update(evaluation.warnings)
    write_record(path, record)
    return path, {k: (v if math.isfinite(v) else None) for k, v in evaluation.metrics.items()}
