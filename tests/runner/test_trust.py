"""The runner under faults and bad input, as a new user probing it would meet them: one test each."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner import NaNAfter12, comparable, invoke, records  # noqa: F401  (registers nan_after_12)

from benchmarks.runner.execute import SIGNAL_AT_STEP
from benchmarks.runner.progress import format_rate

CLI = (sys.executable, "-m", "benchmarks.cli")  # toy_squares is a built-in dataset
# This checkout first on the path, whatever directory a test runs the CLI in.
PYTHONPATH = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])
)


def _cli(*args, env=None):
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONPATH": PYTHONPATH,
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
            **(env or {}),
        },
    )


def _wait_for_checkpoint(out: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not list((out / "checkpoints" / "toy").glob("*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    assert list((out / "checkpoints" / "toy").glob("*.pt")), "no checkpoint appeared"


@pytest.mark.slow  # trains through subprocesses
def test_sigint_during_a_force_sweep_then_the_same_command_resumes(toy_suite, tmp_path):
    """--force discards old checkpoints once; the rerun of the interrupted forced sweep resumes it.

    The forced sweep sends itself SIGINT at step 25, after its own checkpoints of steps 10 and 20.
    """
    suite = toy_suite(steps=80)
    args = ("run", "--suite", suite, "--models", "vae", "--device", "cpu", "--force")
    reference = _cli(*args, "--out", tmp_path / "ref")
    assert reference.wait(timeout=300) == 0, reference.stdout.read().decode()

    out = tmp_path / "out"
    first = _cli(*args, "--out", out)
    assert first.wait(timeout=300) == 0  # an old record exists now; --force must rerun it
    old = records(out)
    forced = _cli(*args, "--out", out, env={SIGNAL_AT_STEP: "SIGINT@25"})
    code = forced.wait(timeout=300)
    log = forced.stdout.read().decode()
    assert code == 130 and "Run the same command again to resume" in log, log
    assert list((out / "sweeps" / "toy").glob("force-*.json")), "the forced sweep's promise is kept"

    again = _cli(*args, "--out", out)
    assert again.wait(timeout=300) == 0
    log = again.stdout.read().decode()
    assert "Resuming the interrupted --force sweep" in log and "resumed at step" in log, log
    (ref,), (res,) = records(tmp_path / "ref").values(), records(out).values()
    assert res["timing"]["resumed_from_step"] > 0
    assert comparable(res) == comparable(ref)
    assert res["provenance"]["created"] >= next(iter(old.values()))["provenance"]["created"]
    assert not list((out / "sweeps" / "toy").glob("force-*.json")), (
        "a finished forced sweep leaves no promise"
    )


@pytest.mark.parametrize(
    "extra, bad",
    [
        ("\n[metrics.overrides.mig]\nn_binz = 10\n", "n_binz"),
        ("\n[metrics.overrides.sap]\ncontinuous = true\n", "continuous"),
    ],
)
def test_a_typo_in_a_metric_setting_exits_2_before_training(toy_suite, tmp_path, extra, bad):
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", toy_suite(extra=extra), "--out", out)
    assert code == 2, output
    assert bad in output and "valid:" in output and "n_train" in output
    assert not (out / "checkpoints").exists() and not records(out)


def test_retry_failed_reruns_only_the_failed_runs_and_the_exit_code_says_so(toy_suite, tmp_path):
    out = tmp_path / "out"
    suite = toy_suite()
    code, output = invoke("run", "--suite", suite, "--models", "nan_after_12,vae", "--out", out)
    assert code == 1
    before = records(out)
    # A plain rerun does not hide the failure: it lists it again and exits non-zero.
    code, output = invoke("run", "--suite", suite, "--models", "nan_after_12,vae", "--out", out)
    assert code == 1, output
    assert "1 run(s) failed" in output and "--retry-failed" in output and "step 12" in output
    assert records(out) == before
    # --retry-failed reruns the failed one only; it fails again (deterministically) and says so.
    code, output = invoke(
        "run", "--suite", suite, "--models", "nan_after_12,vae", "--out", out, "--retry-failed"
    )
    assert code == 1 and "1 skipped" in output, output
    after = records(out)
    failed = [k for k, r in after.items() if r["status"] == "failed"]
    ok = [k for k, r in after.items() if r["status"] == "ok"]
    assert after[ok[0]] == before[ok[0]]  # untouched
    assert after[failed[0]]["provenance"]["created"] >= before[failed[0]]["provenance"]["created"]
    # Once the failed record is gone (fixed), the sweep is clean again.
    (out / "runs" / "toy" / f"{failed[0]}.json").unlink()
    code, output = invoke("run", "--suite", suite, "--models", "vae", "--out", out)
    assert code == 0, output


@pytest.mark.slow  # trains through a subprocess
def test_without_a_terminal_a_plain_progress_line_is_printed_every_interval(toy_suite, tmp_path):
    proc = _cli(
        "run",
        "--suite",
        toy_suite(steps=60),
        "--models",
        "vae",
        "--out",
        tmp_path / "o",
        "--progress-interval",
        "0",
    )
    assert proc.wait(timeout=300) == 0
    lines = [line for line in proc.stdout.read().decode().splitlines() if ": step " in line]
    assert len(lines) >= 10, lines
    assert "steps/s" in lines[-1] and "ETA" in lines[-1] and "sweep 0/1 runs done" in lines[-1]
    assert any("/60 (" in line for line in lines)


def test_rates_below_ten_steps_per_second_keep_a_decimal():
    assert format_rate(0.4) == "0.4 steps/s" and format_rate(3.14) == "3.1 steps/s"
    assert format_rate(27.2) == "27 steps/s" and format_rate(1204.0) == "1,204 steps/s"


def test_records_tables_checkpoints_and_artifacts_are_readable_by_colleagues(toy_suite, tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)[0] == 0
        assert invoke("table", "--out", out)[0] == 0
    finally:
        os.umask(old)
    files = [
        *(out / "runs" / "toy").glob("*.json"),
        *(out / "checkpoints" / "toy").glob("*.pt"),
        *(out / "artifacts" / "toy").glob("*.npz"),
        *(out / "tables").glob("*"),
    ]
    assert len(files) >= 4
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_eval_of_a_run_without_its_checkpoint_says_checkpoints_are_not_committed(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)[0] == 0
    ((run_id, _),) = records(out).items()
    (out / "checkpoints" / "toy" / f"{run_id}.pt").unlink()
    code, output = invoke("eval", run_id, "--out", out, "--device", "cpu")
    assert code == 2 and "never committed" in output and "vaebench run --suite toy --out DIR" in output
    # the hint retrains elsewhere and says where the numbers come back: never "same numbers" anywhere
    assert "only on the same CPU or GPU type" in output and "do not overwrite committed results" in output


@pytest.mark.slow  # trains through a subprocess
def test_an_ad_hoc_run_never_writes_into_the_committed_results(toy_suite, tmp_path, monkeypatch):
    """The default output directory is ./vaebench-results (or $VAEBENCH_OUT), not ./results."""
    monkeypatch.chdir(tmp_path)
    proc = _cli("run", "--suite", toy_suite(), "--models", "vae", env={"VAEBENCH_OUT": ""})
    assert proc.wait(timeout=300) == 0, proc.stdout.read().decode()
    assert (tmp_path / "vaebench-results" / "runs" / "toy").is_dir() and not (tmp_path / "results").exists()


def test_an_unreadable_only_sweep_is_not_headed_as_failed_runs(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)[0] == 0
    (path,) = (out / "runs" / "toy").glob("*.json")
    path.write_text("{ truncated")
    code, output = invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)
    assert code == 1 and "failed:" not in output and "unreadable record(s)" in output


def test_points_encoded_is_a_count_beside_the_seconds(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--models", "vae", "--out", out)[0] == 0
    (rec,) = records(out).values()
    assert "points_encoded" not in rec["metric_seconds"]
    assert isinstance(rec["evaluation"]["points_encoded"], int) and rec["evaluation"]["points_encoded"] > 0


def test_every_record_carries_its_protocol(toy_suite, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--suite", toy_suite(), "--out", out)[0] == 0
    for rec in records(out).values():
        protocol = rec["protocol"]  # the run's full spec diffed against the study, computed
        assert protocol["reference"] == "unsupervised_study_v1" and protocol["matches"] is False
        deviations = {d["key"]: d for d in protocol["deviations"]}
        assert deviations["architecture"]["value"] == "burgess"
        assert deviations["architecture"]["reference"] == "dlib_conv"
        assert deviations["dataset"]["value"] == "toy_squares" and deviations["steps"]["value"] == 30
        assert "precision" not in deviations  # it ran in fp32 on the CPU, as the study did


def test_help_shows_no_stray_type_tags():
    code, output = invoke("run", "--help")
    assert code == 0 and "<bool>" not in output and "--retry-failed" in output


def test_the_plan_json_states_every_runs_protocol_and_settings(toy_suite, tmp_path):
    code, output = invoke("plan", "--suite", toy_suite(), "--json", "--out", tmp_path / "o")
    assert code == 0
    result = subprocess.run(
        [*CLI, "plan", "--suite", str(toy_suite()), "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2 and {r["model"] for r in rows} == {"vae", "beta_vae"}
    for row in rows:
        assert {"run_id", "pack_id", "dataset", "seed", "model_config", "training", "protocol"} <= set(row)
        assert row["model_config"]["init"] == "torch" and row["training"]["steps"] == 30
        assert row["state"] == "pending"


def test_a_dataset_without_its_official_file_blocks_only_its_runs_before_any_training(toy_suite, tmp_path):
    """The paper suite's official-file datasets: reported before training, the rest of the suite runs."""
    suite = (
        toy_suite()
        .read_text()
        .replace('datasets = ["toy_squares"]', 'datasets = ["toy_squares", "smallnorb"]')
    )
    path = tmp_path / "mixed.toml"
    path.write_text(suite)
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", path, "--models", "vae", "--out", out)
    assert code == 1, output
    assert (
        "blocked 1 run(s) on smallnorb" in output and "1 run(s) blocked on a missing official file" in output
    )
    assert output.index("blocked 1 run(s)") < output.index("done ")  # said before any training
    assert [r["spec"]["dataset"] for r in records(out).values()] == ["toy_squares"]


def test_a_suite_scores_the_sampled_representation_under_sampled_keys(toy_suite, tmp_path):
    suite = (
        toy_suite()
        .read_text()
        .replace(
            'names = ["mig", "sap", "unsupervised"]',
            'names = ["mig", "unsupervised"]\nsampled = ["unsupervised"]',
        )
    )
    path = tmp_path / "sampled.toml"
    path.write_text(suite)
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", path, "--models", "vae", "--out", out)
    assert code == 0, output
    (rec,) = records(out).values()
    mean, sampled = (
        rec["metrics"]["gaussian_total_correlation"],
        rec["metrics"]["sampled_gaussian_total_correlation"],
    )
    assert mean is not None and sampled is not None and mean != sampled
    assert "unsupervised@sampled" in rec["metric_seconds"]
