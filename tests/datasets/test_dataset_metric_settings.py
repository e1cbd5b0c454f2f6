"""A metric's per-dataset settings (Chen et al.'s MIG without dSprites' shape) apply on every scoring path."""

import numpy as np
import pytest
import torch

import metrics
from benchmarks.datasets import to_float
from benchmarks.runner.evaluate import evaluate_run
from benchmarks.runner.suite import expand_suite, load_suite
from vae_zoo import create_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("vae", architecture="burgess", latent_dim=4).eval()


def test_mig_chen_on_dsprites_leaves_out_shape_through_evaluate_metric_and_the_runner(tiny_dsprites, model):
    dataset = tiny_dsprites(source="procedural", progress=False).prepare()

    @torch.no_grad()
    def encode_posterior(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, logvar = model.encode(to_float(torch.from_numpy(images)))
        return mean.numpy(), logvar.numpy()

    def direct(**overrides) -> float:
        scores = metrics.evaluate_metric(
            "mig_chen", dataset, None, np.random.RandomState(0), settings="fast",
            encode_posterior=encode_posterior, **overrides,
        )  # fmt: skip
        return scores["mig_chen"]

    assert metrics.get_metric("mig_chen").dataset_settings["dsprites"] == {"exclude_factors": (0,)}
    without_shape, with_shape = direct(), direct(exclude_factors=())
    assert without_shape == direct(exclude_factors=(0,)) != with_shape  # the dataset's name chose (0,)
    assert direct(dataset="shapes3d") == with_shape  # another dataset's settings: nothing left out

    quick = expand_suite(load_suite("quick"))[0]  # a dSprites run; its spec (and run id) hold no exclusion
    assert quick.dataset == "dsprites" and "exclude_factors" not in quick.metrics["mig_chen"]
    spec = quick.replace(
        metrics={"mig_chen": metrics.get_metric("mig_chen").settings("fast")}, evaluation_seed=0
    )
    runner = evaluate_run(spec, model, dataset, torch.device("cpu"), metric_names=["mig_chen"]).metrics
    assert runner["mig_chen"] == pytest.approx(without_shape, rel=1e-6)
