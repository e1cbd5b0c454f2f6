"""FactorGrid: the one mapping between factors and flat indices, in the official order."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks.datasets import FactorGrid
from benchmarks.datasets.dsprites import DSprites
from benchmarks.datasets.shapes3d import Shapes3D

REFERENCE = Path(__file__).parents[1] / "data" / "dsprites_official_frames.npz"


def test_round_trip_on_random_indices_and_factors():
    grid = FactorGrid(("a", "b", "c"), (3, 5, 7))
    rng = np.random.default_rng(0)
    indices = rng.integers(0, grid.num_total, size=500)
    assert np.array_equal(grid.factors_to_indices(grid.indices_to_factors(indices)), indices)
    factors = grid.sample_factors(500, rng)
    assert np.array_equal(grid.indices_to_factors(grid.factors_to_indices(factors)), factors)


def test_all_factors_enumerates_the_grid_in_flat_order_last_factor_fastest():
    grid = FactorGrid(("a", "b"), (2, 3))
    assert grid.all_factors().tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert np.array_equal(grid.factors_to_indices(grid.all_factors()), np.arange(6))


def test_dsprites_order_matches_the_official_file():
    grid = DSprites().grid
    # index 1 is posY 1, index 32 is posX 1 (posY varies fastest)
    assert grid.indices_to_factors([1, 32]).tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]]
    # the official formula on real official latents
    classes = np.load(REFERENCE)["latents_classes"]
    official = classes @ np.array([737280, 245760, 40960, 1024, 32, 1])
    assert np.array_equal(grid.factors_to_indices(classes[:, 1:]), official)
    assert grid.num_total == 737280


def test_shapes3d_order_matches_the_official_file():
    grid = Shapes3D().grid
    assert grid.strides.tolist() == [48000, 4800, 480, 60, 15, 1]
    assert grid.num_total == 480000
    assert grid.indices_to_factors([1, 15, 479999]).tolist() == [
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0],
        [9, 9, 9, 7, 3, 14],
    ]


def test_out_of_range_factor_names_the_factor_its_range_and_the_value():
    grid = DSprites().grid
    with pytest.raises(ValueError, match=r"'scale'.*\[0, 5\].*got 6"):
        grid.factors_to_indices([[0, 6, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"'posX'.*got -1"):
        grid.factors_to_indices([[0, 0, 0, -1, 0]])


def test_wrongly_shaped_factors_or_indices_are_refused():
    grid = DSprites().grid
    with pytest.raises(ValueError, match=r"shaped \(n, 5\).*got shape \(2, 4\)"):
        grid.factors_to_indices(np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="shape"):
        grid.factors_to_indices(np.zeros(5, int))
    with pytest.raises(ValueError, match="integer"):
        grid.factors_to_indices(np.full((1, 5), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 737279\].*got 737280"):
        grid.indices_to_factors([737280])


@pytest.mark.parametrize("make_rng", [np.random.default_rng, np.random.RandomState])
def test_sample_factors_accepts_both_numpy_generators_and_covers_each_factor(make_rng):
    grid = FactorGrid(("a", "b"), (3, 40))
    factors = grid.sample_factors(4000, make_rng(0))
    assert factors.shape == (4000, 2) and factors.dtype == np.int64
    for j, size in enumerate(grid.sizes):
        counts = np.bincount(factors[:, j], minlength=size)
        assert len(counts) == size and counts.min() > 0.5 * 4000 / size  # every value, roughly uniform
    again = grid.sample_factors(4000, make_rng(0))
    assert np.array_equal(factors, again)  # the generator alone decides


def test_sample_factors_refuses_other_rngs():
    with pytest.raises(TypeError, match="Generator or RandomState"):
        FactorGrid(("a",), (3,)).sample_factors(2, rng=0)


@pytest.mark.parametrize("make_rng", [np.random.default_rng, np.random.RandomState])
@pytest.mark.parametrize("highs", [(3, 6, 40, 32, 32), (1, 2, 1), (2**40, 3, 2**33), (7,)])
@pytest.mark.parametrize("n", [0, 1, 64, 1000])
def test_uniform_columns_draws_dlibs_stream_one_column_after_another(make_rng, highs, n):
    # dlib's sample_factors: one randint call per factor, in order. uniform_columns draws them in one
    # call; the values and the generator's state after must be those of the per-column calls.
    from benchmarks.datasets.grid import uniform_columns, uniform_integers

    for seed in range(20):
        per_column_rng, one_call_rng = make_rng(seed), make_rng(seed)
        expected = np.stack([uniform_integers(per_column_rng, h, n) for h in highs], axis=1)
        got = uniform_columns(one_call_rng, highs, n)
        assert got.dtype == np.int64 and got.shape == (n, len(highs))
        np.testing.assert_array_equal(got, expected)
        after = [uniform_integers(r, 2**31, 4).tolist() for r in (per_column_rng, one_call_rng)]
        assert after[0] == after[1]  # the same state after


def test_uniform_columns_with_no_columns_draws_nothing():
    from benchmarks.datasets.grid import uniform_columns

    rng = np.random.RandomState(0)
    assert uniform_columns(rng, (), 5).shape == (5, 0)
    assert rng.randint(2**31) == np.random.RandomState(0).randint(2**31)
