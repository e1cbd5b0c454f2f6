"""A third-party weakly-supervised variant, written as a plug-in would be: no change to vaebench.

``TopOneVAE`` keeps only each pair's most different dimension (the one with the largest KL
between the pair's posteriors) and shares the others, averaged as GroupVAE averages: 30 lines
on the core's two pair hooks and the shared maths in ``vae_zoo.losses``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.datasets import TrainingImages
from benchmarks.datasets.grid import FactorGrid
from benchmarks.datasets.pairs import PairSampler
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.train import train_runs
from vae_zoo import VAE, register_model
from vae_zoo.losses import group_average, pair_kl
from vae_zoo.testing import check_model


@register_model("test_top_one_vae")
class TopOneVAE(VAE):
    """Pairs share every dimension but the one whose KL between the two posteriors is largest."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        beta: float = 1.0

    views = 2  # trains on pairs; the runner draws them

    def shared_dimensions(self, mean, logvar, changed_factor):
        kl = pair_kl(mean, logvar)  # (B, D)
        return kl < kl.max(dim=1, keepdim=True).values  # (B, D): all but the argmax are shared

    def average_posteriors(self, mean, logvar):
        return group_average(mean, logvar)

    def regularizer(self, terms):
        kl = terms.kl.mean()
        return self.config.beta * kl, {"kl": kl}


def test_a_weak_plugin_passes_the_conformance_checks():
    check_model(TopOneVAE, latent_dim=4)


def test_a_weak_plugin_trains_through_the_runner_packed_and_alone():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    images = TrainingImages((torch.rand(64, 1, 64, 64, generator=g) > 0.8).to(torch.uint8) * 255)
    pairs = PairSampler(FactorGrid(("a", "b", "c"), (4, 4, 4)), k=1, semantics="dlib")
    specs = [
        RunSpec.from_dict(
            {
                "suite": "plugin",
                "dataset": "toy",
                "model": "test_top_one_vae",
                "model_config": {"architecture": "burgess", "latent_dim": 4, "beta": 2.0},
                "seed": seed,
                "training": {"steps": 5, "batch_size": 4, "learning_rate": 1e-3, "log_every": 5},
                "metrics": {},
                "pairs": {"k": 1, "semantics": "dlib"},
            }
        )
        for seed in (0, 1)
    ]
    packed = train_runs(specs, images, torch.device("cpu"), [None, None], pair_sampler=pairs)
    alone = train_runs(specs[:1], images, torch.device("cpu"), [None], pair_sampler=pairs)
    assert packed[0].curve["step"] == [5] and packed[0].images_per_second > 0
    torch.testing.assert_close(torch.tensor(packed[0].curve["loss"]), torch.tensor(alone[0].curve["loss"]))
