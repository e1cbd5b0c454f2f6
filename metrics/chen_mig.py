"""Chen et al. 2018's original MIG, from the posterior over the whole factor grid.

Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in
Variational Autoencoders", section 5 and their code (rtqichen/beta-tcvae,
``metric_helpers/mi_metric.py``): with the Gaussian posterior ``q(z|x_n)`` of
every grid point ``n``,

* one sample ``z_n ~ q(z|x_n)`` is drawn per point;
* ``H(z_j) = -E log q(z_j)``, with the aggregate posterior
  ``q(z_j) = 1/N sum_n q(z_j|x_n)``, is estimated by Monte Carlo on
  ``n_samples`` of those samples (a random subset, without replacement);
* ``H(z_j | v_k) = 1/K_k sum_v H(z_j | v_k = v)``, each term the same estimate
  restricted to the grid slice ``v_k = v`` (its samples and its aggregate);
* ``I(z_j; v_k) = H(z_j) - H(z_j | v_k)``, sorted over codes, clamped at 0,
  normalised by ``log K_k``; MIG is the mean over factors of the top-two gap.

On dSprites the paper leaves out the shape factor (``exclude_factors=(0,)``).
This is a different estimator from dlib's :func:`metrics.mig` (key ``mig``):
it needs means and variances, the whole grid, and does not discretise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from metrics._validation import check_arrays, warn
from metrics.registry import Presentation, register_metric
from metrics.sampling import RandomGenerator, check_rng, rng_choice, rng_normal

__all__ = ["mig_chen", "gaussian_mixture_entropy"]

_LOG_2PI = math.log(2.0 * math.pi)
# Components farther than this many of their own standard deviations from a sample are left
# out of its sum: each contributes < exp(-72) of its peak, a relative error < 1e-11 even with
# a million components and a 1e6 spread of standard deviations (see _log_mixture_sum).
_WINDOW_SIGMAS = 12.0


def _log_mixture_sum(z: np.ndarray, mu: np.ndarray, sigma: np.ndarray, block: int) -> np.ndarray:
    """``log sum_n N(z_s; mu_n, sigma_n^2)`` for every sample ``s``, 1-D, up to the window truncation.

    Components are grouped by their standard deviation (powers of 2) and sorted by mean;
    for a block of sorted samples only the components of each group that lie within
    ``_WINDOW_SIGMAS`` of the group's largest sigma of the block are evaluated. The sum of
    exponentials is taken relative to ``max_n (-log sigma_n)``, an upper bound of every
    log-density, so one pass suffices (the sample's own component keeps it far above 0).
    """
    order = np.argsort(z)
    z = z[order]
    shift = float(np.max(-np.log(sigma)))
    groups = []
    exponent = np.floor(np.log2(sigma))
    for e in np.unique(exponent):
        members = np.flatnonzero(exponent == e)
        members = members[np.argsort(mu[members])]
        m, s = mu[members], sigma[members]
        groups.append((m, -0.5 / s**2, -np.log(s) - shift, _WINDOW_SIGMAS * 2.0 ** (e + 1)))
    total = np.zeros(len(z))
    for start in range(0, len(z), block):
        zb = z[start : start + block]
        acc = np.zeros(len(zb))
        for m, a, c, width in groups:
            lo = np.searchsorted(m, zb[0] - width, side="left")
            hi = np.searchsorted(m, zb[-1] + width, side="right")
            # Chunks of components keep the (block x chunk) work array in cache.
            step = max(1, (1 << 21) // max(1, len(zb)))
            for c0 in range(lo, hi, step):
                c1 = min(hi, c0 + step)
                d = zb[:, None] - m[None, c0:c1]
                d *= d
                d *= a[None, c0:c1]
                d += c[None, c0:c1]
                np.exp(d, out=d)
                acc += d.sum(axis=1)
        total[start : start + block] = acc
    if np.any(total == 0):  # every term underflowed: a sample absurdly far from all components
        raise FloatingPointError(
            "mig_chen: a posterior sample has underflowing density under every component"
        )
    return np.log(total) + shift - 0.5 * _LOG_2PI


def gaussian_mixture_entropy(
    samples: np.ndarray, mean: np.ndarray, std: np.ndarray, *, n_jobs: int = 1, block: int = 256
) -> np.ndarray:
    """Monte-Carlo entropy ``-mean_s log q(z_s)`` per dimension of a factorial Gaussian mixture, nats.

    ``q(z_j) = 1/N sum_n N(z_j; mean_nj, std_nj^2)``; ``samples`` ``(S, D)``, ``mean``/``std`` ``(N, D)``.
    This is ``estimate_entropies`` of Chen et al.'s code (without its own subsampling).
    """
    n_components, n_dims = mean.shape
    jobs = [(j,) for j in range(n_dims)]

    def one(j: int) -> float:
        log_q = _log_mixture_sum(samples[:, j], mean[:, j], std[:, j], block) - math.log(n_components)
        return -float(np.mean(log_q))

    if n_jobs == 1:
        return np.array([one(*job) for job in jobs])
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:  # numpy's kernels release the GIL
        return np.array(list(pool.map(lambda job: one(*job), jobs)))


def _check_grid(factors: np.ndarray, factor_sizes: Sequence[int]) -> list[np.ndarray]:
    sizes = [int(s) for s in factor_sizes]
    if len(sizes) != factors.shape[1]:
        raise ValueError(
            f"factor_sizes must have one entry per factor column ({factors.shape[1]}); got {sizes}"
        )
    values = []
    for k, size in enumerate(sizes):
        column = factors[:, k]
        if column.min() < 0 or column.max() >= size:
            raise ValueError(
                f"factors[:, {k}] must lie in [0, {size}) (factor_sizes[{k}] = {size}); "
                f"found values in [{column.min()}, {column.max()}]"
            )
        values.append(np.unique(column))
    # A (possibly thinned) product grid: every combination of the present values exactly once.
    n_cells = math.prod(len(v) for v in values)
    flat = np.zeros(len(factors), dtype=np.int64)
    for k, v in enumerate(values):
        flat = flat * len(v) + np.searchsorted(v, factors[:, k])
    if n_cells != len(factors) or np.any(np.bincount(flat, minlength=n_cells) != 1):
        raise ValueError(
            f"factors must cover a product grid of factor values, each combination once; got {len(factors)} "
            f"rows for {n_cells} combinations of the values present"
        )
    return values


#: Scores defined on [0, 1] (accuracies, normalised information).
_UNIT = (0.0, 1.0)


@register_metric(
    "mig_chen",
    inputs="posterior_grid",
    higher_is_better={"mig_chen": True},
    bounds={"mig_chen": _UNIT},
    study={"grid_max_values": None, "batch_size": 1024, "n_samples": 10000},
    fast={"grid_max_values": 8, "batch_size": 1024, "n_samples": 1000},
    # Chen et al. (2018) score dSprites without its shape factor; the variants have the same sprites.
    dataset_settings={
        name: {"exclude_factors": (0,)}
        for name in ("dsprites", "color_dsprites", "noisy_dsprites", "scream_dsprites")
    },
    presentation=Presentation(
        labels={"mig_chen": "MIG (Chen et al., log K)"},
        headline={"mig_chen": 2},
        note="`mig_chen` is Chen et al. (2018)'s MIG (Monte Carlo MI from the Gaussian posterior over "
        "the factor grid, normalised by log K); the two are not comparable number for number",
        note_topic="Which MIG",
    ),
)
def mig_chen(
    mean: np.ndarray,
    logvar: np.ndarray,
    factors: np.ndarray,
    factor_sizes: Sequence[int],
    *,
    rng: RandomGenerator | int = 0,
    exclude_factors: Sequence[int] = (),
    n_samples: int = 10000,
    n_jobs: int = 1,
) -> dict[str, float]:
    """Chen et al.'s MIG from Gaussian posteriors on the factor grid (key ``mig_chen``).

    Args:
        mean: ``(N, n_codes)`` posterior means of every grid point.
        logvar: ``(N, n_codes)`` posterior log-variances of the same points.
        factors: ``(N, n_factors)`` factor values of those points: a product grid (the full
            one, or a thinned one such as every 4th position), each combination once.
        factor_sizes: number of values of each factor in the data set (for validation).
        rng: draws the posterior samples and the Monte-Carlo subsets.
        exclude_factors: factor indices left out of the mean (dSprites: ``(0,)``, shape, as
            in the paper).
        n_samples: Monte-Carlo samples per entropy (Chen et al.: 10,000).
        n_jobs: threads over the codes.

    The normaliser is ``log K`` with ``K`` the number of values of the factor present
    in ``factors`` (``factor_sizes[k]`` on the full grid). A non-excluded factor with a
    single value gives NaN with a warning. Cost: about ``n_samples * N * n_codes *
    (1 + n_factors)`` Gaussian evaluations, fewer when posteriors are narrow.
    """
    mean, logvar, factors = check_arrays(mean=mean, logvar=logvar, factors=factors, min_codes=2)
    rng = check_rng(rng)
    if not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
    values = _check_grid(factors, factor_sizes)
    n_factors = factors.shape[1]
    excluded = sorted({int(k) for k in exclude_factors})
    if any(k < 0 or k >= n_factors for k in excluded):
        raise ValueError(
            f"exclude_factors must be factor indices in [0, {n_factors}); got {tuple(exclude_factors)}"
        )
    included = [k for k in range(n_factors) if k not in excluded]
    if not included:
        raise ValueError(f"exclude_factors leaves no factor to score; got {tuple(exclude_factors)}")
    single = [k for k in included if len(values[k]) < 2]
    if single:
        warn(f"mig_chen: factor(s) {single} take a single value on the grid (log K = 0) -> NaN")
        return {"mig_chen": float("nan")}

    std = np.exp(0.5 * logvar)
    samples = mean + std * rng_normal(rng, mean.shape)  # one z ~ q(z|x_n) per grid point

    def entropy(rows: np.ndarray) -> np.ndarray:
        chosen = rows[rng_choice(rng, len(rows), n_samples)]
        return gaussian_mixture_entropy(samples[chosen], mean[rows], std[rows], n_jobs=n_jobs)

    marginal = entropy(np.arange(len(factors)))
    gaps = []
    for k in included:
        conditional = np.mean([entropy(np.flatnonzero(factors[:, k] == v)) for v in values[k]], axis=0)
        mutual_info = np.clip(np.sort(marginal - conditional)[::-1], 0.0, None)
        gaps.append((mutual_info[0] - mutual_info[1]) / math.log(len(values[k])))
    return {"mig_chen": float(np.mean(gaps))}
