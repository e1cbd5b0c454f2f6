"""Encoding the grid ahead (``CachedEncoder.encode_grid_ahead``): every point keeps its lookups' codes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiled_toy import TiledToy

from benchmarks.datasets import load_dataset
from benchmarks.runner import encoding, evaluate
from benchmarks.runner.evaluate import (
    ENCODE_AHEAD_REACH,
    CachedEncoder,
    evaluate_encoder,
    expected_first_reach,
)
from metrics import get_metric
from vae_zoo import create_model

CPU = torch.device("cpu")


def one_ulp_off_in_passes_of(monkeypatch, size: int) -> None:
    """Make every pass of ``size`` images one ulp off: its codes differ from the long passes'."""
    real = encoding.encode_for_scoring

    def off(model, x, first_conv=None, blocked=None):
        mean, logvar = real(model, x, first_conv, blocked)
        if len(x) == size:
            mean = torch.nextafter(mean, torch.full_like(mean, np.inf))
        return mean, logvar

    monkeypatch.setattr(encoding, "encode_for_scoring", off)


def test_the_grid_encoded_ahead_gives_every_point_its_lookups_codes(monkeypatch):
    """Long passes are not run again, short ones are checked once per size, or run.

    The lookups reach, in turn, 1,300, 600, 50, 50, 40, 40, 10, 100 and 114 new points of a
    2,304-point grid (nine passes of 256 ahead). Passes of 40 are made to differ from the long
    passes (one ulp): their check fails and each runs, as without encoding ahead.
    """
    one_ulp_off_in_passes_of(monkeypatch, 40)
    dataset = TiledToy(2304)
    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval()
    order = np.random.RandomState(0).permutation(len(dataset))
    sizes = [1300, 600, 50, 50, 40, 40, 10, 100, 114]
    cuts = np.cumsum([0, *sizes])
    lookups = [  # each lookup's new points, with earlier points again and repeats
        np.concatenate([order[a:b], order[: a // 2], order[a:b]]) for a, b in zip(cuts[:-1], cuts[1:])
    ]
    plain, ahead = CachedEncoder(model, dataset, CPU), CachedEncoder(model, dataset, CPU)
    ahead.encode_grid_ahead = True
    assert ahead.can_encode_ahead()
    encoded = []
    for indices in lookups:
        for encoder in (plain, ahead):
            mean, logvar = encoder.posterior_of(indices)
        encoded.append(ahead.encoded)
        want = plain.posterior_of(indices)
        assert np.array_equal(mean.view(np.int64), want[0].view(np.int64))
        assert np.array_equal(logvar.view(np.int64), want[1].view(np.int64))
    assert plain.encoded == len(dataset) and plain.encoded_ahead == 0
    assert ahead.encoded_ahead == len(dataset)
    runs = np.diff([0, *encoded]) - np.array([len(dataset)] + [0] * (len(sizes) - 1))
    # 1,300 and 600: long passes, done; 50: checked (runs), then done; 40: checked and differs, so
    # runs each time; 10: under SHORT_PASS_CHECKED, runs; 100 and 114: checked (run).
    assert runs.tolist() == [0, 0, 50, 0, 40, 40, 10, 100, 114]
    threads = torch.get_num_threads()
    verdicts = {50: True, 40: False, 100: True, 114: True}
    assert ahead.short_pass_agrees == {(size, threads): same for size, same in verdicts.items()}
    assert np.array_equal(ahead.posterior.view(np.int32), plain.posterior.view(np.int32))


def test_only_the_default_passes_of_a_model_run_layer_by_layer_are_encoded_ahead():
    dataset = TiledToy(512)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval()
    assert CachedEncoder(model, dataset, CPU).can_encode_ahead()
    assert not CachedEncoder(model, dataset, CPU, channels_last=True).can_encode_ahead()
    assert not CachedEncoder(model, dataset, CPU, encode_batch=64).can_encode_ahead()
    codes = np.zeros((512, 4), dtype=np.float32)
    assert not CachedEncoder.precomputed(dataset, codes, codes).can_encode_ahead()

    class Elsewhere:  # a representation trained elsewhere: nothing assumed of its passes
        def encode(self, x):
            return model.encode(x)

    assert not CachedEncoder(Elsewhere(), dataset, CPU).can_encode_ahead()


def test_the_expected_first_reach_of_each_entry():
    """A draw of d of N points reaches N (1 - e^(-d/N)); the sampled representation reaches none first."""
    metrics = {
        "mig": {"n_train": 2000},
        "mig@sampled": {"n_train": 2000},
        "dci": {"n_train": 500, "n_test": 250},
    }
    sizes = (4, 8, 16)
    n = math.prod(sizes)
    d = {e: get_metric(e.split("@")[0]).images_encoded(s, sizes) for e, s in metrics.items()}
    assert d["mig"] == 2000 and d["dci"] == 750
    assert expected_first_reach(metrics, sizes) == pytest.approx(
        {
            "mig": n * (1 - math.exp(-2000 / n)),
            "mig@sampled": 0.0,
            "dci": n * math.exp(-2000 / n) * (1 - math.exp(-750 / n)),
        },
        rel=1e-12,
    )


@pytest.mark.parametrize("n_train, ahead", [(2000, True), (40, False)])
def test_an_evaluation_reaching_most_of_the_grid_encodes_it_ahead_with_the_same_scores(
    monkeypatch, n_train, ahead
):
    """toy_squares (256 points): MIG on 2,000 draws reaches nearly all of it, on 40 draws 15%."""
    dataset = load_dataset("toy_squares", progress=False)
    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval()
    metrics = {"mig": {"n_train": n_train, "batch_size": 16}, "sap": {"n_train": 100, "n_test": 50}}
    reach = sum(expected_first_reach(metrics, tuple(dataset.factor_sizes)).values()) / len(dataset)
    assert (reach >= ENCODE_AHEAD_REACH) is ahead
    result, _ = evaluate_encoder(model, dataset, CPU, metrics, 0)
    assert result.counts.get("points_encoded_ahead", 0) == (len(dataset) if ahead else 0)
    monkeypatch.setattr(evaluate, "ENCODE_AHEAD_REACH", math.inf)  # never ahead
    plain, _ = evaluate_encoder(model, dataset, CPU, metrics, 0)
    assert "points_encoded_ahead" not in plain.counts
    assert result.metrics.keys() == plain.metrics.keys()
    for key, value in plain.metrics.items():
        assert np.float64(result.metrics[key]).tobytes() == np.float64(value).tobytes(), key
    assert result.mi_matrix == plain.mi_matrix
