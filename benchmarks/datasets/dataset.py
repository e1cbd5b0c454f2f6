"""The ground-truth dataset class, and the images a run trains on.

A dataset is declarative: its factor names and sizes, observation shape,
default likelihood, the official files it can read and a procedural
generator (``render`` for a few images, ``generate`` for the whole grid).
Images come from one flat cache of ``(N, C, 64, 64)`` images in the grid's
order (uint8, bit-packed when binary; content-hashed and checked on load, see
``cache``), built from the source chosen (see ``sources``).

Pixels are uint8 0-255 for every dataset (dSprites: 0 or 255), so one helper,
``sample_batch``, turns any of them into floats in [0, 1]; ``TrainingImages``
is what the training loop draws its batches from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from vaebench.errors import UserError

from .cache import CacheReader, FlatCache
from .grid import FactorGrid
from .parallel import run_tasks
from .sources import PREPARERS, SOURCES, OfficialFile, data_root

__all__ = [
    "GroundTruthDataset",
    "TrainingImages",
    "open_output",
    "output_target",
    "sample_batch",
    "to_float",
]


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0-255) -> float32 in [0, 1] on the same device."""
    return images_u8.to(torch.float32).div_(255.0)


def sample_batch(images_u8: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """A float32 training batch ``(B, C, H, W)`` in [0, 1] gathered from ``(N, C, H, W)`` uint8.

    Gather and convert happen on ``images_u8``'s device, one batch at a time,
    so the whole dataset stays uint8 (4x smaller than float) and no Python
    loop touches single items. dSprites comes out as exactly {0, 1}.
    """
    return to_float(images_u8.index_select(0, indices.to(images_u8.device)))


class TrainingImages:
    """The images a run trains on: ``batch(indices)`` gives float32 ``(B, C, H, W)`` in [0, 1] on ``device``.

    ``num_images`` is N, the range batch indices are drawn from. Two backings,
    the same numbers bit for bit (``sample_batch``'s ``uint8 -> float32 / 255``;
    a bit-packed 1 becomes 1.0, which is exactly 255 / 255):

    * ``TrainingImages(images_u8)``: a whole uint8 tensor ``(N, C, H, W)`` on the
      device (CUDA: one upload, batches gathered on the GPU);
    * ``TrainingImages(reader=..., device=...)``: each batch is read from the cache
      file by index (``cache.CacheReader``), unpacked and converted; nothing of
      the dataset is held in memory (the CPU path).
    """

    def __init__(
        self,
        images_u8: torch.Tensor | None = None,
        *,
        reader: CacheReader | None = None,
        device: str | torch.device = "cpu",
    ):
        if (images_u8 is None) == (reader is None):
            raise ValueError("TrainingImages needs either images_u8 or reader")
        self.images_u8 = images_u8  # (N, C, H, W) uint8, or None
        self.reader = reader
        if images_u8 is not None:
            self.device = images_u8.device
            self.num_images = images_u8.shape[0]
            self.image_shape = tuple(images_u8.shape[1:])
        else:
            self.device = torch.device(device)
            self.num_images = reader.num_images
            self.image_shape = tuple(reader.shape[1:])

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` ``(B,)``: float32 ``(B, C, H, W)`` in [0, 1] on ``self.device``."""
        if self.images_u8 is not None:
            return sample_batch(self.images_u8, indices)
        index = indices.to("cpu", torch.int64).numpy()
        if self.reader.packed:
            x = torch.from_numpy(self.reader.bits(index)).to(torch.float32)  # 0/1 -> 0.0/1.0
        else:
            x = to_float(torch.from_numpy(self.reader.raw(index)))
        return x.view(len(index), *self.image_shape).to(self.device)  # (B, C, H, W)


class GroundTruthDataset:
    """A dataset whose images are the full grid of a few discrete ground-truth factors.

    Subclasses declare the class attributes below and implement
    ``factor_values`` and ``render``; they may override ``generate`` with a
    faster whole-grid generator.

    Args:
        source: "auto", "official" or "procedural".
        root: data directory (default ``$VAEBENCH_DATA`` or ``~/.cache/vaebench``).
        progress: show rich progress bars while verifying, converting or generating.

    Construction does no I/O; ``prepare()`` (called by ``load_dataset`` and on
    first access to the images) resolves the source and builds the cache.
    """

    name: ClassVar[str]
    factor_names: ClassVar[tuple[str, ...]]
    factor_sizes: ClassVar[tuple[int, ...]]
    observation_shape: ClassVar[tuple[int, int, int]]  # (C, H, W)
    likelihood: ClassVar[str]  # the default reconstruction likelihood for training
    official_files: ClassVar[tuple[OfficialFile, ...]] = ()
    #: Files read when observations are drawn, whatever the image source (scream_dsprites' painting).
    assets: ClassVar[tuple[OfficialFile, ...]] = ()
    generator_version: ClassVar[str | None]  # bump when procedural images change; None: official only
    render_batch: ClassVar[int] = 4096  # images per chunk in the default ``generate``

    def __init__(self, source: str = "auto", root: str | os.PathLike | None = None, *, progress: bool = True):
        if source not in SOURCES:
            raise UserError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
        self.requested_source = source
        self.root = data_root(root)
        self.progress = progress
        self._source: str | None = None
        self._cache: FlatCache | None = None
        self._reader: CacheReader | None = None  # reads the cache's images by index once prepared
        self._provenance: dict = {}

    # -- declared structure -----------------------------------------------------
    @cached_property
    def grid(self) -> FactorGrid:
        """The factor grid: names, sizes and the flat index mapping."""
        return FactorGrid(self.factor_names, self.factor_sizes)

    @property
    def num_factors(self) -> int:
        """The number of ground-truth factors."""
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return self.grid.num_total

    def __repr__(self) -> str:
        source = self._source or f"{self.requested_source} (not prepared)"
        return f"{type(self).__name__}(name={self.name!r}, source={source!r}, grid={self.grid})"

    def factor_values(self) -> tuple[np.ndarray, ...]:
        """The physical value of every index of every factor (in the official files' units)."""
        raise NotImplementedError

    # -- sampling (the metrics' duck-typed sampler protocol) ------------------------
    def sample_factors(self, n: int, rng: np.random.Generator | np.random.RandomState) -> np.ndarray:
        """``n`` factor vectors drawn uniformly, ``(n, n_factors)`` int64."""
        return self.grid.sample_factors(n, rng)

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | np.random.RandomState | None = None
    ) -> np.ndarray:
        """``images(factors)``; ``rng`` is unused because every grid point has exactly one image."""
        return self.images(factors)

    # -- images ---------------------------------------------------------------
    def images(self, factors: np.ndarray) -> np.ndarray:
        """uint8 ``(n, C, H, W)`` images of the factor indices ``(n, n_factors)``."""
        return self.images_at(self.grid.factors_to_indices(factors))

    def images_at(self, indices: np.ndarray) -> np.ndarray:
        """uint8 ``(n, C, H, W)`` images at flat indices ``(n,)`` (gathered from the memmap cache)."""
        indices = self.grid.validate_indices(indices)
        return self._ready_images().images(indices)

    def as_tensor(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """The whole dataset as one uint8 tensor ``(N, C, H, W)`` on ``device`` (2.8 GiB for dSprites).

        Filled in chunks of 16,384 images from the cache file, so a CUDA copy
        needs no host copy of the whole dataset; on the CPU the tensor is that copy.
        """
        reader = self._ready_images()
        device = torch.device(device)
        out = torch.empty((reader.num_images, *reader.shape[1:]), dtype=torch.uint8, device=device)
        step = 16384
        for start in range(0, reader.num_images, step):
            stop = min(start + step, reader.num_images)
            out[start:stop].copy_(torch.from_numpy(reader.images(np.arange(start, stop))))
        return out

    def training_images(self, device: str | torch.device = "cpu") -> TrainingImages:
        """What the training loop draws batches from (see ``TrainingImages``).

        On the CPU each batch is read from the cache file by index (peak memory
        a few MB, not the dataset); on CUDA the whole uint8 dataset is uploaded once
        and batches are gathered on the device.
        """
        reader = self._ready_images()
        device = torch.device(device)
        if device.type == "cpu":
            return TrainingImages(reader=reader, device=device)
        return TrainingImages(self.as_tensor(device))

    #: True when an observation is not a function of its factors alone (color_dsprites' colour,
    #: noisy_dsprites' background): ``observation_noise`` then draws per observation.
    stochastic_observations: ClassVar[bool] = False

    def observation_noise(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-observation randomness applied to a float training batch ``(B, C, H, W)`` in [0, 1].

        Drawn from the run's own ``generator`` (after the batch indices, before the
        reparameterisation noise), so the same seed gives the same numbers. The
        default draws nothing and returns ``batch`` unchanged.
        """
        return batch

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Procedural uint8 ``(n, C, H, W)`` images for ``factors``, without any cache."""
        raise NotImplementedError

    def generate(self, out: np.ndarray, progress: bool = True) -> None:
        """Write the procedural image of every grid point into ``out`` ``(N, C, H, W)``.

        Default: ``render`` over chunks of flat indices, on every core (see
        ``parallel``). Subclasses override it with generators that share work
        across the grid.
        """
        total, batch = self.grid.num_total, self.render_batch
        chunks = [(start, min(start + batch, total)) for start in range(0, total, batch)]
        self.run_generation(_render_chunk, out, chunks, [stop - start for start, stop in chunks], progress)

    def run_generation(
        self, worker: Callable, out: np.ndarray, parts: list[tuple], weights: list[int], progress: bool
    ) -> None:
        """Run ``worker((worker_spec, target, *part))`` for every part of the grid, on every core.

        Each call writes its images into ``out`` itself; ``weights`` are the
        images per part, for the progress bar. A plain in-memory ``out`` (tests)
        is filled here, in this process.
        """
        target = output_target(out)
        run_tasks(
            worker,
            [(self.worker_spec(), target, *part) for part in parts],
            description=f"generating {self.name}",
            weights=weights,
            processes=None if isinstance(out, np.memmap) else 1,
            progress=progress,
        )

    def worker_spec(self) -> tuple[type[GroundTruthDataset], tuple[int, ...]]:
        """What a worker process needs to rebuild this dataset's generator: class and grid sizes."""
        return type(self), tuple(self.factor_sizes)

    @staticmethod
    def from_worker_spec(spec: tuple[type[GroundTruthDataset], tuple[int, ...]]) -> GroundTruthDataset:
        """Rebuild a dataset in a worker process from ``worker_spec()`` (class and grid sizes)."""
        cls, sizes = spec
        dataset = cls(progress=False)
        dataset.factor_sizes = tuple(sizes)  # the grid the parent asked for (tests shrink it)
        return dataset

    # -- sources and caches (how a source is prepared: ``sources.PREPARERS``) ----
    @property
    def cache_dir(self) -> Path:
        """The directory of this dataset's caches, under its root."""
        return self.root / "cache"

    @property
    def source(self) -> str:
        """The source actually used, "official" or "procedural" (prepares the dataset)."""
        self.prepare()
        return self._source

    def provenance(self) -> dict:
        """Where the images come from: source, cache path, and file + checksum or generator version."""
        self.prepare()
        return dict(self._provenance)

    def prepare(self, *, rebuild: bool = False) -> GroundTruthDataset:
        """Resolve the source and make sure its cache exists; returns ``self``."""
        if self._reader is not None and not rebuild:
            return self
        self._use(*PREPARERS[self.requested_source](self, rebuild))
        self._reader = self._cache.reader()
        return self

    def _ready_images(self) -> CacheReader:
        self.prepare()
        return self._reader

    def procedural_cache(self) -> FlatCache:
        """The cache of the generated images, named by the generator's version."""
        identity = {
            "dataset": self.name,
            "factor_sizes": list(self.factor_sizes),
            "source": "procedural",
            "generator_version": self.generator_version,
        }
        stem = f"{self.name}-procedural-v{self.generator_version}"
        return FlatCache(self.cache_dir, stem, (self.grid.num_total, *self.observation_shape), identity)

    def official_cache(self, official: OfficialFile) -> FlatCache:
        """The cache of the images converted from ``official``, tied to its checksum."""
        identity = {
            "dataset": self.name,
            "factor_sizes": list(self.factor_sizes),
            "source": "official",
            "source_file": official.filename,
            "source_checksum": str(official.checksum),
        }
        return FlatCache(
            self.cache_dir, f"{self.name}-official", (self.grid.num_total, *self.observation_shape), identity
        )

    def find_official_file(self) -> tuple[OfficialFile, Path] | None:
        """The first official file present in the data directory, if any."""
        for official in self.official_files:
            path = self.root / official.filename
            if path.is_file():
                return official, path
        return None

    def missing_official_message(self) -> str:
        """What to do when no official file is at hand (where to put it, how to fetch it)."""
        if not self.official_files:
            return f"{self.name} has no official file; use --source procedural (or auto)."
        names = " or ".join(f"{self.root / f.filename}" for f in self.official_files)
        urls = "; ".join(f.url for f in self.official_files)
        return (
            f"no official {self.name} file in {self.root}: put {names} there by hand (from {urls}), "
            f"run `vaebench data fetch {self.name}`, or use --source procedural, which works offline."
        )

    def _use(self, cache: FlatCache, source: str, details: dict) -> None:
        self._cache, self._source = cache, source
        manifest = cache.manifest() or {}
        self._provenance = {
            "dataset": self.name,
            "source": source,
            "cache": str(cache.array_path),
            "cache_content_hash": manifest.get("content_hash"),  # checked in full by prepare
            **details,
        }


def output_target(out: np.ndarray) -> str | np.ndarray:
    """How a worker finds ``out``: a memory-mapped ``.npy`` by its path, anything else as is (in-process)."""
    return str(out.filename) if isinstance(out, np.memmap) and out.filename else out


def open_output(target: str | np.ndarray) -> np.ndarray:
    """A worker's ``output_target``: the ``.npy`` memory-mapped for writing, or the array itself."""
    return np.load(target, mmap_mode="r+") if isinstance(target, str) else target


def _render_chunk(task) -> int:
    spec, target, start, stop = task
    dataset = GroundTruthDataset.from_worker_spec(spec)
    open_output(target)[start:stop] = dataset.render(dataset.grid.indices_to_factors(np.arange(start, stop)))
    return stop - start
