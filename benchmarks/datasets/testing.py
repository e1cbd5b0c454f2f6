"""Conformance checks for ground-truth datasets: ``check_dataset(cls, root)``.

The dataset counterpart of ``vae_zoo.testing.check_model`` (scikit-learn's
``parametrize_with_checks`` idea): the project runs it over every registered
dataset (tests/datasets/test_dataset_conformance.py), and a third party calls
it on its own dataset class. It lives here, not in ``vae_zoo``, because
``vae_zoo`` and ``metrics`` never import ``benchmarks``.

It checks, raising AssertionError that names the dataset and what differs:

* the declared structure (names, sizes, observation shape, a registered
  likelihood, factor values) and the grid's round trip, factors <-> flat index;
* ``sample_factors`` under ``np.random.Generator`` and ``np.random.RandomState``
  (in range, int64, the same seed the same draws);
* the images: uint8 ``(n, C, 64, 64)``, and their float batches in [0, 1];
* observation noise (training's ``observation_noise``, evaluation's
  ``sample_observations_from_factors``) that the same generator makes the same;
* the procedural cache equals ``render`` image for image, and a dataset with no
  generator refuses ``source="procedural"``;
* the conversion of its official files, on fakes written by ``write_files``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from .dataset import GroundTruthDataset, to_float
from .errors import OfficialFileMissingError
from .registry import DATASETS

__all__ = ["check_dataset"]

#: Writes fake official files (and assets) for ``dataset``'s grid into ``dataset.root``, trusted by
#: checksum; returns the images ``(N, C, H, W)`` uint8 the conversion must give, or None if unknown.
WriteFiles = Callable[[GroundTruthDataset], "np.ndarray | None"]


def check_dataset(
    cls: type[GroundTruthDataset],
    root: str | os.PathLike,
    *,
    overrides: Mapping[str, Any] | None = None,
    write_files: WriteFiles | None = None,
    n_samples: int = 64,
) -> None:
    """Raise AssertionError describing the first failed check of dataset class ``cls``.

    Args:
        cls: a registered ``GroundTruthDataset`` subclass.
        root: an empty data directory the checks may write to.
        overrides: instance attributes set before anything is read, e.g. a small
            ``factor_sizes`` so that images are drawn on a grid of a few hundred.
        write_files: writes fake official files (see ``WriteFiles``); a dataset
            with official files and no generator needs it to check its images.
        n_samples: factor vectors drawn by the sampling checks.
    """
    assert isinstance(cls, type) and issubclass(cls, GroundTruthDataset), (
        f"{cls!r} is not a subclass of GroundTruthDataset"
    )
    name = DATASETS.name_of(cls)  # registered, by decorator or entry point
    assert cls.name == name, f"{cls.__qualname__}.name is {cls.name!r}, registered as {name!r}"

    def make(source: str) -> GroundTruthDataset:
        dataset = cls(source=source, root=root, progress=False)
        for attribute, value in (overrides or {}).items():
            setattr(dataset, attribute, value)
        return dataset

    _check_structure(make("auto"))
    _check_sampling(make("auto"), n_samples)
    if write_files is not None:  # official files, and assets such as scream_dsprites' painting
        expected = write_files(make("official"))
        if cls.official_files:
            _check_official(make("official"), expected)
            _check_images(make("official"), n_samples)
    if cls.generator_version is not None:
        _check_procedural(make("procedural"))
        _check_images(make("procedural"), n_samples)
    else:
        assert cls.official_files, f"{name}: no generator and no official files: nothing can make its images"
        try:
            make("procedural").prepare()
        except OfficialFileMissingError:
            pass
        else:
            raise AssertionError(f"{name}: has no generator, yet source='procedural' prepared")


def _check_structure(ds: GroundTruthDataset) -> None:
    from vae_zoo.likelihoods import LIKELIHOODS

    name = ds.name
    names, sizes = ds.factor_names, ds.factor_sizes
    assert isinstance(names, tuple) and all(isinstance(n, str) for n in names), (
        f"{name}: factor_names {names!r}"
    )
    assert isinstance(sizes, tuple) and all(isinstance(s, int) and s >= 1 for s in sizes), (
        f"{name}: factor_sizes must be a tuple of ints >= 1; got {sizes!r}"
    )
    assert len(names) == len(sizes) == ds.num_factors, f"{name}: {len(names)} names for {len(sizes)} sizes"
    assert len(set(names)) == len(names), f"{name}: repeated factor names {names}"
    channels, height, width = ds.observation_shape
    assert channels in (1, 3) and (height, width) == (64, 64), (
        f"{name}: observation_shape must be (1 or 3, 64, 64); got {ds.observation_shape}"
    )
    assert ds.likelihood in LIKELIHOODS, f"{name}: likelihood {ds.likelihood!r} is not registered"
    assert ds.generator_version is None or isinstance(ds.generator_version, str), (
        f"{name}: generator_version must be a str or None; got {ds.generator_version!r}"
    )
    values = ds.factor_values()
    assert [len(v) for v in values] == list(sizes), (
        f"{name}: factor_values have lengths {[len(v) for v in values]}, factor_sizes are {sizes}"
    )
    # The stored grid is the scored factors' grid or a finer one (smallnorb's instance, drawn per draw).
    grid, total = ds.grid, ds.grid.num_total
    assert len(ds) == total and total % int(np.prod(sizes, dtype=np.int64)) == 0, (
        f"{name}: {len(ds)} images, {total} grid points, for factor_sizes {sizes}"
    )
    rng = np.random.default_rng(0)
    indices = np.unique(np.r_[0, total - 1, rng.integers(0, total, size=min(total, 256))])
    factors = grid.indices_to_factors(indices)
    assert np.array_equal(grid.factors_to_indices(factors), indices), f"{name}: index -> factors -> index"
    last = grid.indices_to_factors(np.array([total - 1]))[0]
    assert np.array_equal(last, np.array(grid.sizes) - 1), (
        f"{name}: the last flat index is not the last point"
    )


def _check_sampling(ds: GroundTruthDataset, n: int) -> None:
    for make_rng in (np.random.default_rng, np.random.RandomState):
        kind = make_rng.__name__
        factors = ds.sample_factors(n, make_rng(0))
        assert factors.shape == (n, ds.num_factors) and factors.dtype == np.int64, (
            f"{ds.name}: sample_factors({n}, {kind}) gave {factors.dtype} {factors.shape}"
        )
        assert np.all((factors >= 0) & (factors < np.array(ds.factor_sizes))), (
            f"{ds.name}: sample_factors({kind}) drew factors outside the grid"
        )
        assert np.array_equal(ds.sample_factors(n, make_rng(0)), factors), (
            f"{ds.name}: sample_factors with a fresh {kind}(0) drew other factors"
        )


def _check_images(ds: GroundTruthDataset, n: int) -> None:
    """Stored images, float batches and the observations the metrics and training draw."""
    name, shape = ds.name, ds.observation_shape
    indices = np.random.default_rng(1).integers(0, ds.grid.num_total, size=n)
    images = ds.images_at(indices)
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[0] == n, (
        f"{name}: images() gave {images.dtype} {images.shape}"
    )
    assert images.shape[2:] == shape[1:] and (ds.stochastic_observations or images.shape[1:] == shape), (
        f"{name}: images() are {images.shape[1:]}, observation_shape is {shape}"
    )
    assert np.array_equal(ds.images(ds.grid.indices_to_factors(indices)), images), (
        f"{name}: images(factors) and images_at(flat index) differ"
    )
    batch = to_float(torch.from_numpy(images))
    assert batch.dtype == torch.float32 and 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0

    # Training: observation noise from the run's torch generator, the same seed the same numbers.
    noisy = ds.observation_noise(batch, torch.Generator().manual_seed(0))
    again = ds.observation_noise(batch, torch.Generator().manual_seed(0))
    assert noisy.shape == (n, *shape) and noisy.dtype == torch.float32, (
        f"{name}: observation_noise gave {noisy.dtype} {tuple(noisy.shape)}, expected float32 {(n, *shape)}"
    )
    assert torch.equal(noisy, again), f"{name}: observation_noise differs for the same generator seed"
    assert 0.0 <= float(noisy.min()) and float(noisy.max()) <= 1.0, f"{name}: observation_noise leaves [0, 1]"
    if not ds.stochastic_observations:
        assert torch.equal(noisy, batch), f"{name}: not stochastic, yet observation_noise changed the batch"

    # Evaluation: observations drawn from the metrics' numpy generator, of either kind.
    factors = ds.sample_factors(n, np.random.RandomState(1))
    for make_rng in (np.random.default_rng, np.random.RandomState):
        seen = ds.sample_observations_from_factors(factors, make_rng(2))
        assert seen.shape == (n, *shape), f"{name}: observations are {seen.shape}, expected {(n, *shape)}"
        assert np.array_equal(seen, ds.sample_observations_from_factors(factors, make_rng(2))), (
            f"{name}: the same {make_rng.__name__} seed gave other observations"
        )
        if seen.dtype == np.uint8:
            assert not ds.stochastic_observations and np.array_equal(seen, ds.images(factors)), (
                f"{name}: uint8 observations must be the stored images"
            )
        else:
            assert seen.dtype in (np.float32, np.float64), f"{name}: observations of dtype {seen.dtype}"
            assert 0.0 <= seen.min() and seen.max() <= 1.0, f"{name}: float observations leave [0, 1]"


def _check_procedural(ds: GroundTruthDataset) -> None:
    """The cache ``generate`` builds holds ``render``'s image of every grid point (to round-off)."""
    total = ds.grid.num_total
    assert total <= 4096, (
        f"{ds.name}: {total} images on the checked grid; pass overrides={{'factor_sizes': ...}} to shrink it"
    )
    ds.prepare()
    assert ds.source == "procedural" and ds.provenance()["generator_version"] == ds.generator_version
    stored = ds.images_at(np.arange(total))
    rendered = ds.render(ds.grid.all_factors())
    assert rendered.dtype == np.uint8 and rendered.shape == stored.shape, (
        f"{ds.name}: render gave {rendered.dtype} {rendered.shape}, the cache holds {stored.shape}"
    )
    # Equal up to float round-off: a whole-grid generator may order its float operations otherwise
    # (3D Shapes tints shared shading maps), so a pixel may differ by one level, rarely.
    difference = np.abs(stored.astype(np.int16) - rendered.astype(np.int16))
    assert difference.max(initial=0) <= 1 and (difference > 0).mean() < 1e-3, (
        f"{ds.name}: the generated cache differs from render by up to {difference.max()} levels "
        f"in {(difference > 0).mean():.2%} of the pixels"
    )


def _check_official(ds: GroundTruthDataset, expected: np.ndarray | None) -> None:
    """The fake official files convert: the official source, every grid point, the expected images."""
    ds.prepare()
    assert ds.source == "official", f"{ds.name}: prepared from {ds.source!r}, not the official files"
    stored = ds.images_at(np.arange(ds.grid.num_total))
    assert stored.dtype == np.uint8 and stored.shape[0] == ds.grid.num_total
    if expected is not None:
        assert expected.shape == stored.shape, (
            f"{ds.name}: converted {stored.shape}, expected {expected.shape}"
        )
        different = np.flatnonzero((stored != expected).reshape(len(stored), -1).any(axis=1))
        assert different.size == 0, (
            f"{ds.name}: the conversion differs from the official images at {different.size} grid point(s), "
            f"first flat index {different[:1].tolist()}"
        )
