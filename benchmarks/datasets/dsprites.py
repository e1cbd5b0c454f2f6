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

from .dataset import GroundTruthDataset, open_output
from .errors import DatasetFileError
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
from .parallel import torch_threads
from .progress import progress_bar
from .registry import register_dataset
from .sources import OfficialFile

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


def rasterize_rows(
    crossings: torch.Tensor, centre_x: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Pixel rows ``(..., 64)`` uint8 0/255 from crossings ``(..., K)`` and sprite centres x ``(...)``.

    Column ``c`` is on when its centre ``c + 0.5`` lies inside a span, i.e.
    ``crossing[2i] <= c + 0.5 - centre_x < crossing[2i + 1]``. ``out``, if
    given, receives the rows (e.g. a view of the memory-mapped cache).
    """
    edges = torch.ceil(crossings + (centre_x[..., None] - 0.5))  # broadcasts centres over crossings
    edges = edges.clamp_(0, CANVAS).to(torch.int64)  # +inf padding -> 64 -> empty span
    spans = edges[..., 0::2] * (CANVAS + 1) + edges[..., 1::2]  # (..., K/2) rows of the span table
    shape = (*spans.shape[:-1], CANVAS)
    out = torch.empty(shape, dtype=torch.uint8) if out is None else out.view(shape)
    if spans.shape[-1] == 0:
        return out.zero_()
    torch.index_select(_SPAN_ROWS, 0, spans[..., 0].reshape(-1), out=out.view(-1, CANVAS))
    for i in range(1, spans.shape[-1]):  # a second span only for the heart's two lobes
        torch.maximum(out, _SPAN_ROWS[spans[..., i]], out=out)
    return out


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
        """The official files' values: shape 1-3, scale 0.5-1, orientation 0-2 pi, positions 0-1."""
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
        with torch_threads(1):  # small work: threads would only wait on each other (see ``parallel``)
            for shape in np.unique(shapes):  # at most one pass per shape, never per image
                which = np.flatnonzero(shapes == shape)
                outline = SPRITE_OUTLINES[int(shape)]()
                polys = screen_outlines(outline, scales[which], angles[which])  # (m, V, 2)
                dy = torch.from_numpy(
                    rows_centres[None, :] - sprite_centres(pos_y[which])[:, None]
                )  # (m, 64)
                crossings = row_crossings(polys, dy)  # (m, 64, K)
                centre_x = torch.from_numpy(sprite_centres(pos_x[which]))[:, None]  # (m, 1)
                out[torch.from_numpy(which)] = rasterize_rows(crossings, centre_x)
        return out[:, None].numpy()

    def generate(self, out: np.ndarray, progress: bool = True) -> None:
        """All images in grid order, one task per (shape, scale), on every core.

        A task renders every (orientation, posX, posY) image of its (shape,
        scale), a contiguous block of 40 * 32 * 32 images of the flat order,
        sharing the crossings across posX (see the module docstring).
        """
        n_shapes, n_scales, *rest = self.factor_sizes
        parts = [(s, c) for s in range(n_shapes) for c in range(n_scales)]
        self.run_generation(_generate_block, out, parts, [int(np.prod(rest))] * len(parts), progress)

    def render_block(
        self, shape_index: int, scale_index: int, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """uint8 ``(orientations * posX * posY, 1, 64, 64)``: all images of one (shape, scale), in order.

        Only the rows a sprite can reach are intersected: for each posY a
        window of rows around the centre, as tall as the outline's largest
        radius allows, then spread back to all 64 rows (empty elsewhere).
        """
        shape_values, scales, angles, pos_x, pos_y = self.factor_values()
        outline = SPRITE_OUTLINES[int(shape_values[shape_index])]()
        polys = screen_outlines(outline, scales[scale_index], angles)  # (A, V, 2)
        reach = float(np.sqrt((outline**2).sum(1)).max() * scales[scale_index])  # any rotation stays inside
        centre_y = sprite_centres(pos_y)  # (Y,)
        first_row = np.ceil(centre_y - reach - 0.5).astype(np.int64)  # (Y,) first row that can be crossed
        window = int(np.ceil(2 * reach)) + 2
        rows_in_window = first_row[:, None] + np.arange(window)[None, :]  # (Y, W)
        dy = torch.from_numpy((rows_in_window + 0.5 - centre_y[:, None]).reshape(-1)).expand(len(angles), -1)
        crossings = row_crossings(polys, dy).reshape(len(angles), len(pos_y), window, -1)  # (A, Y, W, K)
        # spread the window back over the 64 rows: row r of posY p is window slot r - first_row[p]
        slot = torch.from_numpy(np.arange(CANVAS)[None, :] - first_row[:, None])  # (Y, 64)
        inside = (slot >= 0) & (slot < window)
        index = slot.clamp(0, window - 1)[None, :, :, None].expand(len(angles), -1, -1, crossings.shape[-1])
        crossings = torch.where(inside[None, :, :, None], torch.gather(crossings, 2, index), torch.inf)
        centre_x = torch.from_numpy(sprite_centres(pos_x))[None, :, None, None]  # (1, X, 1, 1)
        rows = rasterize_rows(crossings[:, None], centre_x, out)  # (A, X, Y, 64 rows, 64 columns)
        return rows.view(-1, 1, CANVAS, CANVAS)


def _generate_block(task) -> int:
    spec, target, shape_index, scale_index = task
    dataset = GroundTruthDataset.from_worker_spec(spec)
    block = int(np.prod(dataset.factor_sizes[2:]))
    start = (shape_index * dataset.factor_sizes[1] + scale_index) * block
    # the rows go straight into the cache file's pages, no intermediate copy
    dataset.render_block(
        shape_index, scale_index, out=torch.from_numpy(open_output(target)[start : start + block])
    )
    return block
