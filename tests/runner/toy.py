"""A tiny ground-truth dataset for runner tests: a square whose size and position are the factors.

48 images; registered as ``toy_squares`` when imported. ``python toy.py ARGS`` runs
the vaebench CLI with it registered (for subprocess tests).
"""

import sys

import numpy as np

from benchmarks.datasets import GroundTruthDataset, register_dataset


@register_dataset("toy_squares")
class ToySquares(GroundTruthDataset):
    name = "toy_squares"
    factor_names = ("size", "x", "y")
    factor_sizes = (3, 4, 4)
    observation_shape = (1, 64, 64)
    likelihood = "bernoulli"
    generator_version = "1"

    def factor_values(self):
        return tuple(np.arange(k, dtype=float) for k in self.factor_sizes)

    def render(self, factors):
        factors = np.asarray(factors)
        out = np.zeros((len(factors), 1, 64, 64), np.uint8)
        for i, (size, x, y) in enumerate(factors):
            side = 8 + 6 * int(size)
            left, top = 4 + 12 * int(x), 4 + 12 * int(y)
            out[i, 0, top : top + side, left : left + side] = 255
        return out


if __name__ == "__main__":
    from benchmarks.cli import app

    sys.exit(app(sys.argv[1:]))
