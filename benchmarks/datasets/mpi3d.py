"""MPI3D (Gondal et al. 2019, "On the Transfer of Inductive Bias from Simulation to the Real World").

Three datasets of one robot-arm set-up, as disentanglement_lib names them
(``data/ground_truth/mpi3d.py``): ``mpi3d_toy`` (simple renders),
``mpi3d_realistic`` (realistic renders) and ``mpi3d_real`` (photographs).
Factors, in dlib's order with the last fastest: object_color, object_shape
(4 each for toy and realistic, 6 for real), object_size (2), camera_height
(3), background_color (3), first_dof and second_dof (40 each: the arm's two
degrees of freedom).

Official files: the authors' ``.npz`` (https://github.com/rr-learning/disentanglement_dataset),
key ``images``, uint8 ``(N, 64, 64, 3)`` already in grid order (dlib indexes it
with the row-major factor bases; no labels are stored), streamed into the
cache without loading it whole. 5.7 GB of pixels for toy and realistic, 12.7
GB for real.

dlib's download script fetches the toy set under an older name
(``data_npz/sim_toy_64x_ordered_without_heldout_factors.npz``); the URLs here
are the dataset authors' final ones, whose checksums are recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import GroundTruthDataset
from .official import NpzMember, check_array, check_keys, write_rows
from .official_only import OfficialOnlyDataset
from .progress import progress_bar
from .registry import register_dataset
from .sources import OfficialFile

__all__ = ["MPI3DToy", "MPI3DRealistic", "MPI3DReal"]

_URL = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/"


def _check(path: Path, dataset: GroundTruthDataset) -> None:
    check_keys(path, NpzMember.keys(path), ["images"])
    with NpzMember(path, "images") as images:
        check_array(path, "images", (dataset.grid.num_total, 64, 64, 3), "u", images.shape, images.dtype)


def _convert(path: Path, dataset: GroundTruthDataset, out: np.ndarray, progress: bool) -> None:
    _check(path, dataset)
    flat = np.arange(dataset.grid.num_total, dtype=np.int64)  # the file is in grid order
    with progress_bar(disable=not progress) as bar, NpzMember(path, "images") as images:
        task = bar.add_task(f"converting {path.name}", total=len(flat))
        for start, rows in images.iter_rows():  # (n, 64, 64, 3) -> (n, 3, 64, 64)
            write_rows(out, flat, start, rows.transpose(0, 3, 1, 2))
            bar.advance(task, len(rows))


class MPI3D(OfficialOnlyDataset):
    """MPI3D's factor structure; the three registered datasets differ in file and object counts."""

    factor_names = (
        "object_color",
        "object_shape",
        "object_size",
        "camera_height",
        "background_color",
        "first_dof",
        "second_dof",
    )
    observation_shape = (3, 64, 64)


def _official(filename: str) -> tuple[OfficialFile, ...]:
    return (OfficialFile(filename, _URL + filename, _check, _convert),)


@register_dataset("mpi3d_toy")
class MPI3DToy(MPI3D):
    """MPI3D-toy: simple renders; color 4, shape 4, size 2, height 3, background 3, dof 40 x 40."""

    name = "mpi3d_toy"
    factor_sizes = (4, 4, 2, 3, 3, 40, 40)
    official_files = _official("mpi3d_toy.npz")


@register_dataset("mpi3d_realistic")
class MPI3DRealistic(MPI3D):
    """MPI3D-realistic: realistic renders; color 4, shape 4, size 2, height 3, background 3, dof 40 x 40."""

    name = "mpi3d_realistic"
    factor_sizes = (4, 4, 2, 3, 3, 40, 40)
    official_files = _official("mpi3d_realistic.npz")


@register_dataset("mpi3d_real")
class MPI3DReal(MPI3D):
    """MPI3D-real: photographs; color 6, shape 6, size 2, height 3, background 3, dof 40 x 40."""

    name = "mpi3d_real"
    factor_sizes = (6, 6, 2, 3, 3, 40, 40)
    official_files = _official("mpi3d_real.npz")
