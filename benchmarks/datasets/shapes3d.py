"""3D Shapes (Burgess & Kim 2018): an object in a room, 64x64 RGB.

Six factors: floor_hue, wall_hue, object_hue (10 each), scale (8), shape (4:
cube, cylinder, sphere, capsule), orientation (15, -30 to 30 degrees);
orientation varies fastest, as in the official ``3dshapes.h5``.

The official file stores factor *values* as floats; they are mapped to
indices by nearest value (never by ``==``) and checked to cover the grid once.

The procedural generator (``shapes3d_scene``) traces the same scene, with
the camera, room and object sizes fitted to the official animation. It is
faithful in structure, not pixel-exact. How it differs from the original:

* geometry (camera distance, height and field of view, wall height, object
  sizes) is fitted to the official frames and matches to a pixel or so; the
  camera orbits the object (orientation -30 shows the room's right-hand
  corner, 0 none, +30 the left-hand one) exactly as there;
* lighting is a simple model (ambient, a key light near the camera up and to
  the left, a soft-shadowing light above the object, a white highlight, a
  darkened wall/floor seam) tuned to the official brightness levels; MuJoCo's
  shading, its shadow shape and softness, and its anti-aliasing differ in
  detail;
* the walls are flat colour: the faint texture of the official walls is not
  reproduced;
* colours are exact HSV hues at full saturation, so tints match, but the
  official GIF's palette quantisation is absent.

Every factor changes the image the way it does in the original, and each
changes something different: the three hues tint disjoint surfaces, scale
and shape change the object's silhouette (and its shadow), orientation turns
the camera and with it the room.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import GroundTruthDataset, OfficialFile, register_dataset
from .grid import FactorGrid
from .official import (
    check_array,
    h5_member,
    iter_h5_rows,
    labels_to_indices,
    open_h5,
    rows_to_flat_indices,
    write_rows,
)
from .shapes3d_scene import SCENE, Scene, ShadingMaps, hue_to_rgb, shading_maps
from .storage import progress_bar

__all__ = ["Shapes3D"]

_URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
_GEOMETRY_CHUNK = 16  # geometries traced at once: (16, 64*64*16 rays) keeps memory near 1 GB


def _check_h5(path: Path, dataset: GroundTruthDataset) -> None:
    n = dataset.grid.num_total
    with open_h5(path) as f:
        images, labels = h5_member(path, f, "images"), h5_member(path, f, "labels")
        check_array(path, "images", (n, 64, 64, 3), "u", images.shape, images.dtype)
        check_array(path, "labels", (n, dataset.num_factors), "f", labels.shape, labels.dtype)


def _convert_h5(path: Path, dataset: GroundTruthDataset, out: np.ndarray, progress: bool) -> None:
    _check_h5(path, dataset)
    with open_h5(path) as f:
        factors = labels_to_indices(path, f["labels"][:], dataset.factor_values(), dataset.factor_names)
        flat = rows_to_flat_indices(path, dataset.grid, factors)
        with progress_bar(disable=not progress) as bar:
            task = bar.add_task(f"converting {path.name}", total=len(flat))
            for start, images in iter_h5_rows(path, f["images"]):  # (n, 64, 64, 3) -> (n, 3, 64, 64)
                write_rows(out, flat, start, images.transpose(0, 3, 1, 2))
                bar.advance(task, len(images))


@register_dataset("shapes3d")
class Shapes3D(GroundTruthDataset):
    """3D Shapes: floor_hue, wall_hue, object_hue 10, scale 8, shape 4, orientation 15; 3x64x64 RGB."""

    name = "shapes3d"
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    factor_sizes = (10, 10, 10, 8, 4, 15)
    observation_shape = (3, 64, 64)
    likelihood = "gaussian"
    official_files = (OfficialFile("3dshapes.h5", _URL, _check_h5, _convert_h5),)
    generator_version = "1"
    scene: Scene = SCENE

    def factor_values(self) -> tuple[np.ndarray, ...]:
        floor, wall, obj, scale, shape, orientation = self.factor_sizes
        return (
            np.arange(floor) / floor,  # hues 0.0, 0.1, ... 0.9
            np.arange(wall) / wall,
            np.arange(obj) / obj,
            np.linspace(0.75, 1.25, scale),
            np.arange(shape, dtype=np.float64),  # 0 cube, 1 cylinder, 2 sphere, 3 capsule
            np.linspace(-30.0, 30.0, orientation),  # degrees
        )

    # -- procedural ---------------------------------------------------------------
    def geometry_maps(self, geometry: np.ndarray, progress: bool = False) -> ShadingMaps:
        """Shading maps of geometries ``(G, 3)`` = (scale, shape, orientation) indices, traced in chunks."""
        _, _, _, scales, shapes, orientations = self.factor_values()
        parts = []
        with progress_bar(disable=not progress) as bar:
            task = bar.add_task(f"tracing {self.name} geometries", total=len(geometry))
            for start in range(0, len(geometry), _GEOMETRY_CHUNK):
                chunk = geometry[start : start + _GEOMETRY_CHUNK]
                parts.append(
                    shading_maps(
                        torch.from_numpy(scales[chunk[:, 0]]),
                        torch.from_numpy(shapes[chunk[:, 1]]).long(),
                        # the camera orbits the opposite way to the orientation value
                        torch.from_numpy(-np.deg2rad(orientations[chunk[:, 2]])),
                        self.scene,
                    )
                )
                bar.advance(task, len(chunk))
        return ShadingMaps(
            *(torch.cat([getattr(p, k) for p in parts]) for k in ("floor", "wall", "object", "constant"))
        )

    def _hue_colours(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RGB ``(n_values, 3)`` of every floor, wall and object hue index."""
        floor, wall, obj = self.factor_values()[:3]
        return tuple(hue_to_rgb(torch.from_numpy(v).float()) for v in (floor, wall, obj))

    def render(self, factors: np.ndarray) -> np.ndarray:
        """uint8 ``(n, 3, 64, 64)`` RGB images of ``factors`` ``(n, 6)``, traced now (once per geometry)."""
        factors = self.grid.validate_factors(factors)
        geometry, which = np.unique(
            factors[:, 3:], axis=0, return_inverse=True
        )  # distinct (scale, shape, orientation)
        maps = self.geometry_maps(geometry)
        floor_rgb, wall_rgb, object_rgb = self._hue_colours()
        g = torch.from_numpy(which.reshape(-1))
        image = (
            maps.floor[g, None] * floor_rgb[factors[:, 0], :, None, None]
            + maps.wall[g, None] * wall_rgb[factors[:, 1], :, None, None]
            + maps.object[g, None] * object_rgb[factors[:, 2], :, None, None]
            + maps.constant[g]
        )
        return image.mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()

    def generate(self, out: np.ndarray, progress: bool = True) -> None:
        """All images in grid order: trace each geometry once, then tint it with every hue triple.

        The flat order is (floor, wall, object hue, geometry), so each (floor,
        wall) pair is one contiguous block of n_object_hues * n_geometries images.
        """
        n_floor, n_wall, n_object = self.factor_sizes[:3]
        geometry_grid = FactorGrid(self.factor_names[3:], self.factor_sizes[3:]).all_factors()  # (G, 3)
        maps = self.geometry_maps(geometry_grid, progress)
        floor_rgb, wall_rgb, object_rgb = self._hue_colours()
        # in 0-255 units, with the rounding offset folded into the hue-independent part
        tinted_objects = (
            255.0 * maps.object[None, :, None] * object_rgb[:, None, :, None, None]
        )  # (O, G, 3, H, W)
        constant = 255.0 * maps.constant + 0.5
        block = n_object * len(geometry_grid)
        with progress_bar(disable=not progress) as bar:
            task = bar.add_task(f"tinting {self.name} images", total=len(out))
            for f in range(n_floor):
                floor_part = (
                    255.0 * maps.floor[:, None] * floor_rgb[f, :, None, None] + constant
                )  # (G, 3, H, W)
                for w in range(n_wall):
                    base = floor_part + 255.0 * maps.wall[:, None] * wall_rgb[w, :, None, None]
                    images = (tinted_objects + base[None]).clamp_(0, 255).to(torch.uint8)
                    start = (f * n_wall + w) * block
                    out[start : start + block] = images.reshape(block, *self.observation_shape).numpy()
                    bar.advance(task, block)
