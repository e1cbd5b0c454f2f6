"""Pairs of observations for weak supervision (Locatello et al. 2020, Section 5).

A pair is two grid points that differ in a few factors. ``resample_factors`` turns
the first point of each pair into the second, under one of two named semantics
(``PAIR_SEMANTICS``), recorded with every run:

- ``"dlib"``: disentanglement_lib's ``simple_dynamics`` (``train_weak_lib.py``):
  resample 1 *or* k factors with probability 1/2 each (its issue #31), each to a
  value drawn uniformly from *all* its values, the old one included, so a
  "changed" factor can keep its value and a pair can be two identical points.
- ``"exact"``: the paper's text: exactly k factors, each to a different value
  (only factors with more than one value can change).

``k = -1`` draws k uniformly from {1, ..., F - 1} per pair, as dlib does. Every
draw comes from the generator passed in (dlib drew the new values from numpy's
unseeded global generator, so its pairs could not be reproduced). The changed
factor reported with a pair (the labels variants' supervision) is the last factor
resampled, as dlib reports it; -1 when none was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from benchmarks.datasets.grid import uniform_columns, uniform_integers

__all__ = ["PAIR_SEMANTICS", "PairSampler", "check_pair_settings", "resample_factors", "sample_pairs"]

PAIR_SEMANTICS = ("dlib", "exact")

Rng = np.random.Generator | np.random.RandomState


def check_pair_settings(factor_sizes: Sequence[int], k: int, semantics: str) -> None:
    """Refuse a k or semantics the factor grid cannot honour, naming what it accepts."""
    if semantics not in PAIR_SEMANTICS:
        raise ValueError(f"pair semantics {semantics!r} is unknown; known: {', '.join(PAIR_SEMANTICS)}")
    changeable = sum(size > 1 for size in factor_sizes) if semantics == "exact" else len(factor_sizes)
    if changeable < 1:
        raise ValueError("no factor of this grid can change (every factor has one value)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (k == -1 or 1 <= k <= changeable):
        raise ValueError(
            f"k = {k!r} is out of range for {semantics!r} pairs on {len(factor_sizes)} factors: "
            f"use -1 (a random k per pair) or 1 to {changeable}"
        )


def _integer(rng: Rng, low: int, high: int) -> int:
    """One integer uniform in [low, high) from either kind of numpy generator."""
    return low + int(uniform_integers(rng, high - low, 1)[0])


def resample_factors(
    factors: np.ndarray,
    factor_sizes: Sequence[int],
    k: int,
    rng: Rng,
    *,
    semantics: str = "dlib",
    value_rng: Rng | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The second point of each pair: (n, F) int64 first points -> (n, F) int64, (n,) changed factor.

    Per pair, in disentanglement_lib's order of draws from ``rng``: k (when -1), the
    number of factors to resample (``"dlib"``: 1 or k), which factors (without
    replacement); the new values come from ``value_rng`` (default ``rng``; dlib
    used numpy's global generator there).
    """
    check_pair_settings(factor_sizes, k, semantics)
    value_rng = rng if value_rng is None else value_rng
    sizes = np.asarray(factor_sizes, dtype=np.int64)
    num_factors = len(sizes)
    candidates = np.flatnonzero(sizes > 1) if semantics == "exact" else np.arange(num_factors)
    second = np.array(factors, dtype=np.int64, copy=True)
    changed = np.full(len(second), -1, dtype=np.int64)
    for i in range(len(second)):
        k_pair = _integer(rng, 1, num_factors) if k == -1 else k
        if semantics == "exact":
            k_pair = min(k_pair, len(candidates))
            count = k_pair
        else:
            count = int(rng.choice([1, k_pair]))
        chosen = candidates[rng.choice(len(candidates), count, replace=False)]
        for factor in chosen:
            size = int(sizes[factor])
            if semantics == "dlib":
                second[i, factor] = int(value_rng.choice(size))
            else:  # uniform over the other size - 1 values
                second[i, factor] = (second[i, factor] + 1 + int(value_rng.choice(size - 1))) % size
            changed[i] = factor
    return second, changed


def sample_pairs(
    factor_sizes: Sequence[int], n: int, k: int, rng: Rng, *, semantics: str = "dlib"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` pairs of grid points: first (n, F), second (n, F) int64 and the changed factor (n,)."""
    sizes = list(factor_sizes)
    first = uniform_columns(rng, sizes, n)  # (n, F)
    second, changed = resample_factors(first, sizes, k, rng, semantics=semantics)
    return first, second, changed


class PairSampler:
    """The second observation of each pair, by training-image index, for the runner.

    ``sampler(first, generator)`` maps first images' indices (B,) to the second's (B,) and
    the changed factor (B,), drawing from ``generator`` (the run's own, so a checkpoint
    resumes the same pairs): one 32-bit seed per batch for a ``RandomState`` that
    ``resample_factors`` draws from in disentanglement_lib's order. Needs a dataset whose
    training images are its factor grid, one image per grid point.
    """

    def __init__(self, grid, k: int, semantics: str):
        check_pair_settings(grid.sizes, k, semantics)
        self.grid, self.k, self.semantics = grid, k, semantics

    def __call__(self, first: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the second image of each pair: (second flat indices ``(B,)``, changed factors ``(B,)``)."""
        seed = int(torch.randint(0, 2**32, (1,), generator=generator, device=generator.device).item())
        factors = self.grid.indices_to_factors(first.cpu().numpy())  # (B, F)
        second, changed = resample_factors(
            factors, self.grid.sizes, self.k, np.random.RandomState(seed), semantics=self.semantics
        )
        to = first.device
        return torch.from_numpy(self.grid.factors_to_indices(second)).to(to), torch.from_numpy(changed).to(to)
