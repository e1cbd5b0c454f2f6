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


# -- fakes for the conformance check (test_dataset_conformance.py) ----------------------------------
# Each writer puts files in the official formats for ``ds``'s own (small) grid into ``ds.root`` and
# returns the images the conversion must give, ``(N, C, H, W)`` uint8 in grid order (None: the
# conversion resamples, and the dataset's own test file checks its pixels).
def write_dsprites_official(ds) -> np.ndarray:
    """dSprites' npz with its pickled metadata, random 0/1 sprites."""
    factors = ds.grid.all_factors()
    n = len(factors)
    classes = np.concatenate([np.zeros((n, 1), np.int64), factors], axis=1)  # colour column first
    imgs = np.random.default_rng(0).integers(0, 2, size=(n, 64, 64), dtype=np.uint8)
    metadata = {
        "date": "April 2017",
        "latents_names": ("color", "shape", "scale", "orientation", "posX", "posY"),
        "latents_sizes": np.array([1, *ds.factor_sizes]),
    }
    ds.root.mkdir(parents=True, exist_ok=True)
    with (ds.root / DSPRITES_NPZ).open("wb") as f:  # a file object keeps savez from appending ".npz"
        np.savez_compressed(
            f,
            metadata=np.array(metadata, dtype=object),
            imgs=imgs,
            latents_classes=classes,
            latents_values=classes.astype(np.float64),
        )
    return imgs[:, None] * np.uint8(255)


def write_shapes3d_official(ds) -> np.ndarray:
    """3D Shapes' h5: random images and float labels with float32 noise."""
    import h5py

    factors = ds.grid.all_factors()
    values = ds.factor_values()
    labels = np.stack([values[j][factors[:, j]] for j in range(ds.num_factors)], axis=1)
    images = np.random.default_rng(2).integers(0, 256, size=(len(labels), 64, 64, 3), dtype=np.uint8)
    ds.root.mkdir(parents=True, exist_ok=True)
    with h5py.File(ds.root / SHAPES3D_H5, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels.astype(np.float32).astype(np.float64) + 1e-9)
    return images.transpose(0, 3, 1, 2)


def write_mpi3d_official(ds) -> np.ndarray:
    """An MPI3D npz (``images``, ``(N, 64, 64, 3)`` in grid order)."""
    images = np.random.default_rng(0).integers(0, 256, (ds.grid.num_total, 64, 64, 3), dtype=np.uint8)
    ds.root.mkdir(parents=True, exist_ok=True)
    with (ds.root / ds.official_files[0].filename).open("wb") as f:
        np.savez_compressed(f, images=images)
    return images.transpose(0, 3, 1, 2)


def write_cars3d_official(ds) -> None:
    """Reed et al.'s archive: data/cars/<car>_mesh.mat with ``im`` (128, 128, 3, azimuth, elevation)."""
    import io
    import tarfile

    import scipy.io

    n_elevations, n_azimuths, n_cars = ds.factor_sizes
    rng = np.random.default_rng(0)
    ds.root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(ds.root / ds.official_files[0].filename, "w:gz") as tar:
        for car in range(n_cars):
            im = rng.integers(0, 256, (128, 128, 3, n_azimuths, n_elevations), dtype=np.uint8)
            buffer = io.BytesIO()
            scipy.io.savemat(buffer, {"im": im, "mask": im[:, :, 0] > 0})
            info = tarfile.TarInfo(f"data/cars/car_{car:03d}_mesh.mat")
            info.size = len(buffer.getvalue())
            tar.addfile(info, io.BytesIO(buffer.getvalue()))


NORB_MAGIC = {np.dtype(np.uint8): 507333717, np.dtype("<i4"): 507333716}


def write_norb_matrix(path: Path, array: np.ndarray) -> None:
    """A NORB binary matrix, gzipped: int32 magic, ndim, max(3, ndim) dims (padded with 1), data."""
    import gzip

    dims = list(array.shape) + [1] * (3 - array.ndim)
    header = np.array([NORB_MAGIC[array.dtype], array.ndim, *dims], "<i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())


def write_smallnorb_official(ds) -> None:
    """smallNORB's six gzipped matrices: training half instance 1, testing half instance 0."""
    from benchmarks.datasets.smallnorb import _CHUNKS, norb_file

    rng = np.random.default_rng(0)
    points = ds.grid.all_factors()  # (N, 5): category, instance, elevation, azimuth, lighting
    ds.root.mkdir(parents=True, exist_ok=True)
    for chunk, instance in zip(_CHUNKS, (1, 0)):
        rows = points[points[:, 1] == instance]
        dat = rng.integers(0, 256, size=(len(rows), 2, 96, 96), dtype=np.uint8)
        info = np.column_stack([rows[:, 1], rows[:, 2], 2 * rows[:, 3], rows[:, 4]]).astype("<i4")
        for part, array in (("dat", dat), ("cat", rows[:, 0].astype("<i4")), ("info", info)):
            write_norb_matrix(ds.root / norb_file(chunk, part), array)


def write_scream_painting(root: Path, size: tuple[int, int] = (90, 80)) -> np.ndarray:
    """A smooth fake painting ``(width, height)``, PNG under the official name; dlib's ``self.scream``."""
    from PIL import Image

    from benchmarks.datasets.scream import PAINTING

    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(root / PAINTING, format="PNG")
    return pixels.astype(np.float64) / 255  # (H, W, 3)


def write_scream_official(ds) -> np.ndarray:
    write_scream_painting(ds.root)
    return write_dsprites_official(ds)


#: Per registered dataset: the instance attributes that shrink it, and its fake files' writer.
CONFORMANCE_FAKES = {
    "dsprites": ({"factor_sizes": TINY_DSPRITES}, write_dsprites_official),
    "color_dsprites": ({"factor_sizes": TINY_DSPRITES}, write_dsprites_official),
    "noisy_dsprites": ({"factor_sizes": TINY_DSPRITES}, write_dsprites_official),
    "scream_dsprites": ({"factor_sizes": TINY_DSPRITES}, write_scream_official),
    "shapes3d": ({"factor_sizes": TINY_SHAPES3D}, write_shapes3d_official),
    "smallnorb": ({"factor_sizes": (2, 2, 3, 2), "n_instances": 2}, write_smallnorb_official),
    "cars3d": ({"factor_sizes": (2, 3, 2)}, write_cars3d_official),
    "mpi3d_toy": ({"factor_sizes": (2, 2, 1, 1, 1, 2, 3)}, write_mpi3d_official),
    "mpi3d_realistic": ({"factor_sizes": (2, 2, 1, 1, 1, 2, 3)}, write_mpi3d_official),
    "mpi3d_real": ({"factor_sizes": (2, 2, 1, 1, 1, 2, 3)}, write_mpi3d_official),
    "toy_squares": ({}, None),
}
