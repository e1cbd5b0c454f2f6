"""``toy_squares``: a tiny procedural dataset that needs no download, for tests and plug-in authors.

A white square on black whose size and position are the factors: 4 sizes x
8 horizontal x 8 vertical positions = 256 binary images ``(1, 64, 64)``,
drawn deterministically (no randomness at all), so its cache builds in
milliseconds anywhere. The runner's tests and the GPU checks train on it; a
third party can check a variant or a metric end to end against it with
``load_dataset("toy_squares", source="procedural")``.

It has no official file: ``source="auto"`` and ``"procedural"`` both draw it,
``"official"`` explains that there is none.
"""

from __future__ import annotations

import numpy as np

from .dataset import GroundTruthDataset
from .registry import register_dataset

__all__ = ["ToySquares"]


@register_dataset("toy_squares")
class ToySquares(GroundTruthDataset):
    """A square of side ``6 + 4 * size`` pixels with its top-left corner at ``(2 + 6 * x, 2 + 6 * y)``."""

    name = "toy_squares"
    factor_names = ("size", "x", "y")
    factor_sizes = (4, 8, 8)
    observation_shape = (1, 64, 64)
    likelihood = "bernoulli"
    generator_version = "1"

    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Side lengths and corner positions in pixels."""
        size, x, y = (np.arange(k, dtype=np.float64) for k in self.factor_sizes)
        return 6 + 4 * size, 2 + 6 * x, 2 + 6 * y

    def render(self, factors: np.ndarray) -> np.ndarray:
        """uint8 ``(n, 1, 64, 64)`` images, 0 or 255, of the factor indices ``(n, 3)``."""
        factors = self.grid.validate_factors(factors)
        out = np.zeros((len(factors), *self.observation_shape), np.uint8)
        for i, (size, x, y) in enumerate(factors.tolist()):
            side, left, top = 6 + 4 * size, 2 + 6 * x, 2 + 6 * y
            out[i, 0, top : top + side, left : left + side] = 255
        return out
