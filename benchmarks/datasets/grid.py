"""The factor grid: the one mapping between factor indices and flat dataset indices.

Every ground-truth dataset here is the full Cartesian product of its factors,
stored in row-major order with the LAST factor varying fastest (the order of
the official dSprites and 3D Shapes files). ``FactorGrid`` is the only code
that knows this order; datasets, caches, loaders and tests all go through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FactorGrid", "uniform_columns", "uniform_integers"]


def uniform_integers(rng: np.random.Generator | np.random.RandomState, high: int, size: int) -> np.ndarray:
    """``size`` integers drawn uniformly from ``[0, high)`` by either kind of numpy generator.

    ``np.random.RandomState`` (what disentanglement_lib passes around) has
    ``randint``; ``np.random.Generator`` has ``integers``. Accepting both lets
    metrics written against either API sample from our datasets.
    """
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, high, size=size, dtype=np.int64)
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, high, size=size).astype(np.int64)
    raise TypeError(f"rng must be a numpy Generator or RandomState; got {type(rng).__name__}")


def uniform_columns(
    rng: np.random.Generator | np.random.RandomState, highs: Sequence[int], size: int
) -> np.ndarray:
    """``(size, len(highs))`` int64: column ``j`` uniform in ``[0, highs[j])``, one column after another.

    The same draws, and the same generator state after, as ``uniform_integers`` once per column in
    order (dlib's ``sample_factors``); numpy draws broadcast bounds element by element in C order,
    which here is column by column (tests/datasets check the stream for both kinds of generator).
    One call instead of one a column: the metrics' samplers draw 64 points at a time, 15,000 times.
    """
    if len(highs) == 0:
        return np.zeros((size, 0), dtype=np.int64)
    bounds = np.asarray(highs, dtype=np.int64)[:, None]  # (n_columns, 1)
    if isinstance(rng, np.random.Generator):
        drawn = rng.integers(0, bounds, size=(len(bounds), size), dtype=np.int64)
    elif isinstance(rng, np.random.RandomState):
        drawn = rng.randint(0, bounds, size=(len(bounds), size)).astype(np.int64, copy=False)
    else:
        raise TypeError(f"rng must be a numpy Generator or RandomState; got {type(rng).__name__}")
    return np.ascontiguousarray(drawn.T)  # (size, n_columns), C order as the per-column stack was


class FactorGrid:
    """Row-major grid of discrete factors; the last factor varies fastest.

    Args:
        names: factor names, in grid order.
        sizes: number of values of each factor.

    ``factors`` arrays are int64 shaped ``(n, n_factors)`` holding value
    *indices*; flat indices are int64 shaped ``(n,)`` in ``[0, num_total)``.
    """

    def __init__(self, names: Sequence[str], sizes: Sequence[int]):
        if len(names) != len(sizes):
            raise ValueError(f"{len(names)} factor names but {len(sizes)} sizes")
        if any(int(s) < 1 for s in sizes):
            raise ValueError(f"factor sizes must be >= 1; got {tuple(sizes)}")
        self.names: tuple[str, ...] = tuple(names)
        self.sizes: tuple[int, ...] = tuple(int(s) for s in sizes)
        # strides[i] = prod(sizes[i+1:]): how far one step of factor i moves the flat index.
        self.strides: np.ndarray = np.array(
            [int(np.prod(self.sizes[i + 1 :], dtype=np.int64)) for i in range(len(self.sizes))],
            dtype=np.int64,
        )
        self.num_total: int = int(np.prod(self.sizes, dtype=np.int64))
        self._sizes = np.array(self.sizes, dtype=np.int64)  # (n_factors,), for the range check

    @property
    def num_factors(self) -> int:
        """The number of factors."""
        return len(self.sizes)

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={s}" for n, s in zip(self.names, self.sizes))
        return f"FactorGrid({body})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FactorGrid) and (self.names, self.sizes) == (other.names, other.sizes)

    def __hash__(self) -> int:
        return hash((self.names, self.sizes))

    # -- checking ---------------------------------------------------------------
    def validate_factors(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """``factors`` as int64 ``(n, n_factors)``; ValueError naming the first bad factor value."""
        arr = np.asarray(factors)
        if arr.ndim != 2 or arr.shape[1] != self.num_factors:
            raise ValueError(
                f"factors must be an integer array shaped (n, {self.num_factors}) in the order "
                f"{', '.join(self.names)}; got shape {arr.shape}"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.issubdtype(arr.dtype, np.number) or not np.all(arr == np.round(arr)):
                raise ValueError(f"factors must hold integer value indices; got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if not ((arr < 0) | (arr >= self._sizes)).any():  # (n, n_factors); the common case, one pass
            return arr
        for column, (name, size) in enumerate(zip(self.names, self.sizes)):
            bad = np.flatnonzero((arr[:, column] < 0) | (arr[:, column] >= size))
            if bad.size:
                row = int(bad[0])
                raise ValueError(
                    f"factor {name!r} (column {column}) must be in [0, {size - 1}]; "
                    f"got {int(arr[row, column])} in row {row} ({bad.size} bad row(s) in all)"
                )
        return arr

    def validate_indices(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """``indices`` as int64 ``(n,)``; ValueError if any lies outside ``[0, num_total)``."""
        arr = np.asarray(indices)
        if arr.ndim != 1:
            raise ValueError(f"flat indices must be a 1-d integer array; got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"flat indices must be integers; got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        bad = np.flatnonzero((arr < 0) | (arr >= self.num_total))
        if bad.size:
            raise ValueError(
                f"flat index must be in [0, {self.num_total - 1}]; "
                f"got {int(arr[bad[0]])} at position {int(bad[0])}"
            )
        return arr

    # -- the mapping ----------------------------------------------------------
    def factors_to_indices(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Flat indices ``(n,)`` of the grid points ``factors`` ``(n, n_factors)``."""
        return self.validate_factors(factors) @ self.strides

    def indices_to_factors(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Factor indices ``(n, n_factors)`` of the flat indices ``(n,)``."""
        arr = self.validate_indices(indices)
        sizes = np.array(self.sizes, dtype=np.int64)
        return (arr[:, None] // self.strides[None, :]) % sizes[None, :]

    def all_factors(self) -> np.ndarray:
        """Every grid point, ``(num_total, n_factors)`` int64, in flat-index order."""
        return self.indices_to_factors(np.arange(self.num_total, dtype=np.int64))

    def sample_factors(self, n: int, rng: np.random.Generator | np.random.RandomState) -> np.ndarray:
        """``n`` grid points drawn uniformly and independently, ``(n, n_factors)`` int64."""
        return uniform_columns(rng, self.sizes, n)
