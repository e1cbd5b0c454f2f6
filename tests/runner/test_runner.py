"""The runner as a user drives it: the CLI, records, resume, failures and bad input."""

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.runner.execute import SIGNAL_AT_STEP
from vae_zoo import VAE, register_model

CLI = (sys.executable, "-m", "benchmarks.cli")  # toy_squares is a built-in dataset
runner = CliRunner()


@register_model("nan_after_12")
class NaNAfter12(VAE):
    """Test variant whose regularizer turns NaN at step 12."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        pass

    def regularizer(self, terms):
        kl = terms.kl.mean()
        return (kl * float("nan") if terms.step >= 12 else kl), {"kl": kl}


def invoke(*args):
    """Exit code and output, whitespace-normalised so that Rich's line wrapping does not matter."""
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())


def records(out, suite="toy"):
    return {p.stem: json.loads(p.read_text()) for p in sorted((Path(out) / "runs" / suite).glob("*.json"))}


def comparable(record):
    """What must match between an interrupted-and-resumed run and an uninterrupted one."""
    return {k: record[k] for k in ("run_id", "spec", "status", "metrics", "curve", "final", "mi_matrix")}


def test_run_records_every_run_and_a_rerun_skips_everything(toy_suite, tmp_path):
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", toy_suite(), "--out", out)
    assert code == 0, output
    recs = records(out)
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs.values())
    rec = next(iter(recs.values()))
    assert {"mig", "sap"} <= set(rec["metrics"]) and len(rec["curve"]["step"]) == 6
    prov = rec["provenance"]
    for key in ("git_commit", "torch", "numpy", "scikit_learn", "device", "device_name", "dataset"):
        assert key in prov
    assert prov["dataset"]["source"] == "procedural"
    assert (out / "artifacts" / "toy").is_dir() and (out / "checkpoints" / "toy").is_dir()
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs" / "toy").glob("*.json")}
    code, output = invoke("run", "--suite", toy_suite(), "--out", out)
    assert code == 0 and "2 run(s) already recorded" in output and "Nothing to run" in output
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "runs" / "toy").glob("*.json")}


def _run_cli(*args, env=None):
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


@pytest.mark.slow  # trains through subprocesses
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_resumes_to_the_record_of_an_uninterrupted_run(toy_suite, tmp_path, sig):
    """A run killed at a deterministic step resumes from its checkpoint to the reference's record.

    The process signals itself at step 25, after the checkpoints of steps 10 and 20; the rerun resumes
    from a checkpoint and ends with the reference's record.
    """
    suite = toy_suite(steps=80)
    args = ("run", "--suite", suite, "--models", "vae", "--device", "cpu")
    reference = _run_cli(*args, "--out", tmp_path / "ref")
    assert reference.wait(timeout=300) == 0, reference.stdout.read().decode()

    out = tmp_path / "killed"
    proc = _run_cli(*args, "--out", out, env={SIGNAL_AT_STEP: f"{sig.name}@25"})
    code = proc.wait(timeout=300)
    log = proc.stdout.read().decode()
    assert not records(out), "the killed run must not have written a record"
    if sig == signal.SIGTERM:
        assert code == 130 and "Run the same command again to resume" in log, log
    resumed = _run_cli(*args, "--out", out)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read().decode()
    (ref,), (res,) = records(tmp_path / "ref").values(), records(out).values()
    assert res["timing"]["resumed_from_step"] > 0
    assert comparable(res) == comparable(ref)


def test_a_diverged_run_is_recorded_as_failed_and_the_sweep_goes_on(toy_suite, tmp_path):
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", toy_suite(), "--models", "nan_after_12,vae", "--out", out)
    assert code == 1, output
    by_model = {r["spec"]["model"]: r for r in records(out).values()}
    assert by_model["vae"]["status"] == "ok"
    failed = by_model["nan_after_12"]
    assert failed["status"] == "failed" and failed["failure"]["step"] == 12
    assert "regularizer" in failed["failure"]["reason"] or "loss" in failed["failure"]["reason"]
    assert "step 12" in output and failed["run_id"] in output


def test_eval_recomputes_metrics_from_the_checkpoint(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)[0] == 0
    ((run_id, rec),) = records(out).items()
    artifact = out / "artifacts" / "toy" / f"{run_id}.npz"
    artifact.unlink()
    code, output = invoke("eval", run_id, "--metrics", "mig", "--out", out, "--device", "cpu")
    assert code == 0, output
    assert "vae seed 0: evaluating: mig (0 of 1 metrics done" in output and "ETA" in output  # not silent
    updated = records(out)[run_id]
    assert updated["metrics"]["mig"] == pytest.approx(rec["metrics"]["mig"], abs=1e-12)
    assert updated["metrics"]["sap"] == rec["metrics"]["sap"]  # a metric not re-scored is kept
    # the training's record and provenance stay; the evaluation states its own, and rewrites the artifacts
    for key in ("curve", "final", "provenance", "spec", "protocol"):
        assert updated[key] == rec[key], key
    assert updated["timing"]["train_seconds"] == rec["timing"]["train_seconds"]
    scored_by = updated["evaluation_provenance"]
    assert {"git_commit", "torch", "numpy", "device", "created"} <= set(scored_by)
    assert scored_by["created"] >= rec["evaluation_provenance"]["created"]
    assert artifact.exists()
    ckpt = out / "checkpoints" / "toy" / f"{run_id}.pt"
    assert invoke("eval", ckpt, "--metrics", "sap", "--out", out, "--device", "cpu")[0] == 0
    code, output = invoke("eval", run_id, "--out", out, "--progress-interval", "-1")
    assert code == 2 and "--progress-interval must be 0 or more seconds; got -1" in output


def test_eval_scores_in_the_order_the_run_was_scored_and_reproduces_its_record(toy_suite, tmp_path):
    """The record sorts its keys; eval takes the run's metric order from the checkpoint.

    The order in which the metrics first reach the grid decides which images share a forward
    pass, which can move the codes' last bits: eval re-scores in the run's order, to its numbers.
    """
    out = tmp_path / "out"
    assert (
        invoke(
            "run", "--suite", toy_suite(), "--models", "vae", "--metrics", "unsupervised,mig", "--out", out
        )[0]
        == 0
    )
    ((run_id, rec),) = records(out).items()
    assert list(rec["spec"]["metrics"]) == ["mig", "unsupervised"]  # sorted in the record
    code, output = invoke("eval", run_id, "--out", out, "--device", "cpu", "--progress-interval", "0")
    assert code == 0, output
    started = re.findall(r"evaluating: (\S+) \(", output)  # each metric as it starts
    assert started == ["unsupervised", "mig"], output
    assert records(out)[run_id]["metrics"] == rec["metrics"]


def test_tables_regenerate_byte_identically(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--out", out)[0] == 0
    assert invoke("table", "--out", out)[0] == 0
    first = {p: p.read_bytes() for p in (out / "tables").iterdir()}
    assert {p.suffix for p in first} == {".md", ".csv", ".tex"}
    assert invoke("table", "--out", out, "--suite", "toy")[0] == 0
    assert first == {p: p.read_bytes() for p in (out / "tables").iterdir()}
    assert invoke("plot", "--out", out, "--suite", "toy")[0] == 0
    assert list((out / "figures" / "toy").glob("*.png"))


# -- bad input -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "beta-vae"], "Did you mean 'beta_vae'"),
        (["--datasets", "dsprite"], "Known datasets:"),
        (["--metrics", "mgi"], "Known metrics:"),
        (["--steps", "0"], "--steps: training.steps must be a positive integer"),
        (["--seeds", "a,b"], "--seeds must be comma-separated integers"),
    ],
)
def test_cli_errors_exit_2_and_name_the_valid_values(toy_suite, tmp_path, args, message):
    code, output = invoke("run", "--suite", toy_suite(), "--out", tmp_path / "out", *args)
    assert code == 2 and message in output, output
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_unknown_suite_lists_the_shipped_ones(tmp_path):
    code, output = invoke("run", "--suite", "quik", "--out", tmp_path)
    assert code == 2 and "Did you mean 'quick'" in output


@pytest.mark.parametrize(
    ("model_line", "field"),
    [("beta_vae = [{ beta = -1.0 }]", "beta"), ("beta_vae = [{ latent_dim = 0 }]", "latent_dim")],
)
def test_invalid_hyperparameters_are_refused_before_training(toy_suite, tmp_path, model_line, field):
    suite = toy_suite()
    text = suite.read_text().replace("beta_vae = [{ beta = 2.0 }]", model_line)
    suite.write_text(text)
    code, output = invoke("run", "--suite", suite, "--out", tmp_path / "out")
    assert code == 2 and field in output, output
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_unwritable_output_directory_fails_before_training(toy_suite, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, output = invoke("run", "--suite", toy_suite(), "--out", blocker / "out")
    assert code == 2 and "not writable" in output


def test_corrupt_record_and_checkpoint_are_reported_and_never_overwritten(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--out", out)[0] == 0
    paths = sorted((out / "runs" / "toy").glob("*.json"))
    paths[0].write_text("{ truncated")
    code, output = invoke("run", "--suite", toy_suite(), "--out", out)
    assert code == 1 and paths[0].name in output
    assert paths[0].read_text() == "{ truncated"
    code, output = invoke("table", "--out", out)
    assert paths[0].name in output
    # a corrupt checkpoint of a run that still has to train: never trained on; kept aside, and the
    # run restarts from step 0 saying why (the corrupt record above still makes the sweep exit 1)
    paths[1].unlink()
    ckpt = out / "checkpoints" / "toy" / f"{paths[1].stem}.pt"
    ckpt.write_bytes(b"garbage")
    ckpt.with_name(f"{ckpt.name}.previous").unlink(missing_ok=True)
    with pytest.warns(UserWarning, match=rf"(?s){ckpt.name} is corrupt.*restarts from step 0"):
        code, output = invoke("run", "--suite", toy_suite(), "--out", out)
    assert code == 1
    assert ckpt.with_name(f"{ckpt.name}.damaged").read_bytes() == b"garbage"
    assert paths[1].exists()  # its record, from the restarted run


def test_force_reruns_from_scratch(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)[0] == 0
    before = records(out)
    code, output = invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out, "--force")
    assert code == 0 and "1 run(s) completed" in output
    after = records(out)
    assert comparable(next(iter(before.values()))) == comparable(next(iter(after.values())))


def test_list_commands():
    result = runner.invoke(app, ["list", "models"])
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[0].split()[0] == "annealed_vae"
    names = {line.split()[0] for line in lines}
    assert {"vae", "beta_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tcvae", "annealed_vae"} <= names
    result = runner.invoke(app, ["list", "suites"])
    assert result.exit_code == 0
    assert {"smoke", "quick", "paper"} <= {line.split()[0] for line in result.output.splitlines()}


def test_same_seed_same_numbers(toy_suite, tmp_path):
    torch.manual_seed(123)  # global state must not leak into a run
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", a)[0] == 0
    torch.manual_seed(456)
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", b)[0] == 0
    assert [comparable(r) for r in records(a).values()] == [comparable(r) for r in records(b).values()]


@pytest.mark.slow  # two sweeps (4 s); tests/runner/test_packing.py checks packed against alone by default
def test_packed_sweep_records_every_run_like_alone(toy_suite, tmp_path):
    """--pack 2 trains vae and beta_vae as one pack; each record matches training it alone."""
    alone, packed = tmp_path / "alone", tmp_path / "packed"
    assert invoke("run", "--suite", toy_suite(), "--out", alone, "--pack", "1")[0] == 0
    code, output = invoke("run", "--suite", toy_suite(), "--out", packed, "--pack", "2")
    assert code == 0 and "pack(s) of up to 2" in output, output
    a, p = records(alone), records(packed)
    assert a.keys() == p.keys()
    for run_id in a:
        assert a[run_id]["spec"] == p[run_id]["spec"]
        for term, values in a[run_id]["curve"].items():
            assert p[run_id]["curve"][term] == pytest.approx(values, rel=1e-4, abs=1e-5), term


def test_pack_must_be_positive(toy_suite, tmp_path):
    code, output = invoke("run", "--suite", toy_suite(), "--out", tmp_path / "o", "--pack", "0")
    assert code == 2 and "--pack must be a positive integer" in output


def test_mig_chen_leaves_out_the_factors_its_dataset_settings_name(toy_suite, tmp_path, monkeypatch):
    """Chen et al. score dSprites without shape: the runner scores with the metric's dataset settings."""
    import dataclasses
    import functools

    import metrics
    from benchmarks.runner import evaluate

    assert metrics.get_metric("mig_chen").dataset_settings["dsprites"] == {"exclude_factors": (0,)}
    assert "shapes3d" not in metrics.get_metric("mig_chen").dataset_settings

    seen, get_metric = [], metrics.get_metric

    def spying_get_metric(name):
        spec = get_metric(name)
        if name != "mig_chen":
            return spec

        @functools.wraps(spec.function)  # keeps the signature the runner inspects
        def spy(*args, **kwargs):
            seen.append(kwargs.get("exclude_factors"))
            return spec.function(*args, **kwargs)

        return dataclasses.replace(
            spec, function=spy, dataset_settings={"toy_squares": {"exclude_factors": (0,)}}
        )

    monkeypatch.setattr(metrics, "get_metric", spying_get_metric)
    monkeypatch.setattr(evaluate, "get_metric", spying_get_metric)  # the runner's own reference
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)[0] == 0
    ((run_id, _),) = records(out).items()
    code, output = invoke("eval", run_id, "--metrics", "mig_chen", "--out", out, "--device", "cpu")
    assert code == 0, output
    assert seen == [(0,)]
    assert 0.0 <= records(out)[run_id]["metrics"]["mig_chen"] <= 1.0


def test_the_plan_estimates_evaluation_from_the_grid_points_first_reached_and_the_fits():
    """Each grid point encoded once, the sampled representation's none; fits scaled by points.

    A draw of d of N points reaches N (1 - e^(-d/N)) of them; a fit costs its metric's measured
    study cost scaled by the points it fits.
    """
    import math

    from benchmarks.runner.estimate import estimate_evaluation_seconds, evaluation_costs
    from benchmarks.runner.suite import expand_suite, load_suite
    from metrics import get_metric

    metrics = {
        "mig": {"n_train": 2000, "batch_size": 16},
        "mig@sampled": {"n_train": 2000, "batch_size": 16},
        "dci": {"n_train": 500, "n_test": 250, "batch_size": 16},
    }
    spec = expand_suite(load_suite("quick"))[0].replace(metrics=metrics)
    n = 3 * 6 * 40 * 32 * 32  # dSprites' grid
    per_image = 1e-3
    reached_by_mig = n * (1 - math.exp(-2000 / n))
    reached_by_dci = n * math.exp(-2000 / n) * (1 - math.exp(-750 / n))
    mig_cost = get_metric("mig").fit_cost.study_seconds  # at the study's 10,000 points, on dSprites
    dci_cost = get_metric("dci").fit_cost.study_seconds
    expected = {
        "mig": reached_by_mig * per_image + mig_cost * 2000 / 10000,
        "mig@sampled": mig_cost * 2000 / 10000,  # the same points: nothing new to encode
        "dci": reached_by_dci * per_image
        + dci_cost * 500 / 10000,  # per class, and dSprites is where it was measured
        "": 2000 * per_image,  # the MI matrix's sample
    }
    costs = evaluation_costs(spec, torch.device("cpu"), per_image=per_image)
    assert costs == pytest.approx(expected, rel=1e-12)
    assert estimate_evaluation_seconds(spec, torch.device("cpu"), per_image) == pytest.approx(
        sum(expected.values())
    )
    # A dataset without one image per grid point has no cache: every draw is encoded.
    colour = evaluation_costs(
        spec.replace(dataset="color_dsprites"), torch.device("cpu"), per_image=per_image
    )
    assert colour["mig@sampled"] == pytest.approx(2000 * per_image + mig_cost * 2000 / 10000)


def test_the_plan_counts_the_whole_grid_where_the_evaluation_encodes_it_ahead():
    """Metrics expected to reach ENCODE_AHEAD_REACH of the grid: its first lookup encodes all of it.

    Unless the evaluation's options rule encoding ahead out (``CachedEncoder.can_encode_ahead``).
    """
    import math

    from benchmarks.runner.estimate import encodes_grid_ahead, evaluation_costs
    from benchmarks.runner.evaluate import ENCODE_AHEAD_REACH, EvaluationOptions, expected_first_reach
    from benchmarks.runner.suite import expand_suite, load_suite
    from metrics import get_metric

    n = 3 * 6 * 40 * 32 * 32  # dSprites' grid
    metrics = {
        "unsupervised": {"n_train": 100, "batch_size": 16},
        "mig": {"n_train": 4 * n, "batch_size": 16},
        "dci": {"n_train": 500, "n_test": 250, "batch_size": 16},
    }
    assert 1 - math.exp(-(4 * n + 100) / n) >= ENCODE_AHEAD_REACH
    spec = expand_suite(load_suite("quick"))[0].replace(metrics=metrics)
    per_image = 1e-3
    costs = evaluation_costs(spec, torch.device("cpu"), per_image=per_image)
    fit = {
        e: get_metric(e).fit_cost.seconds(dict(spec.metrics[e]), get_metric(e).study, (3, 6, 40, 32, 32))
        for e in metrics
    }
    first, *rest = spec.metrics  # in the order they are evaluated
    assert costs[first] == pytest.approx(n * per_image + fit[first], rel=1e-12)
    assert {e: costs[e] for e in rest} == pytest.approx({e: fit[e] for e in rest}, rel=1e-12)
    # With --channels-last or --encode-batch nothing is encoded ahead: each entry its first reach
    reach = expected_first_reach(spec.metrics, (3, 6, 40, 32, 32))
    for options in (EvaluationOptions(channels_last=True), EvaluationOptions(encode_batch=512)):
        assert not encodes_grid_ahead(spec, torch.device("cpu"), options)
        costs = evaluation_costs(spec, torch.device("cpu"), per_image=per_image, options=options)
        expected = {e: reach[e] * per_image + fit[e] for e in metrics}
        assert {e: costs[e] for e in metrics} == pytest.approx(expected, rel=1e-12)


def test_the_evaluation_estimate_at_the_studys_settings_is_within_its_measurement():
    """The plan's estimate is within 1.5x of tools/perf/eval_cost.py's measurement at study settings.

    The measurement is a dlib_conv evaluation at the study's metric set; the estimate uses the
    encoding rate measured there.
    """
    import json

    from benchmarks.runner.estimate import estimate_evaluation_seconds
    from tools.perf.eval_cost import spec_for_estimate, study_metrics

    measured = json.loads((Path(__file__).parents[2] / "results" / "perf" / "eval_cost_cpu.json").read_text())
    per_image = measured["full"]["seconds_per_image"]
    spec = spec_for_estimate("dsprites", study_metrics("dsprites"))
    estimate = estimate_evaluation_seconds(spec, torch.device("cpu"), per_image)
    assert 1 / 1.5 <= estimate / measured["full"]["seconds"] <= 1.5


def test_the_metrics_fit_costs_are_the_committed_measurement():
    """Each study metric's ``FitCost``: eval_cost_cpu.json's fit seconds, both representations' mean."""
    import json

    from metrics import get_metric

    measured = json.loads((Path(__file__).parents[2] / "results" / "perf" / "eval_cost_cpu.json").read_text())
    per_metric = measured["full"]["per_metric"]
    for entry in per_metric:
        if "@" in entry:
            continue
        mean = (per_metric[entry]["fit"] + per_metric[f"{entry}@sampled"]["fit"]) / 2
        assert get_metric(entry).fit_cost.study_seconds == pytest.approx(mean, abs=0.006), entry


def test_a_signal_during_evaluation_is_acknowledged_the_record_written_and_the_exit_130(
    toy_suite, tmp_path, monkeypatch
):
    """A SIGTERM during scoring lets the run finish its record, then stops the sweep with exit 130.

    vaebench says so at once, the run finishes its record, the next run is not started, and the
    command exits 130 saying which.
    """
    import os
    import signal

    from benchmarks.runner import execute

    real = execute.evaluate_run
    calls = []

    def evaluate_then_signal(*args, **kwargs):
        calls.append(1)
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the sweep's handler, as from a terminal
        return real(*args, **kwargs)

    monkeypatch.setattr(execute, "evaluate_run", evaluate_then_signal)
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", toy_suite(steps=6), "--models", "vae,beta_vae", "--out", out)
    assert code == 130, output
    assert "SIGTERM received: a run in training checkpoints at its next step; a run being evaluated" in output
    assert "stopped on a signal after evaluation: the run(s) being evaluated finished" in output
    assert len(calls) == 1 and len(records(out)) == 1  # the first run recorded, the second not started
    monkeypatch.setattr(execute, "evaluate_run", real)
    code, output = invoke("run", "--suite", toy_suite(steps=6), "--models", "vae,beta_vae", "--out", out)
    assert code == 0 and len(records(out)) == 2


def test_evaluation_shows_its_progress_in_plain_lines_off_a_terminal(toy_suite, tmp_path):
    """The current metric, how many are done and an ETA, while the run is scored (not a silent process)."""
    out = tmp_path / "out"
    code, output = invoke(
        "run", "--suite", toy_suite(steps=4), "--models", "vae", "--out", out, "--progress-interval", "0"
    )
    assert code == 0, output
    assert "vae seed 0: evaluating: mig (0 of 3 metrics done" in output
    assert "metrics done" in output and "ETA" in output
