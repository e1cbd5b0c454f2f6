"""UDR over a suite's recorded runs: models of one config with different seeds, scored together.

Duan et al. 2020 (``metrics.udr``) rank a model by how well it agrees with the
other seeds of its hyper-parameter setting. The runner makes that cheap: every
evaluation encodes the same fixed sample of observations (:func:`udr_points`,
``UDR_POINTS`` points drawn from ``RandomState(evaluation_seed)``) and keeps the
posterior means and log-variances in the run's artifacts npz (``udr_mean``,
``udr_logvar``, float32 as the encoder returns them). ``vaebench udr`` then groups
the suite's ok runs by everything in their spec but the seed, loads the cached
encodings (never retrains; a run whose artifact lacks them is encoded from its
checkpoint when there is one, and reported missing otherwise), computes UDR per
group and writes each run's score into its record as ``metrics["udr_<correlation>"]``.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.datasets import load_dataset, to_float
from benchmarks.runner.records import (
    RunRecord,
    artifact_path,
    checkpoint_path,
    iter_records,
    record_path,
    write_record,
)
from metrics import get_metric
from vae_zoo.checkpoint import model_from_payload, read_checkpoint
from vaebench.atomic import atomic_write
from vaebench.errors import UserError

__all__ = ["UDR_POINTS", "UDRReport", "udr_points", "encode_udr", "group_runs", "score_suite_udr"]

#: Observations every model of a group is encoded on (dlib's UDR test configs: 1000).
UDR_POINTS = 1000
CORRELATIONS = ("lasso", "spearman")


def udr_points(dataset, n: int = UDR_POINTS, seed: int = 0) -> np.ndarray:
    """The fixed sample behind UDR: ``n`` observations ``(n, C, H, W)``, the same for every model.

    Factors from ``dataset.sample_factors(n, RandomState(seed))``, then their images (a
    dataset whose observations are random given the factors draws them from the same
    generator, so the sample is still a function of ``seed``).
    """
    if not isinstance(n, int) or n < 2:
        raise UserError(f"n must be an integer >= 2; got {n!r}")
    rng = np.random.RandomState(seed)
    factors = dataset.sample_factors(n, rng)
    if getattr(dataset, "stochastic_observations", False):
        return np.asarray(dataset.sample_observations_from_factors(factors, rng))
    return dataset.images_at(dataset.grid.factors_to_indices(factors))


@torch.no_grad()
def encode_udr(
    model, observations: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``(mean, logvar)``, each ``(n, latent_dim)`` float32, of ``observations (n, C, H, W)``."""
    model = model.to(device).eval()
    means, logvars = [], []
    for start in range(0, len(observations), batch_size):
        x = torch.from_numpy(np.asarray(observations[start : start + batch_size])).to(device)
        mean, logvar = model.encode(to_float(x) if x.dtype == torch.uint8 else x.float())
        means.append(mean.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(means), np.concatenate(logvars)


def group_runs(records: list[RunRecord]) -> list[list[RunRecord]]:
    """Ok runs grouped by their spec without the seed (same dataset, model, config, training, metrics)."""
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        if not record.ok or record.kind != "trained":  # an external representation has no seed group
            continue
        key = json.dumps({k: v for k, v in record.spec.items() if k != "seed"}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(record)
    return [sorted(g, key=lambda r: (r.spec.get("seed", 0), r.run_id)) for g in groups.values()]


def _cached(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as arrays:
        if "udr_mean" not in arrays or "udr_logvar" not in arrays:
            return None
        return arrays["udr_mean"], arrays["udr_logvar"]


def _encode_from_checkpoint(out_dir: Path, record: RunRecord, device) -> tuple[np.ndarray, np.ndarray]:
    """Encode the UDR points with the run's final checkpoint, and cache them in its artifact."""
    spec = record.run_spec
    payload = read_checkpoint(checkpoint_path(out_dir, spec.suite, spec.run_id))
    if payload.get("step") != spec.training.steps:
        raise ValueError(f"checkpoint at step {payload.get('step')} of {spec.training.steps}")
    dataset = load_dataset(spec.dataset, spec.dataset_source)
    mean, logvar = encode_udr(
        model_from_payload(payload), udr_points(dataset, UDR_POINTS, spec.evaluation_seed), device
    )
    path = artifact_path(out_dir, spec.suite, spec.run_id)
    arrays = {}
    if path.is_file():
        with np.load(path) as existing:
            arrays = {k: existing[k] for k in existing.files}
    arrays.update(udr_mean=mean, udr_logvar=logvar)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return mean, logvar


@dataclass
class UDRReport:
    """What ``score_suite_udr`` did: per group its runs and scores; the runs it could not score and why."""

    correlation: str
    groups: list[dict[str, float | None]] = field(default_factory=list)  # run_id -> score, per group
    missing: dict[str, str] = field(default_factory=dict)  # run_id -> reason
    updated: list[Path] = field(default_factory=list)


def score_suite_udr(
    out_dir: Path,
    suite: str,
    correlation: str = "lasso",
    *,
    filter_low_kl: bool = True,
    kl_filter_threshold: float = 0.01,
    device: torch.device | str = "cpu",
) -> UDRReport:
    """UDR of every group of a suite's ok runs (same spec but the seed); writes ``udr_<correlation>``.

    Args:
        out_dir: the output directory holding runs/, artifacts/ and (maybe) checkpoints/.
        suite: the suite whose records to score.
        correlation: ``"lasso"`` (dlib's default) or ``"spearman"``.
        filter_low_kl: leave out latents whose KL is below ``kl_filter_threshold`` (dlib: True).
        kl_filter_threshold: the KL below which a latent is left out (dlib: 0.01).
        device: where a run without cached encodings is encoded from its checkpoint.

    A group with fewer than two encoded runs is not scored (its runs are reported missing).
    """
    if correlation not in CORRELATIONS:
        raise UserError(f"correlation must be one of {', '.join(CORRELATIONS)}; got {correlation!r}")
    out_dir = Path(out_dir)
    name = f"udr_{correlation}"
    metric = get_metric(name)
    records = iter_records(out_dir, suite)
    if not records:
        raise UserError(f"no run records for suite {suite!r} under {out_dir / 'runs'}")
    report = UDRReport(correlation)
    for group in group_runs(records):
        encoded: list[tuple[RunRecord, np.ndarray, np.ndarray]] = []
        for record in group:
            cached = _cached(artifact_path(out_dir, record.suite, record.run_id))
            if cached is None and checkpoint_path(out_dir, record.suite, record.run_id).is_file():
                try:
                    cached = _encode_from_checkpoint(out_dir, record, device)
                except Exception as exc:  # a broken checkpoint is reported, not fatal to the others
                    report.missing[record.run_id] = f"no cached UDR encodings; checkpoint unusable: {exc}"
                    continue
            if cached is None:
                report.missing[record.run_id] = "no cached UDR encodings in its artifact and no checkpoint"
                continue
            encoded.append((record, *cached))
        shapes = {mean.shape for _, mean, _ in encoded}
        if len(shapes) > 1:  # e.g. artifacts written with another UDR_POINTS
            for record, *_ in encoded:
                report.missing[record.run_id] = f"its group's UDR encodings differ in shape: {sorted(shapes)}"
            continue
        if len(encoded) < 2:
            for record, *_ in encoded:
                report.missing[record.run_id] = "fewer than 2 encoded runs (seeds) in its group"
            continue
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = metric.function(
                [m for _, m, _ in encoded],
                [v for _, _, v in encoded],
                filter_low_kl=filter_low_kl,
                kl_filter_threshold=kl_filter_threshold,
            )
        seconds = time.perf_counter() - started
        messages = sorted({str(w.message) for w in caught})
        peers = [r.run_id for r, *_ in encoded]
        report.groups.append({r.run_id: s[name] for (r, *_), s in zip(encoded, scores)})
        for (record, *_), score in zip(encoded, scores):
            record.metrics[name] = float(score[name])
            record.metric_seconds[name] = seconds
            record.metric_warnings[name] = [f"scored with the group {', '.join(peers)}", *messages]
            path = record_path(out_dir, record.suite, record.run_id)
            write_record(path, record)
            report.updated.append(path)
    return report
