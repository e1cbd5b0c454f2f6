"""Scoring a trained model: the metrics package samples, the runner encodes.

The representation is the posterior mean (Locatello et al. 2019). As in
disentanglement_lib's evaluation protocol, every metric starts from its own
``RandomState(evaluation_seed)`` and ``metrics.evaluate_metric`` draws what the
metric needs. Every metric therefore draws the same train points, and the
intervention metrics revisit grid points too: the runner hands the metrics flat
grid indices as "observations" and encodes each index once (the images of a
grid point are fixed and the encoder is deterministic in eval mode), which
makes a whole evaluation cost about one pass over the distinct points it touches. Where the
metrics are expected to touch most of the grid (the study's settings), the whole grid is encoded
ahead, in passes that give each point the codes its lookups give it (``CachedEncoder``).
Datasets whose observations are random given the factors (``stochastic_observations``:
colour, noise, painting patch, smallNORB's instance) get no cache: the metrics draw
real observations from the dataset, as in dlib, and ``ObservationEncoder`` encodes them.

The encoders take any object whose ``encode(x)`` maps a float32 batch ``(B, C, H, W)`` in [0, 1]
on the device to ``(mean, logvar)``, each ``(B, D)``: a ``vae_zoo.VAE``, or a representation
trained elsewhere (``benchmarks.score``), whose ``logvar`` may be None (codes only; the
posterior metrics are then refused before scoring). ``evaluate_encoder`` scores such an object;
``evaluate_run`` scores a trained run with it and adds what needs the decoder (traversals).

How an evaluation runs, apart from what it computes, is an ``EvaluationOptions``: the threads of a
metric's independent fits (no number depends on them) and the encoder's memory format (channels_last
changes the codes' last bits, so it is a named option, recorded in the evaluation's provenance,
never a default).
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.datasets import GroundTruthDataset, to_float
from benchmarks.runner.encoding import FORWARD_BATCH, ScoringPasses, same_bits
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.udr import UDR_POINTS, encode_udr, udr_points
from metrics import discrete_mutual_info, evaluate_metric, get_metric, histogram_discretize
from vae_zoo import VAE
from vaebench.atomic import atomic_write
from vaebench.errors import UserError
from vaebench.memory import release_freed_memory

__all__ = [
    "Evaluation",
    "EvaluationOptions",
    "DEFAULT_OPTIONS",
    "ENCODE_AHEAD_REACH",
    "CachedEncoder",
    "IndexSampler",
    "ObservationEncoder",
    "REPRESENTATIONS",
    "evaluate_encoder",
    "evaluate_run",
    "expected_first_reach",
    "metric_entry",
]

TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 8)
#: Points of the shared sample behind the record's MI matrix and per-latent KL.
SUMMARY_POINTS = 2000


@dataclass(frozen=True)
class EvaluationOptions:
    """How an evaluation runs, apart from what it computes; kept in the record's evaluation provenance.

    ``fit_jobs``: threads for a metric's independent fits (DCI's and the downstream task's trees,
    SAP's and modularity's classifiers): every metric that takes ``n_jobs`` gets it unless its
    settings name one. Their results do not depend on it (tested); BLAS stays single-threaded
    inside the metrics, so the fits never oversubscribe. ``channels_last``: the encoder's
    convolutions in NHWC (on a CPU no faster than the default since the default keeps its
    convolutions on oneDNN's blocked tensors, results/perf/eval_cost_cpu.md's encoding table);
    ``encode_batch``: whole forward passes of that many images on all threads instead of the
    recorded ones (``forward_batches``; slower on a CPU than the default's passes side by side,
    in that table). With either, the codes differ in their last bits from the default's, so the
    scores may too.
    """

    fit_jobs: int = 1
    channels_last: bool = False
    encode_batch: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.fit_jobs, bool) or not isinstance(self.fit_jobs, int) or self.fit_jobs < 1:
            raise UserError(f"fit jobs must be a positive integer; got {self.fit_jobs!r}")
        batch = self.encode_batch
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise UserError(f"encode batch must be a positive integer; got {batch!r}")

    def to_dict(self) -> dict[str, Any]:
        """The options as recorded."""
        return asdict(self)

    def metric_settings(self, name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """``settings`` with ``n_jobs = fit_jobs`` where metric ``name`` takes it and they name none."""
        out = dict(settings)
        if self.fit_jobs > 1 and "n_jobs" not in out and "n_jobs" in _parameters(name):
            out["n_jobs"] = self.fit_jobs
        return out


#: The default: the fits on one thread, contiguous convolutions.
DEFAULT_OPTIONS = EvaluationOptions()


def _parameters(name: str) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(get_metric(name).function).parameters


@dataclass
class Evaluation:
    """What the evaluation of one run produced: scores, timings, the MI matrix and the figures' arrays."""

    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    mi_matrix: dict[str, Any] | None = None
    traversals: np.ndarray | None = None  # (n_latents, n_steps, C, 64, 64) uint8
    kl_per_dim: np.ndarray | None = None  # (n_latents,)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # metric name -> messages it warned
    counts: dict[str, int] = field(default_factory=dict)  # e.g. points_encoded
    # Posterior on the fixed UDR sample (benchmarks.runner.udr), for `vaebench udr`: (UDR_POINTS, D) float32.
    udr_mean: np.ndarray | None = None
    udr_logvar: np.ndarray | None = None

    def save_artifacts(self, path: Path) -> None:
        """Traversal images for the figures, as a compressed npz written atomically."""
        if self.traversals is None:
            return
        arrays = {
            "traversals": self.traversals,
            "traversal_values": TRAVERSAL_VALUES,
            "kl_per_dim": self.kl_per_dim,
        }
        if self.udr_mean is not None:
            arrays.update(udr_mean=self.udr_mean, udr_logvar=self.udr_logvar)
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


class IndexSampler:
    """The dataset as the metrics' sampler, with flat grid indices standing in for images."""

    def __init__(self, dataset: GroundTruthDataset):
        self.dataset = dataset
        self.factor_sizes = tuple(dataset.factor_sizes)

    def sample_factors(self, n: int, rng) -> np.ndarray:
        """``n`` factor draws ``(n, n_factors)`` from the dataset."""
        return self.dataset.sample_factors(n, rng)

    def sample_observations_from_factors(self, factors: np.ndarray, rng=None) -> np.ndarray:
        """The flat grid indices ``(n,)`` of ``factors``, standing in for the images."""
        return self.dataset.grid.factors_to_indices(factors)  # (n,) int64


#: A short pass (under FORWARD_BATCH images) of this many images or more is checked once per size
#: and thread count against the codes its images got in long passes (``CachedEncoder``); a smaller
#: one always runs. On the AMD EPYC of results/perf/eval_cost_cpu.md, dlib_conv's whole passes on two
#: threads gave the long passes' codes at every size from 12 to 255 and differed at 1-3, 5-7 and 9-11
#: (an ad-hoc probe); a check on 32 or more images compares at least 640 numbers.
SHORT_PASS_CHECKED = 32


class CachedEncoder:
    """Flat indices (n,) -> posterior mean and logvar (n, D), each grid point encoded once.

    ``model`` is anything with ``encode(x) -> (mean, logvar)`` (see the module docstring); a logvar of
    None is kept as NaN. ``precomputed`` builds one from codes of every grid point, encoding nothing.

    A grid point's codes are those of the forward passes that encode the points a lookup reaches
    first (``reached``), in index order: what a record was made with. ``encode_grid_ahead`` (set by
    ``evaluate_encoder`` when its metrics are expected to reach most of the grid) encodes the whole
    grid in passes of FORWARD_BATCH or more at the first lookup instead, at the side-by-side passes'
    full rate, where the metrics' lookups come a few hundred new points at a time. Where an image
    gets the same codes in every such pass (``ScoringPasses.same_codes_in_long_passes``), a lookup's
    long passes are then already done; its short passes (a lookup's last chunk under FORWARD_BATCH
    points, whose codes may depend on the pass) still run as they always did, so every point gets
    the codes it gets without encoding ahead.
    """

    def __init__(
        self,
        model: VAE | Any,
        dataset: GroundTruthDataset,
        device: torch.device,
        eps_seed: int = 0,
        channels_last: bool = False,
        encode_batch: int | None = None,
    ):
        self.model, self.dataset, self.device = model, dataset, device
        self.forward = ScoringPasses(model, device, channels_last, encode_batch)
        # (N, [mean, logvar], D) in the encoder's own precision (float32: half the memory of float64,
        # the same values), allocated at the first batch; read out as float64, as the metrics get them
        self.posterior: np.ndarray | None = None
        self.reached = np.zeros(len(dataset), dtype=bool)  # a lookup has reached the point
        self.in_long_pass = np.zeros(len(dataset), dtype=bool)  # its codes are from a long pass
        # (pass size, threads) -> whether a short pass of that size gave its images the long passes' codes
        self.short_pass_agrees: dict[tuple[int, int], bool] = {}
        self.encode_grid_ahead = False
        self.encoded = 0  # images encoded
        self.encoded_ahead = 0  # of them, encoded ahead of any lookup
        self.eps: np.ndarray | None = None  # the sampled representation's noise, drawn on first use
        self.eps_seed = eps_seed

    @classmethod
    def precomputed(
        cls,
        dataset: GroundTruthDataset,
        mean: np.ndarray,
        logvar: np.ndarray | None = None,
        eps_seed: int = 0,
    ) -> CachedEncoder:
        """Codes ``(N, D)`` of every grid point in the dataset's flat order: every lookup, no encoding."""
        encoder = cls(None, dataset, torch.device("cpu"), eps_seed=eps_seed)
        encoder.posterior = np.stack([mean, mean if logvar is None else logvar], axis=1)
        if logvar is None:
            encoder.posterior[:, 1] = np.nan
        encoder.reached[:] = True
        return encoder

    def can_encode_ahead(self) -> bool:
        """Whether encoding the grid ahead leaves every point's codes as they are (the class docstring)."""
        return self.model is not None and self.forward.same_codes_in_long_passes()

    def _encode(self, points: np.ndarray, passes: list[slice]) -> None:
        """The images of ``points`` (sorted flat indices) through ``passes`` (slices of ``points``)."""

        def load(batch: slice) -> torch.Tensor:  # (B, C, H, W) float32 on the device
            return to_float(torch.from_numpy(self.dataset.images_at(points[batch])).to(self.device))

        for batch, mean, logvar in self.forward.run(passes, load):
            chunk = points[batch]
            mean = mean.cpu().numpy()
            if self.posterior is None:
                self.posterior = np.zeros((len(self.dataset), 2, mean.shape[1]), dtype=mean.dtype)
            self.posterior[chunk, 0] = mean
            self.posterior[chunk, 1] = np.nan if logvar is None else logvar.cpu().numpy()
            self.encoded += len(chunk)
        for batch in passes:
            self.in_long_pass[points[batch]] = batch.stop - batch.start >= FORWARD_BATCH

    def _encode_grid(self) -> None:
        """Every grid point in the long passes of one lookup of the whole grid (a short last one left)."""
        self.encode_grid_ahead = False
        points = np.arange(len(self.dataset))
        passes = [p for p in self.forward.passes(len(points)) if p.stop - p.start >= FORWARD_BATCH]
        before = self.encoded
        self._encode(points, passes)
        self.encoded_ahead += self.encoded - before

    def _passes_to_run(self, todo: np.ndarray) -> tuple[list[slice], list[slice]]:
        """The passes that encode ``todo`` (as without encoding ahead) that must run, and those to check.

        A long pass whose points all have codes from a long pass gives them those codes: it need not
        run. A short pass of SHORT_PASS_CHECKED or more images, of a size and thread count whose check
        found it giving the long passes' codes (``short_pass_agrees``), need not run either; one of a
        size not checked yet runs and is checked. Any other pass runs.
        """
        threads = torch.get_num_threads()
        run, check = [], []
        for batch in self.forward.passes(len(todo)):
            size = batch.stop - batch.start
            if not self.in_long_pass[todo[batch]].all() or size < SHORT_PASS_CHECKED:
                run.append(batch)
            elif size < FORWARD_BATCH:
                agrees = self.short_pass_agrees.get((size, threads))
                if agrees is None:
                    check.append(batch)
                elif not agrees:
                    run.append(batch)
        return run, check

    @torch.no_grad()
    def _fill(self, indices: np.ndarray) -> None:
        if self.encode_grid_ahead and self.can_encode_ahead():
            self._encode_grid()
        todo = np.unique(indices[~self.reached[indices]])  # (m,) the points reached first here, sorted
        run, check = self._passes_to_run(todo)
        ahead = [self.posterior[todo[batch]] for batch in check]  # (size, 2, D) each, copies
        self._encode(todo, run + check)
        for batch, codes in zip(check, ahead):
            key = (batch.stop - batch.start, torch.get_num_threads())
            encoded = self.posterior[todo[batch]]  # (size, 2, D), the pass's own codes
            self.short_pass_agrees[key] = same_bits((torch.from_numpy(codes),), (torch.from_numpy(encoded),))
        self.reached[todo] = True

    def posterior_of(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and logvar ``(n, D)`` float64 of the grid points ``indices``, encoded once each."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._fill(indices)
        codes = self.posterior[indices].astype(np.float64)  # (n, 2, D)
        return codes[:, 0], codes[:, 1]

    def mean_of(self, indices: np.ndarray) -> np.ndarray:
        """The representation scored in the study: the posterior mean."""
        return self.posterior_of(indices)[0]

    def sampled_of(self, indices: np.ndarray) -> np.ndarray:
        """One posterior draw per grid point, fixed for the evaluation: mean + exp(logvar / 2) * eps."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        mean, logvar = self.posterior_of(indices)
        if self.eps is None:  # (N, D), from its own generator so the metrics' draws are unchanged
            n_points, _, n_codes = self.posterior.shape
            self.eps = np.random.RandomState(self.eps_seed).standard_normal((n_points, n_codes))
        return mean + np.exp(0.5 * logvar) * self.eps[indices]


class ObservationEncoder:
    """Observations (n, C, H, W) -> posterior mean and logvar (n, D), encoded as drawn.

    For datasets with ``stochastic_observations`` (color/noisy/scream dSprites,
    smallNORB's instance): a grid point has no one image, so the metrics draw
    real observations from the dataset (as in dlib) and nothing is cached by index.
    """

    def __init__(
        self,
        model: VAE | Any,
        device: torch.device,
        eps_seed: int = 0,
        channels_last: bool = False,
        encode_batch: int | None = None,
    ):
        self.model, self.device = model, device
        self.forward = ScoringPasses(model, device, channels_last, encode_batch)
        self.encoded = 0
        self.encoded_ahead = 0  # nothing is cached, so nothing is encoded ahead
        self.eps_rng = np.random.RandomState(eps_seed)  # the sampled representation's own noise

    @torch.no_grad()
    def posterior_of(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and logvar ``(n, D)`` float64 of ``observations`` ``(n, C, H, W)``."""
        images = torch.from_numpy(np.asarray(observations))

        def load(batch: slice) -> torch.Tensor:  # (B, C, H, W) float32 on the device
            x = images[batch].to(self.device)
            return to_float(x) if x.dtype == torch.uint8 else x.float()

        mean_out, logvar_out = None, None
        for batch, mean, logvar in self.forward(len(images), load):
            if mean_out is None:
                mean_out = np.empty((len(images), mean.shape[1]))
                logvar_out = np.full((len(images), mean.shape[1]), np.nan)
            mean_out[batch] = mean.double().cpu().numpy()
            if logvar is not None:
                logvar_out[batch] = logvar.double().cpu().numpy()
        self.encoded += len(images)
        return mean_out, logvar_out

    def mean_of(self, observations: np.ndarray) -> np.ndarray:
        """The posterior mean ``(n, D)`` of ``observations``."""
        return self.posterior_of(observations)[0]

    def sampled_of(self, observations: np.ndarray) -> np.ndarray:
        """One posterior draw per observation: mean + exp(logvar / 2) * eps."""
        mean, logvar = self.posterior_of(observations)
        return mean + np.exp(0.5 * logvar) * self.eps_rng.standard_normal(mean.shape)


#: How the metrics see a trained model (disentanglement_lib's postprocess_configs): the posterior
#: mean (``mean.gin``, the study's default) or one draw from the posterior (``sampled.gin``).
REPRESENTATIONS = ("mean", "sampled")


#: ``evaluate_encoder`` has a ``CachedEncoder`` encode the whole grid ahead when its metrics are
#: expected to reach at least this share of the grid (``expected_first_reach``): the whole grid then
#: costs at most 1 / 0.9 = 1.11x the points reached at the same rate, where the metrics' lookups run
#: a few hundred new points at a time, slower: the β-VAE score's at the study's settings at 82% of
#: the side-by-side passes' rate (the AMD EPYC of results/perf/eval_cost_cpu.md). At the study's
#: settings the metrics reach 98% of dSprites; the committed suites' smaller settings under 10%.
ENCODE_AHEAD_REACH = 0.9


def expected_first_reach(
    metrics: Mapping[str, Mapping[str, Any]], factor_sizes: tuple[int, ...]
) -> dict[str, float]:
    """Per metric entry, in order, the expected number of grid points it is the first to reach.

    A metric's draws of ``d`` points (``MetricSpec.images_encoded``) reach an expected
    ``N (1 - exp(-d / N))`` of the ``N`` grid points, each as likely as any other; the sampled
    representation reuses its metric's points (the same seed draws them), reaching none first.
    """
    n_points = math.prod(factor_sizes)
    uncovered = 1.0  # expected share of the grid not yet reached
    drawn_by: set[str] = set()
    out = {}
    for entry, settings in metrics.items():
        name, _ = metric_entry(entry)
        if name in drawn_by:
            out[entry] = 0.0
            continue
        drawn_by.add(name)
        reached = 1.0 - math.exp(-get_metric(name).images_encoded(dict(settings), factor_sizes) / n_points)
        out[entry] = n_points * uncovered * reached
        uncovered *= 1.0 - reached
    return out


def metric_entry(entry: str) -> tuple[str, str]:
    """Split a suite's metric entry into (registered metric name, representation).

    ``"unsupervised@sampled"`` scores ``unsupervised`` on the sampled representation; a bare name
    scores the mean.
    """
    name, _, representation = entry.partition("@")
    representation = representation or "mean"
    if representation not in REPRESENTATIONS:
        raise UserError(f"metric entry {entry!r}: representation must be one of {', '.join(REPRESENTATIONS)}")
    return name, representation


def evaluate_encoder(
    model: VAE | Any,
    dataset: GroundTruthDataset,
    device: torch.device,
    metrics: Mapping[str, Mapping[str, Any]],
    evaluation_seed: int,
    metric_names: list[str] | None = None,
    on_metric: Callable[[int, int, str], None] | None = None,
    encoder: CachedEncoder | ObservationEncoder | None = None,
    options: EvaluationOptions = DEFAULT_OPTIONS,
) -> tuple[Evaluation, np.ndarray]:
    """Every metric of ``metrics`` (or the named subset) and the MI matrix of ``model``.

    ``metrics`` is a spec's (entry -> settings); ``model`` is anything with ``encode`` (see the module
    docstring), or a ready ``encoder`` is given (``CachedEncoder.precomputed``). Returns the
    evaluation and the summary sample's first mean (the traversals' reference point).

    An entry ``name@sampled`` scores the metric on codes drawn from the posterior
    (``mean + exp(logvar / 2) * eps``, eps from ``RandomState(evaluation_seed)``, drawn
    per point and fixed for the evaluation); its keys get the prefix ``sampled_``.
    A dataset-supplied setting (``MetricSpec.dataset_settings``: Chen et al. drop dSprites'
    shape) applies unless the entry's settings give it. ``on_metric(done, total, entry)`` is called
    as each metric starts, for progress. ``options``: how it runs (threads of the fits, the
    encoder's memory format).
    """
    layout = {
        "eps_seed": evaluation_seed,
        "channels_last": options.channels_last,
        "encode_batch": options.encode_batch,
    }
    if encoder is not None:
        sampler = IndexSampler(dataset)
    elif dataset.stochastic_observations:  # no fixed image per grid point: encode what the metrics draw
        encoder, sampler = ObservationEncoder(model, device, **layout), dataset
    else:
        encoder = CachedEncoder(model, dataset, device, **layout)
        sampler = IndexSampler(dataset)
    result = Evaluation()
    entries = metric_names if metric_names is not None else list(metrics)
    # each entry's settings, the metric's fast ones where the spec gives none
    settings = {e: metrics.get(e) or get_metric(metric_entry(e)[0]).settings("fast") for e in entries}
    if isinstance(encoder, CachedEncoder) and encoder.can_encode_ahead():
        reach = sum(expected_first_reach(settings, tuple(dataset.factor_sizes)).values())
        encoder.encode_grid_ahead = reach >= ENCODE_AHEAD_REACH * len(dataset)
    for done, entry in enumerate(entries):
        if on_metric is not None:  # progress: metric `entry` starts, `done` of len(entries) finished
            on_metric(done, len(entries), entry)
        name, representation = metric_entry(entry)
        metric = get_metric(name)
        overrides = options.metric_settings(name, settings[entry])
        encode = encoder.mean_of if representation == "mean" else encoder.sampled_of
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # kept in the record, not lost in the log
            warnings.simplefilter("always")
            scores = evaluate_metric(
                metric,
                sampler,
                encode,
                np.random.RandomState(evaluation_seed),
                encode_posterior=encoder.posterior_of,
                dataset=dataset.name,  # its settings of the metric (Chen et al. drop dSprites' shape)
                **overrides,
            )
        result.seconds[entry] = time.perf_counter() - started
        release_freed_memory()  # the metric's samples and fits are gone; so is their memory
        if caught:
            result.warnings[entry] = sorted({str(w.message) for w in caught})
        prefix = "" if representation == "mean" else f"{representation}_"
        result.metrics.update({f"{prefix}{k}": float(v) for k, v in scores.items()})
    result.counts["points_encoded"] = int(encoder.encoded)
    if encoder.encoded_ahead:  # the whole grid, encoded ahead of the metrics' lookups
        result.counts["points_encoded_ahead"] = int(encoder.encoded_ahead)

    rng = np.random.RandomState(evaluation_seed)
    factors = dataset.sample_factors(SUMMARY_POINTS, rng)
    mean, logvar = encoder.posterior_of(sampler.sample_observations_from_factors(factors, rng))
    mi = discrete_mutual_info(histogram_discretize(mean, 20), factors)  # (codes, factors), nats
    result.mi_matrix = {"codes_by_factors": mi.tolist(), "factor_names": list(dataset.factor_names)}
    result.kl_per_dim = (0.5 * (mean**2 + np.exp(logvar) - logvar - 1.0)).mean(axis=0)
    return result, mean[0]


def evaluate_run(
    spec: RunSpec,
    model: VAE,
    dataset: GroundTruthDataset,
    device: torch.device,
    metric_names: list[str] | None = None,
    on_metric: Callable[[int, int, str], None] | None = None,
    options: EvaluationOptions = DEFAULT_OPTIONS,
) -> Evaluation:
    """Every metric of the spec (or the named subset), the MI matrix, and traversal images.

    ``evaluate_encoder`` on the model, then what needs its decoder (traversals) and the UDR encodings;
    ``on_metric`` and ``options`` as there.
    """
    model = model.to(device).eval()
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    result, reference = evaluate_encoder(
        model,
        dataset,
        device,
        spec.metrics,
        spec.evaluation_seed,
        metric_names,
        on_metric=on_metric,
        options=options,
    )
    result.traversals = traversals(model, reference, device)
    observations = udr_points(dataset, UDR_POINTS, spec.evaluation_seed)
    result.udr_mean, result.udr_logvar = encode_udr(model, observations, device)
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
