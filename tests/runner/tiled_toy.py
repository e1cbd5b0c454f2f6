"""A cached encoding's dataset of any size for the encoding tests: toy_squares's images repeated."""

from __future__ import annotations

import numpy as np

from benchmarks.datasets import load_dataset


class TiledToy:
    """toy_squares's 256 images repeated: a grid of ``n`` points, large enough to run side by side."""

    def __init__(self, n: int):
        self.toy, self.n = load_dataset("toy_squares", progress=False), n

    def __len__(self) -> int:
        return self.n

    def images_at(self, indices: np.ndarray) -> np.ndarray:
        return self.toy.images_at(np.asarray(indices) % len(self.toy))
