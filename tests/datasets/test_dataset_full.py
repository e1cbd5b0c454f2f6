"""Full-size procedural generation (GBs of cache, a minute or more): run with ``pytest -m slow``."""

import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.datasets import load_dataset

REFERENCE = Path(__file__).parents[1] / "data" / "dsprites_official_frames.npz"


@pytest.mark.slow
def test_full_dsprites_cache_matches_render_and_the_official_frames(data_root):
    started = time.perf_counter()
    ds = load_dataset("dsprites", source="procedural", progress=False)
    print(f"dsprites generated in {time.perf_counter() - started:.1f} s")
    assert ds.source == "procedural" and len(ds) == 737280
    rng = np.random.default_rng(0)
    factors = ds.sample_factors(2000, rng)
    assert np.array_equal(ds.images(factors), ds.render(factors))
    ref = np.load(REFERENCE)
    cached = ds.images(ref["latents_classes"][:, 1:])[:, 0] > 0
    official = ref["imgs"] > 0
    iou = (cached & official).sum((1, 2)) / (cached | official).sum((1, 2))
    for shape, bar in {0: 0.99, 1: 0.99, 2: 0.98}.items():
        assert iou[ref["latents_classes"][:, 1] == shape].mean() >= bar


@pytest.mark.slow
def test_full_shapes3d_cache_matches_render(data_root):
    started = time.perf_counter()
    ds = load_dataset("shapes3d", source="procedural", progress=False)
    print(f"shapes3d generated in {time.perf_counter() - started:.1f} s")
    assert ds.source == "procedural" and len(ds) == 480000
    rng = np.random.default_rng(0)
    factors = ds.sample_factors(300, rng)
    difference = np.abs(ds.images(factors).astype(np.int16) - ds.render(factors).astype(np.int16))
    assert difference.max() <= 1
    every_geometry = ds.images(
        np.array([[3, 5, 7, s, h, o] for s in range(8) for h in range(4) for o in range(15)])
    )
    assert len(np.unique(every_geometry.reshape(480, -1), axis=0)) == 480  # no two geometries alike
