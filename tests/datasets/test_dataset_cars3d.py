"""Cars3D: Reed et al.'s archive on a tiny grid, dlib's factors, layout and Lanczos thumbnail."""

import io
import tarfile

import numpy as np
import pytest
import scipy.io
from PIL import Image
from typer.testing import CliRunner

from benchmarks.datasets import DatasetFileError, OfficialFileMissingError, get_dataset_class
from benchmarks.datasets.cars3d import Cars3D
from benchmarks.datasets.cli import data_app

ARCHIVE = "nips2015-analogy-data.tar.gz"
TINY = (2, 3, 2)  # elevation, azimuth, object_type: 12 images


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(Cars3D, "factor_sizes", TINY)
    return Cars3D


def _mat(im: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"im": im, "mask": im[:, :, 0] > 0})
    return buffer.getvalue()


@pytest.fixture
def archive(tiny, data_root, trust):
    """The archive's layout: data/cars/car_*_mesh.mat (listed out of name order), plus other members."""
    rng = np.random.default_rng(0)
    n_elevations, n_azimuths, _ = TINY
    cars = {
        name: rng.integers(0, 256, (128, 128, 3, n_azimuths, n_elevations), dtype=np.uint8)
        for name in (
            "car_002_mesh",
            "car_001_mesh",
        )
    }
    data_root.mkdir(parents=True, exist_ok=True)
    path = data_root / ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        members = [("data/cars/list.txt", b"car_002_mesh\ncar_001_mesh\n"), ("data/shapes48.mat", b"other")]
        members += [(f"data/cars/{name}.mat", _mat(im)) for name, im in cars.items()]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    trust(path)
    return path, cars


def _dlib_thumbnail(view: np.ndarray) -> np.ndarray:
    """dlib's _load_mesh on one view: PIL thumbnail to 64x64 with ANTIALIAS (Lanczos)."""
    image = Image.fromarray(view)
    image.thumbnail((64, 64), Image.Resampling.LANCZOS)
    return np.asarray(image)


def test_factor_structure_is_dlibs():
    cls = get_dataset_class("cars3d")
    assert cls.factor_names == ("elevation", "azimuth", "object_type")
    assert cls.factor_sizes == (4, 24, 183) and cls.observation_shape == (3, 64, 64)
    assert cls.generator_version is None and not cls.stochastic_observations


def test_archive_converts_to_dlibs_layout(archive):
    _, cars = archive
    ds = Cars3D(source="official", progress=False).prepare()
    assert ds.source == "official" and len(ds) == 12
    for object_index, name in enumerate(sorted(cars)):  # numbered in file-name order
        for elevation in range(TINY[0]):
            for azimuth in range(TINY[1]):
                (image,) = ds.images(np.array([[elevation, azimuth, object_index]]))
                expected = _dlib_thumbnail(cars[name][:, :, :, azimuth, elevation])  # im: (H, W, 3, az, el)
                assert np.array_equal(image.transpose(1, 2, 0), expected)
    assert np.array_equal(ds.sample_observations_from_factors(np.array([[0, 0, 0]])), ds.images([[0, 0, 0]]))


def test_an_archive_with_the_wrong_number_of_cars_is_refused(tiny, archive, monkeypatch):
    monkeypatch.setattr(Cars3D, "factor_sizes", (2, 3, 3))
    with pytest.raises(DatasetFileError, match="expected 3 cars"):
        Cars3D(source="official", progress=False).prepare()


def test_views_of_the_wrong_shape_are_refused(tiny, archive, monkeypatch):
    monkeypatch.setattr(Cars3D, "factor_sizes", (4, 24, 2))
    with pytest.raises(DatasetFileError, match=r"'im' should be uint8 shaped \(128, 128, 3, 24, 4\)"):
        Cars3D(source="official", progress=False).prepare()


def test_a_corrupt_archive_is_refused(tiny, data_root, trust):
    data_root.mkdir(parents=True)
    (data_root / ARCHIVE).write_bytes(b"not a tarball")
    trust(data_root / ARCHIVE)
    with pytest.raises(DatasetFileError, match="not a readable .tar.gz"):
        Cars3D(source="official", progress=False).prepare()


def test_there_is_no_procedural_cars3d(tiny, data_root):
    for source in ("procedural", "auto"):
        with pytest.raises(OfficialFileMissingError) as excinfo:
            Cars3D(source=source, progress=False).prepare()
        message = str(excinfo.value)
        assert "no procedural" in message and "http://www.scottreed.info/files/" + ARCHIVE in message


def test_info_says_where_to_get_it_and_that_there_is_no_procedural_source():
    result = CliRunner().invoke(data_app, ["info", "cars3d"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "object_type (183)" in text and "17,568 images" in text
    assert f"{ARCHIVE}: absent (expects md5 4e866a7919c1beedf53964e6f7a23686" in text
    assert "procedural generator: none" in text and "--source procedural is refused" in text
