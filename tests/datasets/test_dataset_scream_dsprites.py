"""scream_dsprites: dlib's formula on a fake painting, its draws, and a checksum that fails closed."""

import numpy as np
import pytest
import torch
from dataset_fakes import write_scream_painting
from PIL import Image
from typer.testing import CliRunner

from benchmarks.datasets import KNOWN_CHECKSUMS, DatasetFileError, OfficialFileMissingError, get_dataset_class
from benchmarks.datasets.cli import data_app
from benchmarks.datasets.scream import PAINTING, PAINTING_URL, ScreamDSprites

SIZE = (90, 80)  # (width, height) of the fake painting; within dlib's (350, 274) thumbnail, so unchanged


@pytest.fixture
def painting(data_root, trust):
    """A smooth fake painting, lossless (PNG bytes under the official name), trusted by checksum."""
    pixels = write_scream_painting(data_root, SIZE)
    trust(data_root / PAINTING)
    return pixels  # (H, W, 3) float in [0, 1], what dlib holds as self.scream


@pytest.fixture
def scream(tiny_dsprites, painting):
    return ScreamDSprites(source="procedural", progress=False).prepare()


def _dlib_scream(images, scream, rs):
    """dlib's ScreamDSprites on (n, 64, 64, 1) float images, channels last, drawn from ``rs``."""
    observations = np.repeat(images, 3, axis=3)
    for i in range(observations.shape[0]):
        x_crop = rs.randint(0, scream.shape[0] - 64)
        y_crop = rs.randint(0, scream.shape[1] - 64)
        background = (scream[x_crop : x_crop + 64, y_crop : y_crop + 64] + rs.uniform(0, 1, size=3)) / 2.0
        mask = observations[i] == 1
        background[mask] = 1 - background[mask]
        observations[i] = background
    return observations


def test_factor_structure_is_dlibs():
    cls = get_dataset_class("scream_dsprites")
    assert cls.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert cls.factor_sizes == (3, 6, 40, 32, 32) and cls.observation_shape == (3, 64, 64)
    assert cls.stochastic_observations


def test_evaluation_is_dlibs_formula_draw_for_draw(scream, painting):
    factors = scream.sample_factors(30, np.random.RandomState(0))
    ours = scream.sample_observations_from_factors(factors, np.random.RandomState(11))
    images = scream.images(factors).transpose(0, 2, 3, 1).astype(np.float64) / 255
    expected = _dlib_scream(images, painting, np.random.RandomState(11)).transpose(0, 3, 1, 2)
    assert ours.shape == (30, 3, 64, 64) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_training_path_is_the_same_formula_on_the_runs_generator(scream, painting):
    factors = scream.sample_factors(20, np.random.RandomState(1))
    batch = scream.training_images("cpu").batch(torch.from_numpy(scream.grid.factors_to_indices(factors)))
    out = scream.observation_noise(batch, torch.Generator().manual_seed(3)).numpy()
    again = scream.observation_noise(batch, torch.Generator().manual_seed(3)).numpy()
    assert out.shape == (20, 3, 64, 64) and np.array_equal(out, again)
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order, by hand
    rows = torch.randint(0, SIZE[1] - 64, (20,), generator=g).numpy()
    cols = torch.randint(0, SIZE[0] - 64, (20,), generator=g).numpy()
    shifts = torch.rand((20, 3), generator=g).numpy()
    sprite = batch.numpy()[:, 0] == 1  # (20, 64, 64)
    for i in range(20):
        background = (painting[rows[i] : rows[i] + 64, cols[i] : cols[i] + 64] + shifts[i]) / 2  # (64, 64, 3)
        background[sprite[i]] = 1 - background[sprite[i]]
        np.testing.assert_allclose(out[i], background.transpose(2, 0, 1), atol=1e-6)


def test_a_large_painting_is_shrunk_as_dlib_does(tiny_dsprites, data_root, trust):
    data_root.mkdir(parents=True, exist_ok=True)
    path = data_root / PAINTING
    Image.fromarray(np.zeros((548, 700, 3), np.uint8)).save(path, format="PNG")  # twice (350, 274)
    trust(path)
    ds = ScreamDSprites(source="procedural", progress=False).prepare()
    assert tuple(ds.painting().shape) == (3, 274, 350)


def test_without_a_known_checksum_the_painting_is_refused(tiny_dsprites, data_root):
    data_root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((80, 90, 3), np.uint8)).save(data_root / PAINTING, format="PNG")
    assert PAINTING not in KNOWN_CHECKSUMS  # none is documented: verification fails closed
    with pytest.raises(DatasetFileError, match="no checksum for the painting is documented"):
        ScreamDSprites(source="procedural", progress=False).prepare()


def test_a_missing_painting_says_where_to_get_it(tiny_dsprites, data_root):
    with pytest.raises(OfficialFileMissingError) as excinfo:
        ScreamDSprites(source="procedural", progress=False).prepare()
    assert PAINTING_URL in str(excinfo.value) and str(data_root / PAINTING) in str(excinfo.value)


def test_info_names_the_painting_its_url_and_the_missing_checksum(tiny_dsprites):
    result = CliRunner().invoke(data_app, ["info", "scream_dsprites"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"needed file {PAINTING}: absent" in text and PAINTING_URL in text
    assert "NO KNOWN CHECKSUM" in text


def test_fetch_refuses_the_painting_without_a_checksum(tiny_dsprites, data_root):
    result = CliRunner().invoke(data_app, ["fetch", "scream_dsprites", "--timeout", "1"])
    assert result.exit_code == 1 and "no known checksum" in " ".join(result.output.split())
    assert not (data_root / PAINTING).exists()
