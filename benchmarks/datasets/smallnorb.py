"""smallNORB (LeCun et al. 2004): 50 toys photographed in a grid of poses and lights, 64x64 grey.

As disentanglement_lib uses it (``data/ground_truth/norb.py``; Locatello et
al. 2019): both halves of the official set (training and testing, 24,300
stereo pairs each), camera 0 of each pair only, resized from 96x96 to 64x64
with Pillow's Lanczos ("ANTIALIAS") filter, scaled to [0, 1].

Factors scored, in dlib's order: category (5), elevation (9), azimuth (18),
lighting (6). The toy instance within a category (10) is *not* a factor: dlib
draws it uniformly for every observation (``SplitDiscreteStateSpace`` with
latent factors ``[0, 2, 3, 4]`` of ``[5, 10, 9, 18, 6]``), so a factor vector
has ten possible images (``stochastic_observations``). The cache holds all
48,600 images on dlib's full state space, ``grid`` = (category, instance,
elevation, azimuth, lighting) with lighting fastest; training draws indices
uniformly over it, which is dlib's training distribution (uniform factors,
then a uniform instance), so ``observation_noise`` has nothing left to draw.

The official ``info`` matrix stores azimuth as 0, 2, ..., 34 (times 10
degrees); dlib halves it into 0..17, as here.

Files: the six gzipped matrices the NYU server publishes (``dat``: uint8
``(24300, 2, 96, 96)``; ``cat``: int32 ``(24300,)``; ``info``: int32 ``(24300, 4)``
= instance, elevation, azimuth, lighting), read as they are, without gunzipping
them first (dlib reads the gunzipped ``.mat`` files; the bytes are the same).

Deviation from dlib: dlib reads the pixel bytes as int8, which Pillow turns
into a 32-bit "I" image holding the unsigned values; Lanczos there can
overshoot [0, 255] by a few levels, and dlib keeps those (values slightly
outside [0, 1] after / 255). The same "I"-mode resize is done here, then
clipped to [0, 255] to fit the uint8 cache.
"""

from __future__ import annotations

import gzip
from functools import cached_property
from pathlib import Path

import numpy as np

from .checksums import verify_checksum
from .dataset import GroundTruthDataset, to_float
from .errors import DatasetFileError, OfficialFileMissingError
from .grid import FactorGrid, uniform_integers
from .official import rows_to_flat_indices, write_rows
from .official_only import OfficialOnlyDataset
from .progress import progress_bar
from .registry import register_dataset
from .sources import OfficialFile

__all__ = ["SmallNORB", "read_norb_header", "resize_like_dlib"]

_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_CHUNKS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
_PARTS = ("dat", "cat", "info")
#: The binary matrix format's type codes (magic numbers) and their element types, little-endian.
_MAGIC = {507333717: np.dtype(np.uint8), 507333716: np.dtype("<i4"), 507333713: np.dtype("<f4")}
_CHUNK_IMAGES = 2048  # stereo pairs read per step (~38 MB)


def norb_file(chunk: str, part: str) -> str:
    return f"smallnorb-{chunk}-{part}.mat.gz"


def read_norb_header(path: Path, stream) -> tuple[np.dtype, tuple[int, ...]]:
    """Element type and shape of a NORB binary matrix; leaves ``stream`` at the first element.

    Header: int32 magic, int32 ndim, then max(3, ndim) int32 dimensions (unused ones are 1).
    """
    try:
        head = stream.read(8)
        magic, ndim = np.frombuffer(head, "<i4", 2)
        dims = np.frombuffer(stream.read(4 * max(3, int(ndim))), "<i4")
    except (OSError, EOFError, ValueError) as exc:
        raise DatasetFileError(f"{path}: not a readable gzipped NORB matrix: {exc}") from exc
    if int(magic) not in _MAGIC or not 1 <= int(ndim) <= 8 or len(dims) < int(ndim):
        raise DatasetFileError(f"{path}: not a NORB binary matrix (magic {int(magic)}, ndim {int(ndim)})")
    return _MAGIC[int(magic)], tuple(int(d) for d in dims[: int(ndim)])


def _read_matrix(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        dtype, shape = read_norb_header(path, f)
        try:
            raw = f.read()
        except (OSError, EOFError) as exc:
            raise DatasetFileError(f"{path}: corrupt: {exc}") from exc
    n = int(np.prod(shape))
    if len(raw) < n * dtype.itemsize:
        raise DatasetFileError(
            f"{path}: truncated: {len(raw):,} bytes of data, expected {n * dtype.itemsize:,}"
        )
    return np.frombuffer(raw, dtype, n).reshape(shape)


def resize_like_dlib(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 96, 96)`` -> ``(n, 64, 64)``: Pillow Lanczos on an "I" image as dlib, then clipped."""
    from PIL import Image

    out = np.empty((len(images), 64, 64), np.uint8)
    for i, image in enumerate(images):
        resized = Image.fromarray(image.astype(np.int32)).resize((64, 64), Image.Resampling.LANCZOS)
        out[i] = np.clip(np.asarray(resized), 0, 255)
    return out


def _paths(path: Path) -> dict[tuple[str, str], Path]:
    return {(chunk, part): path.parent / norb_file(chunk, part) for chunk in _CHUNKS for part in _PARTS}


def _check(path: Path, dataset: GroundTruthDataset) -> None:
    """All six files present and verified; their headers agree with each other and the grid."""
    official = dataset.official_files[0]
    total = 0
    for file in _paths(path).values():
        if not file.is_file():
            raise OfficialFileMissingError(
                f"{file} is missing: smallnorb needs all six files ({', '.join(official.files)}) from {_URL}"
            )
        if file != path:  # the first was verified by the caller
            verify_checksum(
                file, official.checksum_of(file.name), dataset.cache_dir, progress=dataset.progress
            )
    for chunk in _CHUNKS:
        shapes = {}
        for part in _PARTS:
            file = path.parent / norb_file(chunk, part)
            with gzip.open(file, "rb") as f:
                dtype, shapes[part] = read_norb_header(file, f)
            expected_dtype = np.dtype(np.uint8) if part == "dat" else np.dtype("<i4")
            if dtype != expected_dtype:
                raise DatasetFileError(f"{file}: expected a {expected_dtype} matrix; found {dtype}")
        n = shapes["dat"][0]
        expected = {"dat": (n, 2, 96, 96), "cat": (n,), "info": (n, 4)}
        for part, shape in expected.items():
            if shapes[part] != shape:
                raise DatasetFileError(
                    f"{path.parent / norb_file(chunk, part)}: should be shaped {shape}; found {shapes[part]}"
                )
        total += n
    if total != dataset.grid.num_total:
        raise DatasetFileError(
            f"{path.parent}: the two halves hold {total:,} images; "
            f"smallnorb's grid has {dataset.grid.num_total:,}"
        )


def _features(path: Path, dataset: GroundTruthDataset) -> np.ndarray:
    """Every row's stored-grid point (category, instance, elevation, azimuth / 2, lighting), ``(N, 5)``."""
    parts = []
    for chunk in _CHUNKS:
        cat = _read_matrix(path.parent / norb_file(chunk, "cat")).astype(np.int64)  # (n,)
        info = _read_matrix(path.parent / norb_file(chunk, "info")).astype(np.int64)  # (n, 4)
        if np.any(info[:, 2] % 2):
            raise DatasetFileError(
                f"{path.parent / norb_file(chunk, 'info')}: odd azimuth; expected 0, 2, ... 34"
            )
        parts.append(np.column_stack([cat, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]]))
    return np.concatenate(parts)


def _convert(path: Path, dataset: GroundTruthDataset, out: np.ndarray, progress: bool) -> None:
    flat = rows_to_flat_indices(path, dataset.grid, _features(path, dataset))
    start = 0
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task("converting smallnorb", total=len(flat))
        for chunk in _CHUNKS:
            file = path.parent / norb_file(chunk, "dat")
            with gzip.open(file, "rb") as f:
                _, shape = read_norb_header(file, f)
                pair = 2 * 96 * 96
                for first in range(0, shape[0], _CHUNK_IMAGES):
                    n = min(_CHUNK_IMAGES, shape[0] - first)
                    try:
                        raw = f.read(n * pair)
                    except (OSError, EOFError) as exc:
                        raise DatasetFileError(f"{file}: corrupt near image {first}: {exc}") from exc
                    if len(raw) != n * pair:
                        raise DatasetFileError(f"{file}: truncated within image {first + len(raw) // pair}")
                    pairs = np.frombuffer(raw, np.uint8).reshape(n, 2, 96, 96)
                    write_rows(out, flat, start, resize_like_dlib(pairs[:, 0])[:, None])  # camera 0 only
                    start += n
                    bar.advance(task, n)


@register_dataset("smallnorb")
class SmallNORB(OfficialOnlyDataset):
    """smallNORB: category 5, elevation 9, azimuth 18, lighting 6 (instance random); 1x64x64."""

    name = "smallnorb"
    factor_names = ("category", "elevation", "azimuth", "lighting")
    factor_sizes = (5, 9, 18, 6)
    n_instances = 10  # toys per category: drawn for every observation, never scored
    observation_shape = (1, 64, 64)
    stochastic_observations = True  # the instance; training covers it by drawing over all stored images
    official_files = (
        OfficialFile(
            norb_file(_CHUNKS[0], "dat"),
            _URL + norb_file(_CHUNKS[0], "dat"),
            _check,
            _convert,
            companions=tuple(
                norb_file(c, p) for c in _CHUNKS for p in _PARTS if (c, p) != (_CHUNKS[0], "dat")
            ),
        ),
    )

    @cached_property
    def grid(self) -> FactorGrid:
        """The stored grid: dlib's full state space (category, instance, elevation, azimuth, lighting)."""
        category, elevation, azimuth, lighting = self.factor_sizes
        return FactorGrid(
            ("category", "instance", "elevation", "azimuth", "lighting"),
            (category, self.n_instances, elevation, azimuth, lighting),
        )

    @cached_property
    def scored_grid(self) -> FactorGrid:
        """The factors scored: ``factor_names`` x ``factor_sizes``."""
        return FactorGrid(self.factor_names, self.factor_sizes)

    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Category index, elevation 30-70 and azimuth 0-340 in degrees, lighting index."""
        category, elevation, azimuth, lighting = self.factor_sizes
        return (
            np.arange(category, dtype=np.float64),  # animal, human, airplane, truck, car
            30.0 + 5.0 * np.arange(elevation),  # degrees
            20.0 * np.arange(azimuth),  # degrees
            np.arange(lighting, dtype=np.float64),
        )

    def sample_factors(self, n: int, rng) -> np.ndarray:
        """``n`` scored factor vectors ``(n, 4)``, drawn uniformly."""
        return self.scored_grid.sample_factors(n, rng)

    def with_instances(self, factors: np.ndarray, rng) -> np.ndarray:
        """Scored factors ``(n, 4)`` -> stored-grid points ``(n, 5)``, the instance drawn as dlib draws it."""
        factors = self.scored_grid.validate_factors(factors)
        instances = uniform_integers(rng, self.n_instances, len(factors))  # dlib: randint(10, size=n)
        return np.column_stack([factors[:, :1], instances, factors[:, 1:]])

    def sample_observations_from_factors(self, factors: np.ndarray, rng=None) -> np.ndarray:
        """float32 ``(n, 1, 64, 64)`` in [0, 1]: an image of a random instance for each factor vector."""
        if rng is None:
            raise ValueError(
                "smallnorb: the instance is drawn per observation; pass the numpy rng to draw it"
            )
        import torch

        return to_float(torch.from_numpy(self.images(self.with_instances(factors, rng)))).numpy()
