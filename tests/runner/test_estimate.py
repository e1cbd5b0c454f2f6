"""The plan's timings: one per network, data and training setting, never one per run."""

from __future__ import annotations

import torch

from benchmarks.runner import estimate
from benchmarks.runner.plan import why_not_packable
from benchmarks.runner.suite import expand_suite, load_suite, override_suite


def paper(**overrides):
    return expand_suite(override_suite(load_suite("paper"), **overrides))


def test_runs_that_differ_in_seed_strength_or_dataset_of_one_shape_share_one_timing():
    specs = paper(datasets=["dsprites", "smallnorb", "shapes3d"])  # 1 x 64 x 64 twice, 3 x 64 x 64
    packed = [s for s in specs if not why_not_packable(s)]
    alone = [s for s in specs if why_not_packable(s)]
    assert packed and alone  # FactorVAE's discriminator: its runs train alone
    # A packable variant's hyper-parameter grid and ten seeds, on the datasets of one shape: one timing.
    keys = {estimate.timing_key(s) for s in packed}
    assert len(keys) == 2 * len({s.model for s in packed})
    # An unpackable run's own config (its TC estimator's dataset size included), whatever its seed.
    keys = {estimate.timing_key(s) for s in alone}
    assert len(keys) == len({(s.dataset, str(dict(s.model_config))) for s in alone}) == len(alone) / 10
    # What the timing runs differs: so do the keys.
    spec = packed[0]
    assert estimate.timing_key(spec.replace(model_config={**spec.model_config, "latent_dim": 5})) != (
        estimate.timing_key(spec)
    )
    assert estimate.timing_key(spec.replace(training={**spec.training.to_dict(), "batch_size": 8})) != (
        estimate.timing_key(spec)
    )
    # The encoding does not train: another batch size shares its timing.
    other_batch = spec.replace(training={**spec.training.to_dict(), "batch_size": 8})
    assert estimate.encoding_key(other_batch) == estimate.encoding_key(spec)


def test_the_estimate_times_each_key_once(monkeypatch):
    specs = paper(datasets=["dsprites"], models=["beta_vae", "factor_vae"], seeds=[0, 1])
    timed = []

    def timed_steps(spec, device):
        timed.append(estimate.timing_key(spec))
        return 0.5

    monkeypatch.setattr(estimate, "_STEP_SECONDS", {})
    monkeypatch.setattr(estimate, "_timed_steps", timed_steps)
    seconds = estimate.estimate_training_seconds(specs, torch.device("cpu"))
    assert sorted(seconds) == sorted(s.run_id for s in specs)
    assert all(seconds[s.run_id] == 0.5 * s.training.steps for s in specs)
    assert len(timed) == len(set(timed)) == len({estimate.timing_key(s) for s in specs})
    estimate.estimate_training_seconds(specs, torch.device("cpu"))  # the process's timings are reused
    assert len(timed) == len(set(timed))
