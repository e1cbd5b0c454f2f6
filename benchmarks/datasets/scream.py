"""Scream-dSprites: the sprite cut into a random patch of Munch's *The Scream*.

As disentanglement_lib defines it (``data/ground_truth/dsprites.py``,
``ScreamDSprites``; Locatello et al. 2019, section 5): the painting is read
once and shrunk with ``thumbnail((350, 274))`` (at most 350 wide and 274 tall,
aspect kept), scaled to [0, 1]. For every observation

* a 64x64 patch is cut at row ``randint(0, H - 64)`` and column ``randint(0, W - 64)``
  (``H, W`` the thumbnail's; like dlib, the last offset is never drawn),
* its colours shifted: ``background = (patch + u) / 2`` with ``u`` one RGB triple uniform in [0, 1],
* and inverted under the sprite: ``1 - background`` where the sprite is on.

dlib draws, per observation in turn, the row, the column and ``u``; with a
``RandomState`` the evaluation path here draws the same numbers in the same
order. Factors, stored sprites and caches are dSprites' (see
``dsprites_variants``); only the painting is an extra file.

**The painting's checksum is unknown.** dlib downloads
``https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg`` without
checking it, no other source documents one, and Wikimedia may replace the file
with a new version. So ``checksums.KNOWN_CHECKSUMS`` has no entry for it and
verification fails closed: ``scream_dsprites`` refuses to run until someone who
has vetted a copy records its digest there. The exact pixels also depend on
Pillow's JPEG decoder and thumbnail filter (as they do for dlib).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .checksums import KNOWN_CHECKSUMS, verify_checksum
from .dataset import GroundTruthDataset
from .dsprites_variants import DSpritesVariant, numpy_uniform, torch_uniform
from .errors import DatasetFileError, OfficialFileMissingError
from .grid import uniform_integers
from .registry import register_dataset
from .sources import OfficialFile

__all__ = ["ScreamDSprites", "crop_patches", "load_painting", "scream_sprites"]

PAINTING = "The_Scream.jpg"
PAINTING_URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"  # dlib_download_data
THUMBNAIL = (350, 274)  # dlib: scream.thumbnail((350, 274, 3)); (width, height) bounds
PATCH = 64

NO_CHECKSUM = (
    f"{PAINTING}: no checksum for the painting is documented anywhere (disentanglement_lib downloads "
    f"{PAINTING_URL} unchecked, and Wikimedia may replace the file), so vaebench cannot verify it and "
    "refuses it. If you have vetted your copy, record its digest as "
    f"benchmarks.datasets.KNOWN_CHECKSUMS[{PAINTING!r}] = Checksum('sha256', '<hex>')."
)


def scream_sprites(sprites: torch.Tensor, patches: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Sprites ``(n, 1, H, W)`` (0 or 1) over painting patches ``(n, 3, H, W)`` shifted by ``(n, 3)``.

    dlib's ``ScreamDSprites``: ``background = (patch + shift) / 2``, then
    ``1 - background`` at the sprite's pixels (``observations == 1``). Returns ``(n, 3, H, W)``.
    """
    background = (patches + shifts.to(patches)[:, :, None, None]) / 2
    return torch.where(sprites == 1, 1 - background, background)


def crop_patches(painting: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int = PATCH):
    """``(n, 3, size, size)`` patches of ``painting`` ``(3, H, W)`` with top-left corners ``(rows, cols)``."""
    offsets = torch.arange(size, device=painting.device)
    r = rows.to(painting.device)[:, None] + offsets  # (n, size)
    c = cols.to(painting.device)[:, None] + offsets
    return painting[:, r[:, :, None], c[:, None, :]].permute(1, 0, 2, 3)  # (3, n, s, s) -> (n, 3, s, s)


def load_painting(path: Path) -> torch.Tensor:
    """The painting as dlib reads it: ``thumbnail((350, 274))``, RGB, / 255; float32 ``(3, H, W)``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.thumbnail(THUMBNAIL)
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetFileError(f"{path}: not a readable image: {exc}") from exc
    if min(pixels.shape[:2]) <= PATCH:
        raise DatasetFileError(
            f"{path}: the painting shrinks to {pixels.shape[1]}x{pixels.shape[0]}; "
            f"it must stay larger than {PATCH}x{PATCH} to cut patches from"
        )
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def _check_painting(path: Path, dataset: GroundTruthDataset) -> None:
    load_painting(path)


def _no_conversion(path: Path, dataset: GroundTruthDataset, out: np.ndarray, progress: bool) -> None:
    raise DatasetFileError(f"{path}: the painting is read when observations are drawn, never converted")


@register_dataset("scream_dsprites")
class ScreamDSprites(DSpritesVariant):
    """Scream-dSprites: dSprites' five factors; each observation a patch of The Scream; 3x64x64.

    Needs ``The_Scream.jpg`` in the data directory beside dSprites' own source
    (official or procedural sprites), verified by checksum (none is known: see
    the module docstring).
    """

    name = "scream_dsprites"
    assets = (OfficialFile(PAINTING, PAINTING_URL, _check_painting, _no_conversion),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._painting: dict[torch.device, torch.Tensor] = {}

    def painting(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """The verified painting, float32 ``(3, H, W)`` in [0, 1] on ``device`` (read once)."""
        device = torch.device(device)
        if device not in self._painting:
            if not self._painting:
                self._painting[torch.device("cpu")] = self._read_painting()
            self._painting[device] = self._painting[torch.device("cpu")].to(device)
        return self._painting[device]

    def _read_painting(self) -> torch.Tensor:
        path = self.root / PAINTING
        if not path.is_file():
            raise OfficialFileMissingError(
                f"{self.name} needs the painting {path}: put it there by hand "
                f"(from {PAINTING_URL}) or run `vaebench data fetch {self.name}`."
            )
        checksum = KNOWN_CHECKSUMS.get(PAINTING)
        if checksum is None:
            raise DatasetFileError(NO_CHECKSUM)
        verify_checksum(path, checksum, self.cache_dir, progress=self.progress)
        return load_painting(path)

    def prepare(self, *, rebuild: bool = False) -> ScreamDSprites:
        """Prepare the sprites' cache and check that the painting is there (fails saying where to get it)."""
        super().prepare(rebuild=rebuild)
        self.painting()  # fail here, saying where to get it, rather than at the first batch
        return self

    def observe(self, sprites: torch.Tensor, draws) -> torch.Tensor:
        """Sprites ``(n, 1, 64, 64)`` on painting patches at the drawn offsets, colour-shifted."""
        rows, cols, shifts = draws
        patches = crop_patches(self.painting(sprites.device), rows, cols)  # (n, 3, 64, 64)
        return scream_sprites(sprites, patches, shifts)

    def _offset_ranges(self) -> tuple[int, int]:
        _, height, width = self.painting().shape
        return height - PATCH, width - PATCH  # randint's exclusive bounds, as dlib

    def draw_torch(self, n: int, generator: torch.Generator, like: torch.Tensor):
        """The patches' row and column offsets ``(n,)`` and colour shifts ``(n, 3)``, from torch."""
        rows_high, cols_high = self._offset_ranges()
        rows = torch.randint(0, rows_high, (n,), generator=generator, device=generator.device)
        cols = torch.randint(0, cols_high, (n,), generator=generator, device=generator.device)
        return rows, cols, torch_uniform(generator, 0.0, 1.0, (n, 3), like)

    def draw_numpy(self, n: int, rng):
        """The same draws from a numpy generator, in dlib's order: row, column, shift per observation."""
        rows_high, cols_high = self._offset_ranges()
        rows, cols, shifts = np.empty(n, np.int64), np.empty(n, np.int64), np.empty((n, 3))
        for i in range(n):  # dlib's order: row, column, then the colour shift, observation by observation
            rows[i] = uniform_integers(rng, rows_high, 1)[0]
            cols[i] = uniform_integers(rng, cols_high, 1)[0]
            shifts[i] = numpy_uniform(rng, 0.0, 1.0, 3)
        return torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(shifts).float()
