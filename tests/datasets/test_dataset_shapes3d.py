"""Procedural 3D Shapes: the scene's structure, and every factor changing its own part of the image."""

import matplotlib.colors as mcolors
import numpy as np
import pytest

from benchmarks.datasets.shapes3d import Shapes3D

SKY = np.array([153, 226, 249])
# floor red (hue 0.0), wall blue (0.6), object green (0.3), largest capsule, orientation 0 degrees
BASE = np.array([0, 6, 3, 7, 3, 7])


@pytest.fixture(scope="module")
def ds():
    return Shapes3D()


def _hsv(image: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 -> (H, W, 3) HSV in [0, 1]."""
    return mcolors.rgb_to_hsv(image.transpose(1, 2, 0) / 255.0)


def _hue_distance(h: np.ndarray, target: float) -> np.ndarray:
    d = np.abs(h - target) % 1.0
    return np.minimum(d, 1.0 - d)


def _variants(ds, factor: int) -> np.ndarray:
    """BASE and BASE with ``factor`` moved to another value, rendered: (2, 3, 64, 64)."""
    other = BASE.copy()
    other[factor] = (BASE[factor] + ds.factor_sizes[factor] // 2) % ds.factor_sizes[factor]
    return ds.render(np.stack([BASE, other]))


def test_scene_has_sky_walls_floor_object_and_a_shadow(ds):
    (image,) = ds.render(BASE[None])
    hsv = _hsv(image)
    assert np.abs(image[:, :4].reshape(3, -1) - SKY[:, None]).max() <= 3  # light-blue sky at the top
    wall, floor = hsv[20:30, :6], hsv[56:, :8]  # left edge: wall band, then floor
    assert _hue_distance(wall[..., 0], 0.6).max() < 0.02 and wall[..., 1].min() > 0.95
    assert _hue_distance(floor[..., 0], 0.0).max() < 0.02 and floor[..., 1].min() > 0.95
    centre = hsv[28:34, 30:34]
    assert _hue_distance(centre[..., 0], 0.3).max() < 0.02  # the object in the middle
    # a cast shadow: floor-coloured pixels much darker than the lit floor, below the object's middle
    is_floor = (_hue_distance(hsv[..., 0], 0.0) < 0.02) & (hsv[..., 1] > 0.9)
    lit = np.median(hsv[..., 2][is_floor])
    rows, cols = np.nonzero(is_floor & (hsv[..., 2] < 0.5 * lit))
    assert len(rows) > 80 and rows.mean() > 45 and cols.mean() > 32


def test_every_factor_changes_the_image_and_each_changes_something_different(ds):
    masks = {}
    for j, name in enumerate(ds.factor_names):
        a, b = _variants(ds, j).astype(np.int16)
        masks[name] = np.abs(a - b).max(axis=0) > 8  # (64, 64) pixels this factor moved
        assert masks[name].sum() > 40, name
    names = list(masks)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            union = (masks[first] | masks[second]).sum()
            assert (masks[first] & masks[second]).sum() < 0.8 * union, (first, second)


def test_hues_tint_disjoint_surfaces(ds):
    hue_masks = [np.abs(np.diff(_variants(ds, j).astype(np.int16), axis=0))[0].max(0) > 0 for j in range(3)]
    for i in range(3):
        for k in range(i + 1, 3):
            overlap = (hue_masks[i] & hue_masks[k]).sum()
            # only anti-aliased boundary pixels, which mix two surfaces, may change for two hues
            assert overlap < 0.05 * (hue_masks[i] | hue_masks[k]).sum(), (i, k, overlap)
    floor_changed, wall_changed, object_changed = hue_masks
    assert floor_changed[60:].mean() > 0.95 and wall_changed[20:28].mean() > 0.6 and object_changed[30, 32]
    assert not any(m[:4].any() for m in hue_masks)  # the sky never changes


def _object_pixels(image: np.ndarray) -> int:
    hsv = _hsv(image)
    return int(((_hue_distance(hsv[..., 0], 0.3) < 0.05) & (hsv[..., 1] > 0.5)).sum())


def test_scale_grows_the_object_and_shape_changes_its_silhouette(ds):
    by_scale = ds.render(np.array([[*BASE[:3], s, 3, 7] for s in range(8)]))
    areas = [_object_pixels(im) for im in by_scale]
    assert all(np.diff(areas) > 0) and areas[-1] > 2 * areas[0]
    by_shape = ds.render(np.array([[*BASE[:3], 7, s, 7] for s in range(4)]))
    silhouettes = [(_hue_distance(_hsv(im)[..., 0], 0.3) < 0.05) for im in by_shape]
    for i in range(4):
        for k in range(i + 1, 4):
            assert (silhouettes[i] != silhouettes[k]).sum() > 30, (i, k)
    # a sphere is as wide as it is tall; a capsule twice as tall as wide
    for shape, aspect in [(2, 1.0), (3, 2.0)]:
        rows, cols = np.nonzero(silhouettes[shape])
        assert (np.ptp(rows) + 1) / (np.ptp(cols) + 1) == pytest.approx(aspect, rel=0.2)


def test_orientation_turns_the_camera_room_corners_come_into_view(ds):
    images = ds.render(np.array([[*BASE[:3], 0, 0, o] for o in (0, 7, 14)]))  # -30, 0, +30 degrees
    sky_bottom = []
    for image in images:
        is_sky = np.all(np.abs(image.astype(int) - SKY[:, None, None]) <= 6, axis=0)
        sky_bottom.append(is_sky.sum(axis=0))  # rows of sky per column: largest where the far corner is
    minus_30, zero, plus_30 = sky_bottom
    assert zero.max() - zero.min() <= 2  # facing the back wall: its top edge is level

    def corner(profile):  # middle of the columns where the wall's top edge is lowest
        return np.flatnonzero(profile == profile.max()).mean()

    assert corner(minus_30) > 38  # the right-hand corner (about 44 in the official frames)
    assert corner(plus_30) < 26  # the left-hand corner (about 20)
    assert _object_pixels(images[0]) > 0 and abs(_object_pixels(images[0]) - _object_pixels(images[2])) < 40


def test_render_is_deterministic_and_batch_independent(ds):
    factors = np.array([BASE, [9, 0, 5, 2, 1, 3], [4, 4, 4, 4, 2, 14]])
    together = ds.render(factors)
    alone = np.concatenate([ds.render(f[None]) for f in factors])
    assert together.dtype == np.uint8 and together.shape == (3, 3, 64, 64)
    assert np.array_equal(together, alone)


def test_generate_on_a_small_grid_equals_render(tiny_shapes3d):
    ds = tiny_shapes3d()
    out = np.zeros((len(ds), 3, 64, 64), np.uint8)
    ds.generate(out, progress=False)
    difference = np.abs(out.astype(np.int16) - ds.render(ds.grid.all_factors()).astype(np.int16))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_bad_factors_are_refused_naming_the_factor(ds):
    with pytest.raises(ValueError, match=r"'shape'.*\[0, 3\].*got 4"):
        ds.render(np.array([[0, 0, 0, 0, 4, 0]]))
