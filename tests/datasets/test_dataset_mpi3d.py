"""MPI3D toy, realistic and real: the official npz on a tiny grid, and dlib's factor structure."""

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.datasets import DatasetFileError, OfficialFileMissingError, get_dataset_class
from benchmarks.datasets.cli import data_app
from benchmarks.datasets.mpi3d import MPI3DReal, MPI3DToy

NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "first_dof",
    "second_dof",
)
TINY = (2, 2, 1, 1, 1, 2, 3)  # 24 images


@pytest.mark.parametrize(
    "name, sizes",
    [
        ("mpi3d_toy", (4, 4, 2, 3, 3, 40, 40)),
        ("mpi3d_realistic", (4, 4, 2, 3, 3, 40, 40)),
        ("mpi3d_real", (6, 6, 2, 3, 3, 40, 40)),
    ],
)
def test_factor_structure_is_dlibs(name, sizes):
    cls = get_dataset_class(name)
    assert (cls.factor_names, cls.factor_sizes) == (NAMES, sizes)
    assert cls.observation_shape == (3, 64, 64) and cls.generator_version is None
    assert cls.official_files[0].filename == f"{name}.npz"


@pytest.fixture
def write_npz(monkeypatch, data_root, trust):
    monkeypatch.setattr(MPI3DToy, "factor_sizes", TINY)

    def write(images: np.ndarray | None = None, key: str = "images"):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (24, 64, 64, 3), dtype=np.uint8) if images is None else images
        data_root.mkdir(parents=True, exist_ok=True)
        path = data_root / "mpi3d_toy.npz"
        with path.open("wb") as f:
            np.savez_compressed(f, **{key: images})
        trust(path)
        return images

    return write


def test_wrong_keys_and_shapes_are_refused(write_npz):
    write_npz(key="imgs")
    with pytest.raises(DatasetFileError, match="missing key.*'images'"):
        MPI3DToy(source="official", progress=False).prepare()
    write_npz(images=np.zeros((24, 64, 64, 1), np.uint8))
    with pytest.raises(DatasetFileError, match=r"should be .*\(24, 64, 64, 3\)"):
        MPI3DToy(source="official", progress=False).prepare()


def test_there_is_no_procedural_mpi3d(data_root):
    for source in ("procedural", "auto"):
        with pytest.raises(OfficialFileMissingError) as excinfo:
            MPI3DReal(source=source, progress=False).prepare()
        assert "no procedural" in str(excinfo.value) and str(data_root / "mpi3d_real.npz") in str(
            excinfo.value
        )


def test_info_says_where_to_get_it_and_that_there_is_no_procedural_source():
    result = CliRunner().invoke(data_app, ["info", "mpi3d_toy"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "460,800 images" in text and "first_dof (40)" in text
    url = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/mpi3d_toy.npz"
    assert f"mpi3d_toy.npz: absent (expects md5 55889cb7c7dfc655d6e0277beee88868; {url})" in text
    assert "procedural generator: none" in text
