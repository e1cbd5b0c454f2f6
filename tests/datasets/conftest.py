"""Fixtures for the dataset tests: a private data directory, tiny grids and fake official files.

Full-size dSprites and 3D Shapes are GBs; the default tests shrink the grids
by monkeypatching ``factor_sizes`` (the grid, factor values, caches and
readers all derive from it) and write small files in the official formats.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from benchmarks.datasets import KNOWN_CHECKSUMS, Checksum
from benchmarks.datasets.dsprites import DSprites
from benchmarks.datasets.shapes3d import Shapes3D

DSPRITES_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_HDF5 = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
SHAPES3D_H5 = "3dshapes.h5"

TINY_DSPRITES = (3, 2, 4, 3, 3)  # 216 images
TINY_SHAPES3D = (2, 2, 2, 2, 4, 2)  # 16 geometries x 8 hue triples = 128 images


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch) -> Path:
    """Every dataset test writes under its own temp dir, never the user's cache."""
    root = tmp_path / "vaebench-data"
    monkeypatch.setenv("VAEBENCH_DATA", str(root))
    return root


@pytest.fixture
def tiny_dsprites(monkeypatch):
    monkeypatch.setattr(DSprites, "factor_sizes", TINY_DSPRITES)
    return DSprites


@pytest.fixture
def tiny_shapes3d(monkeypatch):
    monkeypatch.setattr(Shapes3D, "factor_sizes", TINY_SHAPES3D)
    return Shapes3D


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def trust(monkeypatch):
    """``trust(path)``: make ``path``'s current bytes the known checksum for its file name."""

    def trust_file(path: Path) -> Checksum:
        checksum = Checksum("sha256", sha256_of(path))
        monkeypatch.setitem(KNOWN_CHECKSUMS, path.name, checksum)
        return checksum

    return trust_file


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


@pytest.fixture
def write_dsprites_npz(data_root, tiny_dsprites):
    """Write a tiny dSprites .npz, with the pickled metadata dict like the official one."""

    def write(name: str = DSPRITES_NPZ, **overrides) -> tuple[Path, dict]:
        arrays = fake_dsprites_arrays()
        arrays.update(overrides)
        metadata = {
            "date": "April 2017",
            "latents_names": ("color", "shape", "scale", "orientation", "posX", "posY"),
            "latents_sizes": np.array([1, *TINY_DSPRITES]),
        }
        data_root.mkdir(parents=True, exist_ok=True)
        path = data_root / name
        with path.open("wb") as f:  # a file object keeps savez from appending ".npz"
            np.savez_compressed(f, metadata=np.array(metadata, dtype=object), **arrays)
        return path, arrays

    return write


@pytest.fixture
def write_dsprites_hdf5(data_root, tiny_dsprites):
    def write() -> tuple[Path, dict]:
        arrays = fake_dsprites_arrays(seed=1)
        data_root.mkdir(parents=True, exist_ok=True)
        path = data_root / DSPRITES_HDF5
        with h5py.File(path, "w") as f:
            f["imgs"] = arrays["imgs"]
            f["latents/classes"] = arrays["latents_classes"]
            f["latents/values"] = arrays["latents_values"]
        return path, arrays

    return write


def fake_shapes3d_labels() -> np.ndarray:
    """Float factor values (N, 6) as the official file stores them, with float32-style noise."""
    ds = Shapes3D(root="/nonexistent")
    factors = ds.grid.all_factors()
    values = ds.factor_values()
    labels = np.stack([values[j][factors[:, j]] for j in range(6)], axis=1)
    # written by someone else's float code: not exactly our values, so == would fail
    return labels.astype(np.float32).astype(np.float64) + 1e-9


@pytest.fixture
def write_shapes3d_h5(data_root, tiny_shapes3d):
    def write(shuffle: bool = False, labels: np.ndarray | None = None, **overrides) -> tuple[Path, dict]:
        rng = np.random.default_rng(2)
        labels = fake_shapes3d_labels() if labels is None else labels
        arrays = {"images": rng.integers(0, 256, size=(len(labels), 64, 64, 3), dtype=np.uint8), "labels": labels}
        if shuffle:
            order = rng.permutation(len(labels))
            arrays = {k: v[order] for k, v in arrays.items()}
        arrays.update(overrides)
        data_root.mkdir(parents=True, exist_ok=True)
        path = data_root / SHAPES3D_H5
        with h5py.File(path, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value, compression="gzip")
        return path, arrays

    return write
