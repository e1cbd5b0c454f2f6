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
  sizes) is fitted to 25 official frames: which surface (sky, wall, floor,
  object) each pixel shows differs in 7 pixels per frame on average (at most
  26), object silhouettes by 1-26 pixels (of 230-890);
  the camera orbits the object (orientation -30 shows the room's right-hand
  corner, 0 none, +30 the left-hand one) as there;
* lighting is a simple model (ambient, a key light behind the camera, a light
  high above, left of and behind the object that casts a soft shadow to its
  lower right, a white highlight, a darkened wall/floor seam) fitted to the
  official brightness (RMS error of HSV value about 0.07); MuJoCo's shading
  differs in detail: its shadows are darker and crisper, the official cube's
  faces are lit a little differently, and its anti-aliasing differs;
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

from .dataset import GroundTruthDataset, open_output
from .official import (
    check_array,
    h5_member,
    iter_h5_rows,
    labels_to_indices,
    open_h5,
    rows_to_flat_indices,
    write_rows,
)
from .parallel import torch_threads
from .progress import progress_bar
from .registry import register_dataset
from .shapes3d_scene import OBJECT_SHAPES, SCENE, Scene, ShadingMaps, compose, hue_to_rgb, shading_maps
from .sources import OfficialFile

__all__ = ["Shapes3D"]

_URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
_GEOMETRY_CHUNK = 15  # geometries traced at once: 15 * 64 * 64 * 9 rays, a few hundred MB of temporaries


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
    generator_version = "2"  # 2: lighting fitted to the official frames
    scene: Scene = SCENE

    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Floor, wall and object hues 0-0.9 in tenths, scale 0.75-1.25, shape index, angle in degrees."""
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
    def geometry_maps(self, geometry: np.ndarray) -> ShadingMaps:
        """Shading maps ``(G, ...)`` of geometries ``(G, 3)`` = (scale, shape, orientation) indices.

        Traced per shape (each shape has its own intersector), in chunks to bound memory.
        """
        _, _, _, scales, _, orientations = self.factor_values()
        shape_names = list(OBJECT_SHAPES)
        g, (h, w) = len(geometry), self.observation_shape[1:]
        maps = ShadingMaps(
            torch.empty(g, h, w), torch.empty(g, h, w), torch.empty(g, h, w), torch.empty(g, 3, h, w)
        )
        for shape in np.unique(geometry[:, 1]):
            rows = np.flatnonzero(geometry[:, 1] == shape)
            for start in range(0, len(rows), _GEOMETRY_CHUNK):
                chunk = rows[start : start + _GEOMETRY_CHUNK]
                part = shading_maps(
                    torch.from_numpy(scales[geometry[chunk, 0]]),
                    shape_names[int(shape)],
                    # the camera orbits the opposite way to the orientation value
                    torch.from_numpy(-np.deg2rad(orientations[geometry[chunk, 2]])),
                    self.scene,
                )
                for field in ("floor", "wall", "object", "constant"):
                    getattr(maps, field)[torch.from_numpy(chunk)] = getattr(part, field)
        return maps

    def hue_colours(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RGB ``(n_values, 3)`` of every floor, wall and object hue index."""
        floor, wall, obj = self.factor_values()[:3]
        return tuple(hue_to_rgb(torch.from_numpy(v).float()) for v in (floor, wall, obj))

    def render(self, factors: np.ndarray) -> np.ndarray:
        """uint8 ``(n, 3, 64, 64)`` RGB images of ``factors`` ``(n, 6)``, traced now (once per geometry)."""
        factors = self.grid.validate_factors(factors)
        # distinct (scale, shape, orientation) triples, and which one each image uses
        geometry, which = np.unique(factors[:, 3:], axis=0, return_inverse=True)
        with torch_threads(1):  # small work: threads would only wait on each other (see ``parallel``)
            maps = self.geometry_maps(geometry)
            g = torch.from_numpy(which.reshape(-1))
            per_image = ShadingMaps(maps.floor[g], maps.wall[g], maps.object[g], maps.constant[g])
            floor_rgb, wall_rgb, object_rgb = self.hue_colours()
            return compose(
                per_image, floor_rgb[factors[:, 0]], wall_rgb[factors[:, 1]], object_rgb[factors[:, 2]]
            ).numpy()

    def generate(self, out: np.ndarray, progress: bool = True) -> None:
        """All images in grid order, one task per (scale, shape) on every core.

        A task traces its geometries (one per orientation) once and tints them
        with every hue triple. The flat order is (hue triple, geometry), so the
        task's images are one column of ``out`` viewed as (hue triples, geometries).
        """
        n_floor, n_wall, n_object, n_scales, n_shapes, n_orientations = self.factor_sizes
        parts = [(c, s) for c in range(n_scales) for s in range(n_shapes)]
        images_per_part = n_floor * n_wall * n_object * n_orientations
        self.run_generation(_generate_block, out, parts, [images_per_part] * len(parts), progress)


def _generate_block(task) -> int:
    """Trace one (scale, shape)'s geometries and write them tinted with every hue triple."""
    spec, target, scale_index, shape_index = task
    dataset = GroundTruthDataset.from_worker_spec(spec)
    n_floor, n_wall, n_object, _, n_shapes, n_orientations = dataset.factor_sizes
    orientations = np.arange(n_orientations)
    geometry = np.stack(
        [np.full_like(orientations, scale_index), np.full_like(orientations, shape_index), orientations], 1
    )
    maps = dataset.geometry_maps(geometry)
    floor_rgb, wall_rgb, object_rgb = dataset.hue_colours()
    # in 0-255 units; walls and objects tinted by every hue pair once: (W, O, G, 3, H, W), ~74 MB
    walls = 255.0 * maps.wall[None, :, None] * wall_rgb[:, None, :, None, None]
    objects = 255.0 * maps.object[None, :, None] * object_rgb[:, None, :, None, None]
    pairs = walls[:, None] + objects[None]
    work, images = (
        torch.empty_like(pairs),
        torch.empty(pairs.shape, dtype=torch.uint8),
    )  # reused per floor hue
    out = open_output(target)
    # (floor, wall, object hue, geometry, C, H, W) view of the flat order; this task owns a run of geometries
    by_geometry = out.reshape(n_floor, n_wall, n_object, -1, *out.shape[1:])
    first = (scale_index * n_shapes + shape_index) * n_orientations
    for floor in range(n_floor):
        # the hue-independent part plus the floor, with the rounding offset: (G, 3, H, W)
        base = 255.0 * (maps.constant + maps.floor[:, None] * floor_rgb[floor, :, None, None]) + 0.5
        torch.add(pairs, base, out=work).clamp_(0, 255)
        images.copy_(work)  # truncation of values >= 0, i.e. rounding thanks to the +0.5
        by_geometry[floor, :, :, first : first + n_orientations] = images.numpy()
    return n_floor * n_wall * n_object * n_orientations
