"""What is recorded is what trained: every training setting of a record changes the training, or is refused.

It changes the weights, the logged curve or the checkpoints; a value vaebench cannot honour is refused
before any work.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.datasets import TrainingImages
from benchmarks.runner.settings import RunTraining
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.train import Interrupted, train_runs
from vae_zoo.checkpoint import read_checkpoint

CPU = torch.device("cpu")
BASE = RunTraining(
    steps=8, batch_size=4, learning_rate=1e-3, precision="fp32", log_every=4, checkpoint_every=4
)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return TrainingImages((torch.rand(32, 1, 64, 64, generator=g) > 0.8).to(torch.uint8) * 255)


def _spec(training: RunTraining) -> RunSpec:
    return RunSpec(
        suite="settings",
        dataset="toy",
        model="beta_vae",
        model_config={"architecture": "burgess", "latent_dim": 4},
        seed=0,
        training=training,
        metrics={},
    )


def _train(images, training, checkpoint=None, should_stop=lambda: False):
    torch.set_num_threads(1)
    (result,) = train_runs([_spec(training)], images, CPU, [checkpoint], should_stop=should_stop)
    return result


def _weights(result):
    return torch.cat([t.flatten() for t in result.model.state_dict().values()])


@pytest.mark.parametrize(
    ("field", "value"), [("steps", 9), ("batch_size", 5), ("learning_rate", 2e-3), ("precision", "bf16")]
)
def test_a_setting_that_shapes_the_optimisation_changes_the_weights(images, field, value):
    base = _train(images, BASE)
    changed = _train(images, dataclasses.replace(BASE, **{field: value}))
    assert not torch.equal(_weights(base), _weights(changed)), field


def test_log_every_changes_the_logged_curve_and_not_the_weights(images):
    base, other = _train(images, BASE), _train(images, dataclasses.replace(BASE, log_every=2))
    assert base.curve["step"] == [4, 8] and other.curve["step"] == [2, 4, 6, 8]
    assert torch.equal(_weights(base), _weights(other))


def test_checkpoint_every_changes_where_a_run_can_resume_from(images, tmp_path):
    """Interrupted at step 6, the last periodic checkpoint is at 6 (every 2 steps) or at 4 (every 4).

    It is the one kept beside the interrupt's own.
    """
    for every, last in ((2, 6), (4, 4)):
        stops = iter([False] * 6 + [True])
        path = tmp_path / f"every{every}.pt"
        with pytest.raises(Interrupted):
            _train(images, dataclasses.replace(BASE, checkpoint_every=every), path, lambda s=stops: next(s))
        assert read_checkpoint(path.with_name(f"{path.name}.previous"))["step"] == last


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [("optimizer", "sgd", "adam"), ("precision", "bf17", "auto, fp32, bf16"), ("steps", 0, "positive")],
)
def test_a_setting_vaebench_cannot_honour_is_refused(field, value, accepted):
    with pytest.raises(ValueError, match=accepted):
        dataclasses.replace(BASE, **{field: value})
