"""Cars3D (Reed et al. 2015, "Deep Visual Analogy-Making"): 183 cars, 4 elevations x 24 azimuths, RGB.

As disentanglement_lib uses it (``data/ground_truth/cars3d.py``; Locatello et
al. 2019): factors elevation (4), azimuth (24), object_type (183), in that
order with object_type fastest (dlib's ``StateSpaceAtomIndex`` over the full
Cartesian product, i.e. the plain row-major grid). Each car's ``.mat`` file
holds ``im`` uint8 ``(128, 128, 3, 24, 4)`` = (H, W, RGB, azimuth, elevation);
every view is shrunk to 64x64 with Pillow's Lanczos ("ANTIALIAS") filter, as
dlib's ``thumbnail((64, 64), ANTIALIAS)`` does (a square image, so exactly
64x64), and scaled to [0, 1].

The official file is Reed et al.'s archive ``nips2015-analogy-data.tar.gz``
(the cars are ``data/cars/car_*_mesh.mat`` inside it), read as it is: nothing
is unpacked to disk.

Deviation from dlib: dlib numbers the cars in the order
``gfile.ListDirectory`` happens to list the files (filesystem dependent);
here they are numbered in sorted file-name order, so the cache is the same on
every machine. object_type is categorical, so this only relabels its values.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import numpy as np

from .dataset import GroundTruthDataset
from .errors import DatasetFileError
from .official_only import OfficialOnlyDataset
from .progress import progress_bar
from .registry import register_dataset
from .sources import OfficialFile

__all__ = ["Cars3D", "shrink_views"]

_ARCHIVE = "nips2015-analogy-data.tar.gz"
_URL = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"  # dlib_download_data's source
_CAR = re.compile(r"(?:.*/)?cars/([^/]+)\.mat")


def shrink_views(views: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 128, 128, 3)`` -> uint8 ``(n, 3, 64, 64)`` with Pillow's Lanczos, as dlib's thumbnail."""
    from PIL import Image

    out = np.empty((len(views), 3, 64, 64), np.uint8)
    for i, view in enumerate(views):
        image = Image.fromarray(np.ascontiguousarray(view))
        image.thumbnail((64, 64), Image.Resampling.LANCZOS)
        out[i] = np.asarray(image).transpose(2, 0, 1)
    return out


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetFileError(f"{path}: not a readable .tar.gz archive: {exc}") from exc


def _check(path: Path, dataset: GroundTruthDataset) -> None:
    """A readable archive (its cars are counted and checked while converting, in one pass)."""
    with _open(path) as archive:
        try:
            archive.next()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DatasetFileError(f"{path}: corrupt archive: {exc}") from exc


def _car_views(path: Path, name: str, data: bytes, dataset: GroundTruthDataset) -> np.ndarray:
    """One car's ``im`` -> its views ``(elevation, azimuth, 3, 64, 64)`` uint8."""
    from scipy.io import loadmat

    n_elevations, n_azimuths, _ = dataset.factor_sizes
    try:
        im = loadmat(io.BytesIO(data))["im"]
    except (ValueError, KeyError, OSError, NotImplementedError) as exc:
        raise DatasetFileError(f"{path}: {name}: no readable 'im' array: {exc}") from exc
    expected = (128, 128, 3, n_azimuths, n_elevations)
    if im.shape != expected or im.dtype != np.uint8:
        raise DatasetFileError(
            f"{path}: {name}: 'im' should be uint8 shaped {expected}; found {im.dtype} {im.shape}"
        )
    views = im.transpose(4, 3, 0, 1, 2).reshape(-1, 128, 128, 3)  # (elevation * azimuth, H, W, RGB)
    return shrink_views(views).reshape(n_elevations, n_azimuths, 3, 64, 64)


def _convert(path: Path, dataset: GroundTruthDataset, out: np.ndarray, progress: bool) -> None:
    n_objects = dataset.factor_sizes[2]
    cars: dict[str, np.ndarray] = {}  # file name -> views; 1.2 MB per car
    with progress_bar(disable=not progress) as bar, _open(path) as archive:
        task = bar.add_task(f"converting {path.name}", total=n_objects)
        try:
            for member in archive:
                match = _CAR.fullmatch(member.name)
                if match is None or not member.isfile():
                    continue
                data = archive.extractfile(member).read()
                cars[match.group(1)] = _car_views(path, member.name, data, dataset)
                bar.advance(task)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DatasetFileError(f"{path}: corrupt archive after {len(cars)} cars: {exc}") from exc
    if len(cars) != n_objects:
        raise DatasetFileError(f"{path}: expected {n_objects} cars (cars/*.mat); found {len(cars)}")
    grid = out.reshape(*dataset.factor_sizes, *out.shape[1:])  # (elevation, azimuth, object, 3, 64, 64)
    for index, name in enumerate(sorted(cars)):
        grid[:, :, index] = cars[name]


@register_dataset("cars3d")
class Cars3D(OfficialOnlyDataset):
    """Cars3D: elevation 4, azimuth 24, object_type 183; 3x64x64 RGB."""

    name = "cars3d"
    factor_names = ("elevation", "azimuth", "object_type")
    factor_sizes = (4, 24, 183)
    observation_shape = (3, 64, 64)
    official_files = (OfficialFile(_ARCHIVE, _URL, _check, _convert),)
