"""Fixtures for the dataset tests: a private data directory, tiny grids and fake official files.

Full-size dSprites and 3D Shapes are GBs; the default tests shrink the grids
by monkeypatching ``factor_sizes`` (the grid, factor values, caches and
readers all derive from it) and write small files in the official formats.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from dataset_fakes import (
    DSPRITES_HDF5,
    DSPRITES_NPZ,
    SHAPES3D_H5,
    TINY_DSPRITES,
    TINY_SHAPES3D,
    fake_dsprites_arrays,
    fake_shapes3d_labels,
    sha256_of,
)

from benchmarks.datasets import KNOWN_CHECKSUMS, Checksum
from benchmarks.datasets.dsprites import DSprites
from benchmarks.datasets.shapes3d import Shapes3D


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


@pytest.fixture
def trust(monkeypatch):
    """``trust(path)``: make ``path``'s current bytes the known checksum for its file name."""

    def trust_file(path: Path) -> Checksum:
        checksum = Checksum("sha256", sha256_of(path))
        monkeypatch.setitem(KNOWN_CHECKSUMS, path.name, checksum)
        return checksum

    return trust_file


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


@pytest.fixture
def write_shapes3d_h5(data_root, tiny_shapes3d):
    def write(shuffle: bool = False, labels: np.ndarray | None = None, **overrides) -> tuple[Path, dict]:
        rng = np.random.default_rng(2)
        labels = fake_shapes3d_labels() if labels is None else labels
        arrays = {
            "images": rng.integers(0, 256, size=(len(labels), 64, 64, 3), dtype=np.uint8),
            "labels": labels,
        }
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
