"""color_dsprites and noisy_dsprites: dlib's formulas, their statistics, seeds, and dSprites' cache shared."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from benchmarks.datasets import get_dataset_class, load_dataset
from benchmarks.datasets.cli import data_app

# disentanglement_lib's named_data: ColorDSprites / NoisyDSprites([1, 2, 3, 4, 5]) of the official six
DLIB_FACTORS = (("shape", "scale", "orientation", "posX", "posY"), (3, 6, 40, 32, 32))
N = 256  # observations per statistic


@pytest.fixture
def sprites(tiny_dsprites):
    return {
        name: load_dataset(name, "procedural", progress=False)
        for name in ("color_dsprites", "noisy_dsprites")
    }


def _dlib_color(images, rs):
    """dlib's ColorDSprites on (n, 64, 64, 1) float images, channels last, drawn from ``rs``."""
    observations = np.repeat(images, 3, axis=3)
    color = np.repeat(np.repeat(rs.uniform(0.5, 1, [len(images), 1, 1, 3]), 64, axis=1), 64, axis=2)
    return observations * color


def _dlib_noisy(images, rs):
    observations = np.repeat(images, 3, axis=3)
    return np.minimum(observations + rs.uniform(0, 1, [len(images), 64, 64, 3]), 1.0)


@pytest.mark.parametrize("name", ["color_dsprites", "noisy_dsprites"])
def test_factor_structure_is_dlibs(name):
    cls = get_dataset_class(name)
    assert (cls.factor_names, cls.factor_sizes) == DLIB_FACTORS
    assert cls.observation_shape == (3, 64, 64) and cls.stochastic_observations


@pytest.mark.parametrize(
    "name, reference", [("color_dsprites", _dlib_color), ("noisy_dsprites", _dlib_noisy)]
)
def test_evaluation_draws_what_dlib_draws(sprites, name, reference):
    ds = sprites[name]
    factors = ds.sample_factors(40, np.random.RandomState(0))
    ours = ds.sample_observations_from_factors(factors, np.random.RandomState(7))
    images = ds.images(factors).transpose(0, 2, 3, 1).astype(np.float64) / 255  # (n, 64, 64, 1)
    expected = reference(images, np.random.RandomState(7)).transpose(0, 3, 1, 2)
    assert ours.shape == (40, 3, 64, 64) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-6)  # float32 against dlib's float64


def _both_paths(ds, seed):
    """(training observations, evaluation observations, sprite masks) of the same N grid points."""
    factors = ds.sample_factors(N, np.random.RandomState(seed))
    flat = torch.from_numpy(ds.grid.factors_to_indices(factors))
    batch = ds.training_images("cpu").batch(flat)  # (N, 1, 64, 64), the stored sprites
    train = ds.observation_noise(batch, torch.Generator().manual_seed(seed)).numpy()
    evaluation = ds.sample_observations_from_factors(factors, np.random.RandomState(seed))
    return train, evaluation, batch.numpy()[:, 0] == 1  # (N, 64, 64)


def test_color_sprite_pixels_are_one_uniform_colour_on_black(sprites):
    train, evaluation, mask = _both_paths(sprites["color_dsprites"], 3)
    for observations in (train, evaluation):
        assert observations.shape == (N, 3, 64, 64)
        assert np.all(observations.transpose(1, 0, 2, 3)[:, ~mask] == 0)  # background stays black
        colours = observations.max(axis=(2, 3))  # (N, 3): the one colour of each sprite
        on = observations.transpose(0, 2, 3, 1)[mask]  # every sprite pixel, (pixels, 3)
        per_pixel = np.repeat(colours, mask.reshape(N, -1).sum(1), axis=0)
        assert np.array_equal(on, per_pixel)  # every sprite pixel equals its observation's colour
        assert colours.min() >= 0.5 and colours.max() <= 1.0
        # uniform on [0.5, 1]: mean 3/4, variance 1/48; 3N draws, band of 5 standard errors
        assert abs(colours.mean() - 0.75) < 5 * np.sqrt(1 / 48 / colours.size)
        assert abs(colours.var() - 1 / 48) < 5 * np.sqrt((1 / 1280 - 1 / 48**2) / colours.size)


def test_noisy_background_is_uniform_and_the_sprite_white(sprites):
    train, evaluation, mask = _both_paths(sprites["noisy_dsprites"], 4)
    for observations in (train, evaluation):
        assert np.all(observations.transpose(1, 0, 2, 3)[:, mask] == 1.0)  # sprite + noise, clipped at 1
        background = observations.transpose(1, 0, 2, 3)[:, ~mask].astype(np.float64)  # (3, pixels)
        n = background.size
        assert 0.0 <= background.min() and background.max() < 1.0
        # uniform on [0, 1]: mean 1/2 and variance 1/12 within 5 standard errors
        # (the sample variance's: sqrt((mu4 - sigma^4) / n), mu4 = 1/80)
        assert abs(background.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
        assert abs(background.var() - 1 / 12) < 5 * np.sqrt((1 / 80 - 1 / 144) / n)
        # independent per pixel and channel: neighbours and channels uncorrelated
        assert abs(np.corrcoef(background[0], background[1])[0, 1]) < 5 / np.sqrt(n / 3)
    assert not np.allclose(train, evaluation)  # two generators, two draws


@pytest.mark.parametrize("name", ["color_dsprites", "noisy_dsprites"])
def test_another_seed_gives_other_observations(sprites, name):
    ds = sprites[name]
    first, second, other = (_both_paths(ds, seed)[:2] for seed in (5, 5, 6))
    for path in range(2):  # training (torch.Generator) and evaluation (numpy RandomState)
        assert np.array_equal(first[path], second[path])
        assert not np.array_equal(first[path], other[path])


def test_observations_are_random_per_draw_not_per_grid_point(sprites):
    ds = sprites["color_dsprites"]
    factors = np.repeat(ds.sample_factors(1, np.random.RandomState(0)), 2, axis=0)  # one point, twice
    a, b = ds.sample_observations_from_factors(factors, np.random.RandomState(0))
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="rng"):
        ds.sample_observations_from_factors(factors)


def test_variants_reuse_the_dsprites_cache(sprites, data_root):
    plain = load_dataset("dsprites", "procedural", progress=False)
    for ds in sprites.values():
        assert ds.provenance()["cache"] == plain.provenance()["cache"]
        assert ds.training_images("cpu").batch(torch.arange(3)).shape == (3, 1, 64, 64)  # stored: 1 channel
    assert len(list((data_root / "cache").glob("*.npy"))) == 1  # one copy of the images


def test_training_noise_follows_the_batch_device_and_dtype(sprites):
    ds = sprites["noisy_dsprites"]
    batch = ds.training_images("cpu").batch(torch.arange(4)).double()
    out = ds.observation_noise(batch, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == (4, 3, 64, 64)
    with pytest.raises(ValueError, match="1-channel"):
        ds.observation_noise(out, torch.Generator())


def test_the_runner_encodes_drawn_observations_for_stochastic_datasets(sprites):
    from benchmarks.runner.evaluate import ObservationEncoder

    class ChannelMeans(torch.nn.Module):  # a stand-in encoder: mean = per-channel image mean
        def encode(self, x):
            mean = x.mean(dim=(2, 3))
            return mean, torch.zeros_like(mean)

    ds = sprites["color_dsprites"]
    encoder = ObservationEncoder(ChannelMeans(), torch.device("cpu"))
    factors = np.repeat(ds.sample_factors(1, np.random.RandomState(0)), 4, axis=0)
    codes = encoder.mean_of(ds.sample_observations_from_factors(factors, np.random.RandomState(1)))
    assert codes.shape == (4, 3) and encoder.encoded == 4
    assert len(np.unique(codes.round(6), axis=0)) == 4  # one grid point, four different observations


def test_info_says_three_channels_and_random_observations(tiny_dsprites):
    result = CliRunner().invoke(data_app, ["info", "noisy_dsprites"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "(3, 64, 64)" in text and "shape (3)" in text and "drawn per observation" in text
    assert "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz" in text and "dsprites-procedural" in text
