"""Tiny grids and arrays in the official formats, shared by the dataset tests (a uniquely named module)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from benchmarks.datasets.dsprites import DSprites
from benchmarks.datasets.shapes3d import Shapes3D

DSPRITES_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_HDF5 = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
SHAPES3D_H5 = "3dshapes.h5"

TINY_DSPRITES = (3, 2, 4, 3, 3)  # 216 images
TINY_SHAPES3D = (2, 2, 2, 2, 4, 2)  # 16 geometries x 8 hue triples = 128 images


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_dsprites_arrays(seed=0) -> dict[str, np.ndarray]:
    """Arrays in the official dSprites layout for the current (tiny) grid, random 0/1 pixels."""
    rng = np.random.default_rng(seed)
    factors = DSprites(root="/nonexistent").grid.all_factors()  # constructing does no I/O
    n = len(factors)
    classes = np.concatenate([np.zeros((n, 1), np.int64), factors], axis=1)  # colour column first
    return {
        "imgs": rng.integers(0, 2, size=(n, 64, 64), dtype=np.uint8),
        "latents_classes": classes,
        "latents_values": classes.astype(np.float64),
    }


def fake_shapes3d_labels() -> np.ndarray:
    """Float factor values (N, 6) as the official file stores them, with float32-style noise."""
    ds = Shapes3D(root="/nonexistent")
    factors = ds.grid.all_factors()
    values = ds.factor_values()
    labels = np.stack([values[j][factors[:, j]] for j in range(6)], axis=1)
    # written by someone else's float code: not exactly our values, so == would fail
    return labels.astype(np.float32).astype(np.float64) + 1e-9
