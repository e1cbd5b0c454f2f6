"""Scoring a trained model: sample ground truth, encode, and call the metrics.

The representation is the posterior mean (Locatello et al. 2019). As in
disentanglement_lib's evaluation protocol every metric starts from the same
``RandomState(evaluation_seed)``, so the array metrics all see the same train
and test sample: we draw it once (train first, then test, from one generator)
and encode it once. Intervention metrics (beta-VAE, FactorVAE scores) get their
own fresh generator and draw their own batches.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.datasets import GroundTruthDataset, to_float
from benchmarks.runner.suite import RunSpec
from vae_zoo import VAE

__all__ = ["Evaluation", "evaluate_run", "make_encoder", "reevaluate", "estimate_evaluation_seconds"]

#: Settings keys the runner consumes to draw samples; the rest go to the metric function.
SAMPLING_KEYS = ("num_train", "num_test")
TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 8)


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


def make_encoder(
    model: VAE, device: torch.device, batch_size: int = 512
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """uint8 images (n, C, 64, 64) -> posterior (mean, logvar), each float64 (n, D), in batches."""

    @torch.no_grad()
    def encode(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, logvars = [], []
        for start in range(0, len(images), batch_size):
            x = to_float(
                torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
            )
            mean, logvar = model.encode(x)
            means.append(mean.double().cpu().numpy())
            logvars.append(logvar.double().cpu().numpy())
        d = model.config.latent_dim
        if not means:
            return np.zeros((0, d)), np.zeros((0, d))
        return np.concatenate(means), np.concatenate(logvars)

    return encode


def _split_settings(settings: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
    sampling = {k: settings[k] for k in SAMPLING_KEYS if k in settings}
    return sampling, {k: v for k, v in settings.items() if k not in SAMPLING_KEYS}


def evaluate_run(
    spec: RunSpec,
    model: VAE,
    dataset: GroundTruthDataset,
    device: torch.device,
    metrics: list[str] | None = None,
) -> Evaluation:
    """Every metric of the spec (or the named subset), the MI matrix, and traversal images."""
    from metrics import get_metric, mutual_info_matrix

    model = model.to(device).eval()
    encode = make_encoder(model, device)
    names = metrics if metrics is not None else list(spec.metrics)
    settings = {name: spec.metrics.get(name) or get_metric(name).fast for name in names}
    result = Evaluation()

    # One shared sample for the array metrics, as big as the largest metric asks for.
    sizes = [_split_settings(s)[0] for s in settings.values()]
    num_train = max([s.get("num_train", 0) for s in sizes] + [1000])
    num_test = max([s.get("num_test", 0) for s in sizes] + [0])
    rng = np.random.RandomState(spec.evaluation_seed)
    factors_train = dataset.sample_factors(num_train, rng)
    factors_test = dataset.sample_factors(num_test, rng) if num_test else factors_train[:0]
    started = time.perf_counter()
    mean_train, logvar_train = encode(dataset.images(factors_train))
    mean_test, _ = encode(dataset.images(factors_test)) if num_test else (mean_train[:0], None)
    result.seconds["encode_sample"] = time.perf_counter() - started

    for name in names:
        metric = get_metric(name)
        sampling, kwargs = _split_settings(settings[name])
        n_train = sampling.get("num_train", num_train)
        n_test = sampling.get("num_test", num_test)
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # kept in the record, not lost in the log
            warnings.simplefilter("always")
            scores = _call_metric(
                metric,
                kwargs,
                spec=spec,
                dataset=dataset,
                encode=encode,
                train=(mean_train[:n_train], factors_train[:n_train]),
                test=(mean_test[:n_test], factors_test[:n_test]),
            )
        result.seconds[name] = time.perf_counter() - started
        if caught:
            result.warnings[name] = sorted({str(w.message) for w in caught})
        result.metrics.update({k: float(v) for k, v in scores.items()})

    mi = mutual_info_matrix(mean_train, factors_train)  # (codes, factors), nats
    result.mi_matrix = {"codes_by_factors": mi.tolist(), "factor_names": list(dataset.factor_names)}
    kl = 0.5 * (mean_train**2 + np.exp(logvar_train) - logvar_train - 1.0)
    result.kl_per_dim = kl.mean(axis=0)
    result.traversals = traversals(model, mean_train[0], device)
    return result


def _call_metric(metric, kwargs, *, spec, dataset, encode, train, test) -> dict[str, float]:
    """Dispatch on what the metric takes (recorded in its registry entry)."""
    kind = metric.inputs
    if kind == "codes_factors":
        return metric.function(train[0], train[1], **kwargs)
    if kind == "codes_only":
        return metric.function(train[0], **kwargs)
    if kind == "train_test":
        return metric.function(train[0], train[1], test[0], test[1], **kwargs)
    if kind == "sampler":
        rng = np.random.RandomState(spec.evaluation_seed)
        return metric.function(dataset, lambda obs: encode(obs)[0], rng=rng, **kwargs)
    if kind == "posterior_grid":
        factors = posterior_grid_factors(dataset, kwargs.pop("grid_stride", None))
        mean, logvar = encode(dataset.images(factors))
        rng = np.random.RandomState(spec.evaluation_seed)
        return metric.function(mean, logvar, factors, dataset.factor_sizes, rng=rng, **kwargs)
    raise ValueError(f"metric {metric.name!r} takes inputs of kind {kind!r}, which the runner does not know")


def posterior_grid_factors(dataset: GroundTruthDataset, stride: dict[str, int] | None) -> np.ndarray:
    """The whole factor grid, or a sub-grid taking every ``stride[name]``-th value of some factors."""
    stride = stride or {}
    unknown = set(stride) - set(dataset.factor_names)
    if unknown:
        raise ValueError(
            f"grid_stride names unknown factor(s) {sorted(unknown)}; factors: {dataset.factor_names}"
        )
    axes = [np.arange(0, k, stride.get(n, 1)) for n, k in zip(dataset.factor_names, dataset.factor_sizes)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.int64)


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
    """A rough prior for the plan's time estimate: encoding throughput and the metrics' fast/study cost."""
    images = 0
    for settings in spec.metrics.values():
        images += settings.get("num_train", 0) + settings.get("num_test", 0)
        images += (
            2 * settings.get("batch_size", 0) * (settings.get("num_train", 0) + settings.get("num_eval", 0))
        )
    per_image = 1e-5 if device.type == "cuda" else 2e-4
    return min(images, 10**7) * per_image + 5.0 * len(spec.metrics) * (1 if device.type == "cuda" else 2)


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
