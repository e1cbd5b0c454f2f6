"""smallNORB: the six official gzipped matrices on a tiny grid, dlib's factors, resize and instance draws."""

import numpy as np
import pytest
from dataset_fakes import write_norb_matrix
from PIL import Image
from typer.testing import CliRunner

from benchmarks.datasets import DatasetFileError, OfficialFileMissingError, get_dataset_class
from benchmarks.datasets.cli import data_app
from benchmarks.datasets.smallnorb import _CHUNKS, SmallNORB, norb_file

TINY = (2, 2, 3, 2)  # category, elevation, azimuth, lighting; with 2 instances, 48 images


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(SmallNORB, "factor_sizes", TINY)
    monkeypatch.setattr(SmallNORB, "n_instances", 2)
    return SmallNORB


@pytest.fixture
def norb_files(tiny, data_root, trust):
    """Training half: instance 1, testing half: instance 0, each in shuffled row order; all trusted."""
    rng = np.random.default_rng(0)
    data_root.mkdir(parents=True, exist_ok=True)
    points = tiny(root="/nonexistent").grid.all_factors()  # (48, 5): category, instance, elev, azim, light
    halves = {}
    for chunk, instance in zip(_CHUNKS, (1, 0)):
        rows = points[points[:, 1] == instance]
        rows = rows[rng.permutation(len(rows))]
        dat = rng.integers(0, 256, size=(len(rows), 2, 96, 96), dtype=np.uint8)
        info = np.column_stack([rows[:, 1], rows[:, 2], 2 * rows[:, 3], rows[:, 4]]).astype("<i4")
        for part, array in (("dat", dat), ("cat", rows[:, 0].astype("<i4")), ("info", info)):
            write_norb_matrix(data_root / norb_file(chunk, part), array)
            trust(data_root / norb_file(chunk, part))
        halves[chunk] = (rows, dat)
    return halves


def _dlib_resize(image: np.ndarray) -> np.ndarray:
    """dlib's _resize_images on one image: the bytes read as int8, Pillow's ANTIALIAS to 64x64, / 255."""
    resized = Image.fromarray(image.view(np.int8)).resize((64, 64), Image.Resampling.LANCZOS)
    return np.asarray(resized) / 255.0


def test_factor_structure_is_dlibs():
    cls = get_dataset_class("smallnorb")
    assert cls.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert (
        cls.factor_sizes == (5, 9, 18, 6) and cls.n_instances == 10
    )  # dlib: [5, 10, 9, 18, 6], [0, 2, 3, 4]
    ds = cls(root="/nonexistent")
    assert ds.grid.names == ("category", "instance", "elevation", "azimuth", "lighting")
    assert ds.grid.sizes == (5, 10, 9, 18, 6) and len(ds) == 48600
    assert cls.observation_shape == (1, 64, 64) and cls.stochastic_observations
    assert cls.generator_version is None


def test_official_files_load_on_the_full_state_space(norb_files):
    ds = SmallNORB(source="official", progress=False).prepare()
    assert ds.source == "official" and len(ds) == 48
    for rows, dat in norb_files.values():
        ours = ds.images(rows)[:, 0].astype(np.float64) / 255  # rows are stored-grid points
        expected = np.stack([_dlib_resize(pair[0]) for pair in dat])  # camera 0 only
        # dlib keeps Lanczos' overshoot beyond [0, 1]; the uint8 cache clips it
        np.testing.assert_allclose(ours, np.clip(expected, 0, 1), atol=1e-12)
        assert (np.abs(expected - np.clip(expected, 0, 1)) > 0).any()  # the overshoot is really there


def test_observations_draw_the_instance_as_dlib_does(norb_files):
    ds = SmallNORB(source="official", progress=False).prepare()
    factors = ds.sample_factors(50, np.random.RandomState(0))
    assert factors.shape == (50, 4)
    ours = ds.sample_observations_from_factors(factors, np.random.RandomState(3))
    instances = np.random.RandomState(3).randint(2, size=50)  # dlib: sample_all_factors
    full = np.column_stack([factors[:, 0], instances, factors[:, 1:]])
    assert ours.shape == (50, 1, 64, 64) and ours.dtype == np.float32
    assert np.array_equal(ours, ds.images(full).astype(np.float32) / 255)
    again = ds.sample_observations_from_factors(factors, np.random.RandomState(3))
    assert np.array_equal(ours, again)
    assert ds.training_images("cpu").num_images == 48  # training covers every instance


def test_a_missing_companion_is_named(norb_files, data_root):
    (data_root / norb_file(_CHUNKS[1], "info")).unlink()
    with pytest.raises(OfficialFileMissingError, match=norb_file(_CHUNKS[1], "info")):
        SmallNORB(source="official", progress=False).prepare()


def test_a_corrupt_companion_is_refused(norb_files, data_root):
    path = data_root / norb_file(_CHUNKS[0], "cat")
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(DatasetFileError, match="checksum mismatch"):
        SmallNORB(source="official", progress=False).prepare()


def test_rows_that_do_not_cover_the_grid_are_refused(tiny, data_root, trust, norb_files):
    path = data_root / norb_file(_CHUNKS[0], "info")
    rows, _ = norb_files[_CHUNKS[0]]
    info = np.column_stack([rows[:, 1], rows[:, 2], 2 * rows[:, 3], rows[:, 4]]).astype("<i4")
    info[1] = info[0]
    write_norb_matrix(path, info)
    trust(path)
    with pytest.raises(DatasetFileError, match="1 missing and 1 repeated"):
        SmallNORB(source="official", progress=False).prepare()


def test_there_is_no_procedural_smallnorb(tiny, data_root):
    for source in ("procedural", "auto"):
        with pytest.raises(OfficialFileMissingError) as excinfo:
            SmallNORB(source=source, progress=False).prepare()
        message = str(excinfo.value)
        assert "no procedural" in message and "cs.nyu.edu/~ylclab/data/norb-v1.0-small/" in message
        assert str(data_root / norb_file(_CHUNKS[1], "dat")) in message


def test_info_lists_the_six_files_and_says_there_is_no_procedural_source(tiny):
    result = CliRunner().invoke(data_app, ["info", "smallnorb"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "category (2)" in text and "procedural generator: none" in text
    for chunk in _CHUNKS:
        for part in ("dat", "cat", "info"):
            assert f"{norb_file(chunk, part)}: absent (expects sha256" in text
    result = CliRunner().invoke(data_app, ["prepare", "smallnorb", "--source", "procedural"])
    assert result.exit_code == 1 and "has no procedural generator" in " ".join(result.output.split())
