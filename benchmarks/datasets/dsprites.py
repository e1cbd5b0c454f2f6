"""dSprites (Matthey et al. 2017): 2D sprites on a 64x64 black canvas.

Five scored factors: shape (square, ellipse, heart), scale (6), orientation
(40), posX (32), posY (32); posY varies fastest, as in the official file. The
official constant colour factor is dropped.

The procedural generator reproduces the official renderer (vector shapes
drawn by the LOVE framework without anti-aliasing; geometry measured against
real frames, see ``shared/DATA.md``): a pixel is on when its centre lies
inside the shape; the sprite centre is at ``16 + 32 * pos`` pixels with posY 0
at the top; orientation turns the sprite counter-clockwise on screen. Squares
and ellipses match the real frames almost pixel for pixel; hearts to IoU about
0.99, because LOVE's tessellation of the heart is unknown (ours is a
360-vertex polygon of the same curve, as is the ellipse).

Rasterisation is a vectorised scanline fill: each outline is a polygon; for
every image row the crossings of the row's centre line with the polygon give
the spans that are inside (even-odd rule), and each span becomes a row of
pixels by one lookup in a table of all 65x65 possible spans. The whole grid
shares the work: crossings depend on (shape, scale, orientation, posY, row)
only, and posX just shifts them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import GroundTruthDataset, OfficialFile, register_dataset
from .grid import FactorGrid
from .official import (
    NpzMember,
    check_array,
    check_keys,
    h5_member,
    iter_h5_rows,
    open_h5,
    rows_to_flat_indices,
    write_rows,
)
from .storage import DatasetFileError, progress_bar

__all__ = ["DSprites", "SPRITE_OUTLINES", "rasterize_rows", "row_crossings", "screen_outlines"]

CANVAS = 64
OUTLINE_VERTICES = 360  # polygon resolution of the curved outlines: < 0.001 px from the true curve

# -- outlines at scale 1, in pixels, centred on the sprite centre, y up -----------------


def square_outline() -> np.ndarray:
    """Square of side 19.2 px (0.3 of the canvas), ``(4, 2)``."""
    half = 9.6
    return np.array([[-half, -half], [half, -half], [half, half], [-half, half]])


def ellipse_outline() -> np.ndarray:
    """Ellipse with semi-axes 12.77 px (horizontal at orientation 0) and 7.21 px, ``(V, 2)``."""
    t = np.linspace(0, 2 * np.pi, OUTLINE_VERTICES, endpoint=False)
    return np.stack([12.77 * np.cos(t), 7.21 * np.sin(t)], axis=1)


def heart_outline() -> np.ndarray:
    """Heart curve, 0.600 px/unit across, 0.662 px/unit up, lobes up, raised 1.40 px, ``(V, 2)``."""
    t = np.linspace(0, 2 * np.pi, OUTLINE_VERTICES, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([0.600 * x, 0.662 * y + 1.40], axis=1)


#: Outline of each official shape value (1 square, 2 ellipse, 3 heart).
SPRITE_OUTLINES = {1: square_outline, 2: ellipse_outline, 3: heart_outline}


def screen_outlines(outline: np.ndarray, scales: np.ndarray, angles: np.ndarray) -> torch.Tensor:
    """``outline`` ``(V, 2)`` (y up) scaled and turned counter-clockwise on screen, in screen coordinates.

    ``scales`` and ``angles`` (radians) broadcast against each other to a shape
    ``S``; returns float64 ``(*S, V, 2)`` with y pointing down.
    """
    scales, angles = np.broadcast_arrays(np.asarray(scales, np.float64), np.asarray(angles, np.float64))
    cos, sin = np.cos(angles)[..., None], np.sin(angles)[..., None]  # (*S, 1)
    x, y = outline[:, 0], outline[:, 1]  # (V,)
    turned = np.stack([x * cos - y * sin, -(x * sin + y * cos)], axis=-1)  # (*S, V, 2), y flipped to down
    return torch.from_numpy(scales[..., None, None] * turned)


def row_crossings(outlines: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Where horizontal lines cross closed polygons, sorted, padded with +inf.

    Args:
        outlines: ``(B, V, 2)`` polygon vertices relative to the sprite centre (screen coordinates).
        dy: ``(B, R)`` heights of the lines (pixel-centre rows) relative to the sprite centre.

    Returns:
        ``(B, R, K)`` x of the crossings relative to the centre, ascending; K is
        the largest number of crossings of any line (even), shorter lists are
        padded with +inf. Between crossings 0-1, 2-3, ... the line is inside.
    """
    start = outlines[:, None, :, :]  # (B, 1, V, 2)
    end = torch.roll(outlines, -1, dims=1)[:, None, :, :]
    y = dy[:, :, None]  # (B, R, 1)
    # half-open rule: an edge crosses the line when exactly one end is at or below it
    crosses = (start[..., 1] <= y) != (end[..., 1] <= y)  # (B, R, V)
    rise = end[..., 1] - start[..., 1]
    slope = torch.where(rise == 0, torch.zeros_like(rise), (end[..., 0] - start[..., 0]) / rise)
    x = start[..., 0] + (y - start[..., 1]) * slope
    x = torch.where(crosses, x, torch.full_like(x, torch.inf))
    k = int(crosses.sum(-1).max()) if crosses.numel() else 0
    return torch.topk(x, k, dim=-1, largest=False, sorted=True).values


# Row of 64 pixels for every span [lo, hi) of columns, 0 <= lo, hi <= 64: (65 * 65, 64) uint8 0/255.
_SPAN_ROWS = torch.from_numpy(
    (
        (np.arange(CANVAS)[None, None, :] >= np.arange(CANVAS + 1)[:, None, None])
        & (np.arange(CANVAS)[None, None, :] < np.arange(CANVAS + 1)[None, :, None])
    ).reshape(-1, CANVAS)
    * np.uint8(255)
)


def rasterize_rows(crossings: torch.Tensor, centre_x: torch.Tensor) -> torch.Tensor:
    """Pixel rows ``(..., 64)`` uint8 0/255 from crossings ``(..., K)`` and sprite centres x ``(...)``.

    Column ``c`` is on when its centre ``c + 0.5`` lies inside a span, i.e.
    ``crossing[2i] <= c + 0.5 - centre_x < crossing[2i + 1]``.
    """
    edges = torch.ceil(crossings + (centre_x[..., None] - 0.5))  # broadcasts centres over crossings
    edges = edges.clamp_(0, CANVAS).to(torch.int64)  # +inf padding -> 64 -> empty span
    spans = edges[..., 0::2] * (CANVAS + 1) + edges[..., 1::2]  # (..., K/2) table rows
    if spans.shape[-1] == 0:
        return torch.zeros((*spans.shape[:-1], CANVAS), dtype=torch.uint8)
    rows = _SPAN_ROWS[spans[..., 0]]
    for i in range(1, spans.shape[-1]):  # a second span only for the heart's two lobes
        rows = torch.maximum(rows, _SPAN_ROWS[spans[..., i]])
    return rows


def sprite_centres(positions: np.ndarray) -> np.ndarray:
    """Pixel coordinate of the sprite centre for positions in [0, 1]: 16 + 32 * pos."""
    return 16.0 + 32.0 * positions


# -- official files ------------------------------------------------------------------
_NPZ_KEYS = ("imgs", "latents_classes")
_H5_KEYS = ("imgs", "latents/classes")


def _official_rows(path: Path, grid: FactorGrid, classes: np.ndarray) -> np.ndarray:
    """Flat index of each file row from its latents_classes ``(N, 6)`` (colour column first)."""
    if np.any(classes[:, 0] != 0):
        raise DatasetFileError(f"{path}: latents_classes column 0 (colour) should be 0 everywhere")
    return rows_to_flat_indices(path, grid, classes[:, 1:])


def _check_layout(
    path: Path, dataset: GroundTruthDataset, imgs_shape, imgs_dtype, cls_shape, cls_dtype
) -> None:
    n = dataset.grid.num_total
    check_array(path, "imgs", (n, CANVAS, CANVAS), "u", imgs_shape, imgs_dtype)
    check_array(path, "latents_classes", (n, 1 + dataset.num_factors), "i", cls_shape, cls_dtype)


def _check_npz(path: Path, dataset: GroundTruthDataset) -> None:
    check_keys(path, NpzMember.keys(path), _NPZ_KEYS)
    with NpzMember(path, "imgs") as imgs, NpzMember(path, "latents_classes") as cls:
        _check_layout(path, dataset, imgs.shape, imgs.dtype, cls.shape, cls.dtype)


def _convert_npz(path: Path, dataset: GroundTruthDataset, out: np.ndarray, progress: bool) -> None:
    _check_npz(path, dataset)
    with NpzMember(path, "latents_classes") as cls:
        flat = _official_rows(path, dataset.grid, cls.read())
    with NpzMember(path, "imgs") as imgs:
        _copy_binary_images(path, imgs.iter_rows(), flat, out, progress)


def _check_h5(path: Path, dataset: GroundTruthDataset) -> None:
    with open_h5(path) as f:
        imgs, cls = (h5_member(path, f, k) for k in _H5_KEYS)
        _check_layout(path, dataset, imgs.shape, imgs.dtype, cls.shape, cls.dtype)


def _convert_h5(path: Path, dataset: GroundTruthDataset, out: np.ndarray, progress: bool) -> None:
    _check_h5(path, dataset)
    with open_h5(path) as f:
        flat = _official_rows(path, dataset.grid, f["latents/classes"][:])
        _copy_binary_images(path, iter_h5_rows(path, f["imgs"]), flat, out, progress)


def _copy_binary_images(path: Path, chunks, flat: np.ndarray, out: np.ndarray, progress: bool) -> None:
    """Official 0/1 images ``(n, 64, 64)`` -> cache rows ``(n, 1, 64, 64)`` of 0/255."""
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task(f"converting {path.name}", total=len(flat))
        for start, images in chunks:
            if images.max(initial=0) > 1:
                raise DatasetFileError(
                    f"{path}: imgs should hold 0/1; found {int(images.max())} near row {start}"
                )
            write_rows(out, flat, start, (images * np.uint8(255))[:, None])
            bar.advance(task, len(images))


_URL = "https://github.com/deepmind/dsprites-dataset/raw/master/"
_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
_HDF5 = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"


@register_dataset("dsprites")
class DSprites(GroundTruthDataset):
    """dSprites: shape 3, scale 6, orientation 40, posX 32, posY 32; 1x64x64, 0 or 255.

    Squares (90 degrees) and ellipses (180 degrees) are rotationally symmetric,
    so their orientation is identifiable only modulo the symmetry, and
    orientation indices 0 and 39 are the same angle (as in the official data).
    """

    name = "dsprites"
    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = (3, 6, 40, 32, 32)
    observation_shape = (1, CANVAS, CANVAS)
    likelihood = "bernoulli"
    official_files = (
        OfficialFile(_NPZ, _URL + _NPZ, _check_npz, _convert_npz),
        OfficialFile(_HDF5, _URL + _HDF5, _check_h5, _convert_h5),
    )
    generator_version = "1"

    def factor_values(self) -> tuple[np.ndarray, ...]:
        shape, scale, orientation, pos_x, pos_y = self.factor_sizes
        return (
            np.arange(1, shape + 1, dtype=np.float64),  # 1 square, 2 ellipse, 3 heart
            np.linspace(0.5, 1.0, scale),
            np.linspace(0.0, 2 * np.pi, orientation),  # both ends are the same angle, as in the official file
            np.linspace(0.0, 1.0, pos_x),
            np.linspace(0.0, 1.0, pos_y),
        )

    def render(self, factors: np.ndarray) -> np.ndarray:
        """uint8 ``(n, 1, 64, 64)`` (0/255) images of ``factors`` ``(n, 5)``, rendered now."""
        factors = self.grid.validate_factors(factors)
        shapes, scales, angles, pos_x, pos_y = (v[factors[:, j]] for j, v in enumerate(self.factor_values()))
        out = torch.zeros((len(factors), CANVAS, CANVAS), dtype=torch.uint8)
        rows_centres = np.arange(CANVAS) + 0.5
        for shape in np.unique(shapes):  # at most one pass per shape, never per image
            which = np.flatnonzero(shapes == shape)
            outline = SPRITE_OUTLINES[int(shape)]()
            polys = screen_outlines(outline, scales[which], angles[which])  # (m, V, 2)
            dy = torch.from_numpy(rows_centres[None, :] - sprite_centres(pos_y[which])[:, None])  # (m, 64)
            crossings = row_crossings(polys, dy)  # (m, 64, K)
            centre_x = torch.from_numpy(sprite_centres(pos_x[which]))[:, None]  # (m, 1)
            out[torch.from_numpy(which)] = rasterize_rows(crossings, centre_x)
        return out[:, None].numpy()

    def generate(self, out: np.ndarray, progress: bool = True) -> None:
        """All images in grid order; work shared across positions (see the module docstring).

        One step renders every (orientation, posX, posY) image of one (shape,
        scale): 40 * 32 * 32 images, a contiguous block of the flat order.
        """
        shape_values, scales, angles, pos_x, pos_y = self.factor_values()
        dy = np.arange(CANVAS)[None, :] + 0.5 - sprite_centres(pos_y)[:, None]  # (Y, 64)
        dy = torch.from_numpy(dy.reshape(-1)).expand(len(angles), -1)  # (A, Y * 64)
        centre_x = torch.from_numpy(sprite_centres(pos_x))  # (X,)
        block = len(angles) * len(pos_x) * len(pos_y)
        with progress_bar(disable=not progress) as bar:
            task = bar.add_task(f"generating {self.name}", total=len(out))
            for s, shape in enumerate(shape_values):
                polys = screen_outlines(
                    SPRITE_OUTLINES[int(shape)](), scales[:, None], angles
                )  # (S, A, V, 2)
                for c in range(len(scales)):
                    crossings = row_crossings(polys[c], dy)  # (A, Y * 64, K)
                    crossings = crossings.reshape(len(angles), 1, len(pos_y), CANVAS, -1)
                    rows = rasterize_rows(crossings, centre_x[None, :, None, None])  # (A, X, Y, 64, 64)
                    start = (s * len(scales) + c) * block
                    out[start : start + block] = rows.reshape(block, 1, CANVAS, CANVAS).numpy()
                    bar.advance(task, block)
