"""Sampling from a ground-truth data set, kept apart from the scores.

The metrics only need a duck-typed :class:`GroundTruthSampler` and an
``encode`` function. Random numbers come in as an explicit generator, either a
``np.random.Generator`` or a ``np.random.RandomState`` (what
disentanglement_lib passes around); the helpers below draw from both.

With a ``RandomState`` and the same batch sizes, :func:`sample_codes_and_factors`
consumes the generator exactly as dlib's ``utils.generate_batch_factor_code``
does, so the same seed gives the same sample as dlib.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "RandomGenerator",
    "GroundTruthSampler",
    "Encoder",
    "check_rng",
    "rng_integers",
    "rng_seed",
    "rng_choice",
    "rng_normal",
    "encode_batches",
    "sample_codes_and_factors",
    "factor_grid",
]

RandomGenerator = np.random.Generator | np.random.RandomState
# observations (batch, ...) -> codes (batch, n_codes); must be deterministic for dlib parity.
Encoder = Callable[[np.ndarray], np.ndarray]


@runtime_checkable
class GroundTruthSampler(Protocol):
    """What the sampling metrics need from a data set with known factors of variation.

    ``factor_sizes[i]`` is the number of values of factor ``i``; factor values
    are integers ``0..factor_sizes[i]-1``.
    """

    factor_sizes: Sequence[int]

    def sample_factors(self, n: int, rng: RandomGenerator) -> np.ndarray:
        """``n`` factor vectors, int ``(n, n_factors)``."""
        ...

    def sample_observations_from_factors(self, factors: np.ndarray, rng: RandomGenerator) -> np.ndarray:
        """Observations ``(n, ...)`` for the factor vectors ``(n, n_factors)``."""
        ...


# -- random numbers from either generator type ---------------------------------------------


def check_rng(rng: object, name: str = "rng") -> RandomGenerator:
    """``rng`` itself if it is a Generator or RandomState; an int seeds a new ``default_rng``."""
    if isinstance(rng, np.random.Generator | np.random.RandomState):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(
        f"{name} must be a numpy Generator, a numpy RandomState or an int seed; got {type(rng).__name__}"
    )


def rng_integers(rng: RandomGenerator, high: int, size: int | tuple[int, ...] | None = None):
    """Uniform integers in ``[0, high)``; ``RandomState.randint(high, size)`` for dlib's stream."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(high, size=size)
    return rng.integers(high, size=size)


def rng_seed(rng: RandomGenerator) -> int:
    """One integer in ``[0, 2**31 - 1)`` to seed an sklearn estimator's ``random_state``."""
    return int(rng_integers(rng, 2**31 - 1))


def rng_choice(rng: RandomGenerator, n: int, size: int) -> np.ndarray:
    """``size`` distinct indices out of ``n`` (all of them, shuffled, when ``size >= n``)."""
    return rng.permutation(n)[: min(size, n)]


def rng_normal(rng: RandomGenerator, size: int | tuple[int, ...]) -> np.ndarray:
    """Standard normal draws of shape ``size``."""
    if isinstance(rng, np.random.RandomState):
        return rng.normal(size=size)
    return rng.standard_normal(size)


# -- encoding and sampling ---------------------------------------------------------------


def _as_codes(codes: object, n: int, where: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] != n:
        raise ValueError(
            f"{where}: encode must return an array (n_observations, n_codes) = ({n}, ...); got shape "
            f"{codes.shape}"
        )
    if codes.dtype.kind not in "biuf":
        raise ValueError(f"{where}: encode must return real numbers; got dtype {codes.dtype}")
    codes = codes.astype(np.float64, copy=False)
    if not np.isfinite(codes).all():
        raise ValueError(
            f"{where}: encode returned {int((~np.isfinite(codes)).sum())} NaN or infinite code value(s); "
            "codes must be finite"
        )
    return codes


def encode_batches(encode: Encoder, observations: np.ndarray, batch_size: int) -> np.ndarray:
    """``encode`` applied to consecutive batches of ``observations``, stacked: ``(n, n_codes)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    parts = []
    for start in range(0, len(observations), batch_size):
        batch = observations[start : start + batch_size]
        parts.append(_as_codes(encode(batch), len(batch), "encode_batches"))
    return np.concatenate(parts, axis=0)


def sample_codes_and_factors(
    sampler: GroundTruthSampler, encode: Encoder, n: int, rng: RandomGenerator, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` i.i.d. points: codes ``(n, n_codes)`` float64 and their factors ``(n, n_factors)`` int64.

    disentanglement_lib's ``generate_batch_factor_code``: repeatedly draw
    ``min(batch_size, left)`` factor vectors, their observations, and encode
    them. Train and test sets are drawn one after the other from the same
    generator (train first), as dlib does.
    """
    rng = check_rng(rng)
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    codes, factors = [], []
    done = 0
    while done < n:
        size = min(batch_size, n - done)
        f = np.asarray(sampler.sample_factors(size, rng))
        observations = sampler.sample_observations_from_factors(f, rng)
        codes.append(_as_codes(encode(observations), size, "sample_codes_and_factors"))
        factors.append(f)
        done += size
    return np.concatenate(codes, axis=0), np.concatenate(factors, axis=0).astype(np.int64, copy=False)


def factor_grid(
    factor_sizes: Sequence[int], max_values: int | Sequence[int | None] | None = None
) -> np.ndarray:
    """All factor vectors of the grid ``(prod(sizes), n_factors)``, last factor fastest.

    ``max_values`` thins the grid for a cheaper evaluation: factor ``i`` keeps
    every ``ceil(size_i / max_values_i)``-th value, so at most ``max_values_i``
    values (dSprites with ``max_values=8``: all 3 shapes, all 6 scales, 8 of 40
    orientations, 8 of 32 x and y positions; 9,216 instead of 737,280 points).
    """
    sizes = [int(s) for s in factor_sizes]
    if any(s < 1 for s in sizes):
        raise ValueError(f"factor_sizes must all be >= 1; got {tuple(sizes)}")
    if max_values is None or isinstance(max_values, int | np.integer):
        max_values = [max_values] * len(sizes)
    if len(max_values) != len(sizes):
        raise ValueError(f"max_values must have one entry per factor ({len(sizes)}); got {len(max_values)}")
    axes = []
    for size, cap in zip(sizes, max_values):
        if cap is not None and cap < 1:
            raise ValueError(f"max_values entries must be >= 1 or None; got {cap}")
        step = 1 if cap is None else -(-size // int(cap))
        axes.append(np.arange(0, size, step, dtype=np.int64))
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)
