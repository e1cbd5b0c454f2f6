"""How an evaluation runs (fit threads, memory format, worker processes) changes no recorded number."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.datasets import load_dataset
from benchmarks.runner.blocked_convs import BlockedConvs
from benchmarks.runner.encoding import encode_for_scoring, forward_batches
from benchmarks.runner.evaluate import EvaluationOptions, evaluate_encoder
from benchmarks.runner.evaluator import CUDA_EVAL_WORKERS, pooled_fit_jobs, resolve_evaluation
from benchmarks.runner.first_conv import FirstConvCheck
from benchmarks.runner.provenance import usable_cores
from vae_zoo import create_model
from vaebench.errors import UserError

runner = CliRunner()
# Every metric that takes n_jobs, at settings small enough for the toy dataset.
FITTED = {
    "dci": {"n_train": 300, "n_test": 150, "batch_size": 50},
    "sap": {"n_train": 300, "n_test": 150, "batch_size": 50},
    "modularity_explicitness": {"n_train": 300, "n_test": 150, "batch_size": 50},
    "downstream_task_gbt": {"train_sizes": (50, 200), "n_test": 150, "batch_size": 50},
    "downstream_task_lr": {"train_sizes": (50, 200), "n_test": 150, "batch_size": 50},
    "fairness": {"n_train": 300, "n_test_per_class": 20, "batch_size": 50},
    "mig_chen": {"grid_max_values": 4, "batch_size": 256, "n_samples": 100},
    "dci_fast": {"n_train": 300, "n_test": 150, "batch_size": 50},
}


def test_every_metric_that_takes_n_jobs_is_among_those_checked():
    from metrics import get_metric, list_metrics

    takes = {
        name for name in list_metrics() if "n_jobs" in inspect.signature(get_metric(name).function).parameters
    }
    assert takes == set(FITTED)


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs" / "toy").glob("*.json"))}


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    model = create_model("vae", architecture="burgess", latent_dim=4).eval()
    return model, load_dataset("toy_squares", progress=False)


def test_fit_threads_change_no_score(toy_model):
    model, dataset = toy_model
    one, _ = evaluate_encoder(model, dataset, torch.device("cpu"), FITTED, 0, options=EvaluationOptions(1))
    two, _ = evaluate_encoder(model, dataset, torch.device("cpu"), FITTED, 0, options=EvaluationOptions(2))
    assert one.metrics == two.metrics and len(one.metrics) > 10


def test_channels_last_moves_the_codes_by_rounding_only(toy_model):
    model, dataset = toy_model
    metrics = {"mig": {"n_train": 300, "batch_size": 50}}
    plain, _ = evaluate_encoder(model, dataset, torch.device("cpu"), metrics, 0)
    last, _ = evaluate_encoder(
        model.to(memory_format=torch.channels_last), dataset, torch.device("cpu"), metrics, 0,
        options=EvaluationOptions(channels_last=True),
    )  # fmt: skip
    model.to(memory_format=torch.contiguous_format)
    np.testing.assert_allclose(last.kl_per_dim, plain.kl_per_dim, rtol=1e-4, atol=1e-6)


def test_options_pass_n_jobs_only_to_metrics_that_take_it_and_never_over_a_setting():
    options = EvaluationOptions(fit_jobs=3)
    assert options.metric_settings("dci", {"n_train": 10}) == {"n_train": 10, "n_jobs": 3}
    assert options.metric_settings("dci", {"n_jobs": 1}) == {"n_jobs": 1}
    assert options.metric_settings("mig", {"n_train": 10}) == {"n_train": 10}
    assert EvaluationOptions().metric_settings("dci", {}) == {}
    for bad in (0, -1, True, 1.5):
        with pytest.raises(UserError, match="fit jobs must be a positive integer"):
            EvaluationOptions(fit_jobs=bad)


def test_the_defaults_share_the_cores_between_trainer_and_workers():
    assert resolve_evaluation(torch.device("cpu"), None, None) == (EvaluationOptions(usable_cores()), 0)
    options, workers = resolve_evaluation(torch.device("cuda"), None, None)
    assert workers == CUDA_EVAL_WORKERS and options.fit_jobs == pooled_fit_jobs(CUDA_EVAL_WORKERS)
    assert pooled_fit_jobs(2, cores=16) == 7 and pooled_fit_jobs(4, cores=2) == 1
    assert resolve_evaluation(torch.device("cpu"), 3, 1, True) == (EvaluationOptions(3, True), 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fit-jobs", "0"], "--fit-jobs must be a positive integer; got 0"),
        (["--eval-workers", "-1"], "--eval-workers must be 0 or more; got -1"),
    ],
)
def test_bad_evaluation_options_exit_2_before_training(toy_suite, tmp_path, args, message):
    code, output = invoke("run", "--suite", toy_suite(), "--out", tmp_path / "out", *args)
    assert code == 2 and message in output, output
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow  # spawns a scoring process (about 10 s); the default run is near its 5 minutes
def test_runs_scored_in_a_worker_while_the_next_pack_trains_are_recorded_as_scored_here(toy_suite, tmp_path):
    """--eval-workers 1: two packs, the first scored in a spawned process; the records are the same."""
    inline, pooled = tmp_path / "inline", tmp_path / "pooled"
    code, output = invoke("run", "--suite", toy_suite(steps=6), "--out", inline, "--eval-workers", "0")
    assert code == 0, output
    code, output = invoke("run", "--suite", toy_suite(steps=6), "--out", pooled, "--eval-workers", "1")
    assert code == 0 and "Scoring in 1 worker process(es) while the next pack trains" in output, output
    a, b = records(inline), records(pooled)
    assert a.keys() == b.keys() and len(a) == 2
    for run_id in a:
        for key in ("run_id", "spec", "status", "metrics", "curve", "final", "mi_matrix", "evaluation"):
            assert a[run_id][key] == b[run_id][key], (run_id, key)
        options = b[run_id]["evaluation_provenance"]["options"]
        assert options == {"fit_jobs": 1, "channels_last": False, "encode_batch": None}
        # The worker encodes with the trainer's threads (a CPU's codes can depend on them), and says so.
        threads = [r[run_id]["evaluation_provenance"]["torch_threads"] for r in (a, b)]
        assert threads[0] == threads[1] == torch.get_num_threads()
        artifacts = [np.load(d / "artifacts" / "toy" / f"{run_id}.npz") for d in (inline, pooled)]
        np.testing.assert_array_equal(artifacts[0]["traversals"], artifacts[1]["traversals"])
    # Every claim was let go once its record was written, and a rerun has nothing to do.
    assert not list(pooled.rglob("*.claim.json"))
    code, output = invoke("run", "--suite", toy_suite(steps=6), "--out", pooled, "--eval-workers", "1")
    assert code == 0 and "Nothing to run" in output


def test_forward_batches_cut_the_recorded_chunks_into_passes_of_256_or_more():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    sizes = lambda passes: [p.stop - p.start for p in passes]  # noqa: E731
    assert sizes(forward_batches(1024 + 600, cpu)) == [256, 256, 256, 256, 256, 344]
    assert sizes(forward_batches(2048 + 300, cpu)) == [256] * 8 + [300]
    assert sizes(forward_batches(100, cpu)) == [100] and sizes(forward_batches(511, cpu)) == [511]
    assert sizes(forward_batches(1024 + 600, cuda)) == [1024, 600]
    for n in (0, 1, 255, 256, 1023, 1024, 1025, 3000):
        assert [i for p in forward_batches(n, cpu) for i in range(p.start, p.stop)] == list(range(n))


@pytest.mark.parametrize("architecture", ["locatello", "dlib_conv", "burgess"])
@pytest.mark.parametrize("channels", [1, 3])
def test_passes_of_256_give_the_codes_of_the_recorded_1024_image_passes_on_this_machine(
    architecture, channels
):
    """What FORWARD_BATCH rests on: each image's code does not depend on a batch of 256 or more.

    And the runner's own forward pass (``encode_for_scoring``, ReLUs in place, a 1-channel first
    convolution fused with its ReLU, or the leading convolutions on oneDNN's blocked tensors) gives
    the same codes, to the bit.
    """
    torch.manual_seed(0)
    model = create_model("vae", architecture=architecture, in_channels=channels, latent_dim=10).eval()
    x = (torch.rand(1024 + 600, channels, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    with torch.inference_mode():
        recorded = torch.cat([torch.cat(model.encode(x[i : i + 1024]), 1) for i in range(0, len(x), 1024)])
        blocked = BlockedConvs.of(list(model.encoder))
        for first_conv, layers in ((None, None), (FirstConvCheck(), None), (None, blocked)):
            passes = torch.cat(
                [
                    torch.cat(encode_for_scoring(model, x[p], first_conv, layers), 1)
                    for p in forward_batches(len(x), torch.device("cpu"))
                ]
            )
            assert torch.equal(passes.view(torch.int32), recorded.view(torch.int32))
            if first_conv is not None and channels == 1:  # both pass shapes checked, agreed, then fused
                assert list(first_conv.agrees.values()) == [True, True]
        # the passes of 256 checked against the NCHW layers on the second, agreed, then run blocked;
        # the last pass's shape, seen once, ran in NCHW unchecked
        assert blocked.agrees == {((256, channels, 64, 64), torch.get_num_threads()): True}
        unchanged = x.clone()
        encode_for_scoring(model, x[:8])
        assert torch.equal(x, unchanged)  # in place only on the encoder's own activations
    with torch.enable_grad():  # with autograd, the model's own encode
        assert torch.equal(torch.cat(encode_for_scoring(model, x[:256]), 1), recorded[:256])


def test_the_downstream_trees_stable_tie_order_is_a_named_setting_the_protocol_lists():
    """tie_order = "stable" is faster and not scikit-learn's last bits: a setting, checked and recorded."""
    from benchmarks.runner.protocol import compare_run
    from benchmarks.runner.suite import expand_suite, load_suite
    from metrics import get_metric

    spec = next(s for s in expand_suite(load_suite("paper")) if s.dataset == "dsprites")
    gbt = get_metric("downstream_task_gbt")
    gbt.check_settings({"tie_order": "stable"})
    with pytest.raises(ValueError, match="tie_order = 'fast'; it must be one of 'sklearn', 'stable'"):
        gbt.check_settings({"tie_order": "fast"})
    metrics = {e: dict(s) for e, s in spec.metrics.items()}
    metrics["downstream_task_gbt"]["tie_order"] = "stable"
    changed = spec.replace(metrics=metrics)
    assert changed.run_id != spec.run_id
    assert [d for d in compare_run(changed).deviations if "tie_order" in str(d.to_dict())]
    assert not [d for d in compare_run(spec).deviations if "tie_order" in str(d.to_dict())]
