"""load_results / melt_results / vaebench export on synthetic records with known values."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from test_report import KNOWN_MIG, SUITE, make_record, write_record, write_synthetic_suite
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.report import load_results, melt_results, write_tables
from benchmarks.report.runs_frame import read_runs, record_row, results_frame, summary_stats
from benchmarks.runner.records import record_path


@pytest.fixture
def results(tmp_path):
    return write_synthetic_suite(tmp_path)


def test_one_row_per_run_with_stable_typed_columns(results):
    df = load_results(results)
    assert len(df) == 10 and df["run_id"].is_unique
    assert list(df.columns[:10]) == [
        "run_id", "suite", "dataset", "model", "seed", "status",
        "strength_field", "strength_value", "hyperparameters", "config",
    ]  # fmt: skip
    assert str(df["seed"].dtype) == "Int64"
    for column in ("run_id", "suite", "dataset", "model", "status", "config", "config.architecture"):
        assert str(df[column].dtype) == "string", column
    for column in ("metric.mig", "metric.mig_chen", "final.kl", "strength_value", "config.beta"):
        assert df[column].dtype == np.float64, column
    assert str(df["config.latent_dim"].dtype) == "Int64" and str(df["training.steps"].dtype) == "Int64"
    assert str(df["failure_step"].dtype) == "Int64"
    # Headline metrics first, in the documented order, then the rest by name.
    metrics = [c for c in df.columns if c.startswith("metric.")]
    assert metrics[:3] == ["metric.mig", "metric.mig_chen", "metric.beta_vae_eval_accuracy"]
    assert {"settings.mig.n_bins", "spec.representation", "training.learning_rate"} <= set(df.columns)


def test_known_values_missing_values_and_the_failed_run(results):
    df = load_results(results)
    cell = df[df["config"] == "beta_vae (beta=4)"].sort_values("seed")
    assert cell["metric.mig"].tolist() == [KNOWN_MIG[0], KNOWN_MIG[1]]
    assert cell["seed"].tolist() == [0, 1] and (cell["hyperparameters"] == "beta=4").all()
    assert cell["metric.mig_chen"].isna().tolist() == [False, True]  # null in the record -> NaN
    assert cell["final.reconstruction"].tolist() == [58.0, 59.0]
    vae = df[df["model"] == "vae"]
    assert vae["strength_field"].isna().all() and vae["strength_value"].isna().all()
    assert vae["config.beta"].isna().all() and (vae["config"] == "vae").all()
    failed = df[df["status"] == "failed"]
    assert failed["config"].tolist() == ["factor_vae (gamma=40)"] and failed["seed"].tolist() == [1]
    assert failed["failure_step"].tolist() == [120] and failed["failure_reason"].tolist() == ["loss is nan"]
    assert failed["metric.mig"].isna().all()
    assert len(load_results(results, include_failed=False)) == 9


def test_long_form_has_one_row_per_run_and_metric_value(results):
    df = load_results(results)
    long = melt_results(df)
    assert long.equals(load_results(results, long=True))
    value_columns = [c for c in df.columns if c.startswith(("metric.", "final."))]
    assert len(long) == int(df[value_columns].notna().to_numpy().sum())
    assert list(long.columns[-3:]) == ["representation", "metric", "value"]
    row = long[(long["config"] == "beta_vae (beta=4)") & (long["metric"] == "mig") & (long["seed"] == 1)]
    assert row["value"].tolist() == [KNOWN_MIG[1]] and row["representation"].tolist() == ["mean"]
    assert set(long.loc[long["metric"] == "final.kl", "representation"].isna()) == {True}


def test_different_training_settings_are_never_one_configuration(tmp_path):
    # Same model and beta, two values of steps: two rows in the frame's labels and in the table.
    for steps in (300, 600):
        for seed in (0, 1):
            mig = {"mig": 0.1 * seed + steps / 1000}
            record = make_record("beta_vae", ("beta", 4.0), seed, mig, suite="s", training={"steps": steps})
            write_record(tmp_path, record)
    df = load_results(tmp_path, "s")
    assert sorted(df["config"].unique()) == ["beta_vae (beta=4, steps=300)", "beta_vae (beta=4, steps=600)"]
    stats = summary_stats(df, ["metric.mig"])
    assert stats["n"].tolist() == [2, 2]
    write_tables(tmp_path, "s")
    markdown = (tmp_path / "tables" / "s.md").read_text()
    assert "| beta_vae (beta=4, steps=300) |" in markdown and "| beta_vae (beta=4, steps=600) |" in markdown


def test_summary_stats_match_numpy(results):
    df = load_results(results, include_failed=False)
    stats = summary_stats(df, ["metric.mig"]).loc[("dsprites", "beta_vae (beta=4)", "metric.mig")]
    values = np.array(list(KNOWN_MIG.values()))
    assert stats["n"] == 2 and stats["seeds"] == "0 1"
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-15)
    assert stats["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert stats["q25"] == pytest.approx(np.quantile(values, 0.25), rel=1e-15)


def test_sampled_representation_and_protocol_columns():
    record = make_record("beta_vae", ("beta", 4.0), 0, {"gaussian_total_correlation": 1.5})
    record.metrics["sampled_gaussian_total_correlation"] = 0.5
    record.protocol = {"architecture": "dlib_conv", "init": "tf", "representation": "mean"}
    row = record_row(record)
    assert row["metric.gaussian_total_correlation"] == 1.5
    assert row["metric_sampled.gaussian_total_correlation"] == 0.5
    assert row["protocol.init"] == "tf" and "metric.sampled_gaussian_total_correlation" not in row


def test_records_read_back_give_the_frame_of_the_records_written(tmp_path):
    written = []
    for seed in (0, 1):
        mig = {"mig": 0.2 + 0.1 * seed}
        record = make_record("beta_vae", ("beta", 4.0), seed, mig, suite="r", final={"kl": 1.0})
        write_record(tmp_path, record)
        written.append(record)
    pd.testing.assert_frame_equal(load_results(tmp_path, "r"), results_frame(written))


def test_a_schema_1_record_reads_as_its_migrated_current_form(tmp_path):
    record = make_record("beta_vae", ("beta", 4.0), 0, {"mig": 0.3}, suite="old", final={"kl": 1.0})
    # Schema vaebench.run/1 kept the count of encoded points among the metrics' seconds.
    old = json.loads(record.to_json())
    old["schema"] = "vaebench.run/1"
    old["metric_seconds"]["points_encoded"] = old.pop("evaluation")["points_encoded"]
    path = record_path(tmp_path, "old", record.run_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    before = path.read_bytes()
    runs = read_runs(tmp_path, "old")
    migrated = runs.records[record.run_id]
    assert migrated.evaluation == {"points_encoded": 4000} and "points_encoded" not in migrated.metric_seconds
    pd.testing.assert_frame_equal(runs.frame, results_frame([record]))
    assert not runs.skipped and path.read_bytes() == before  # read, never rewritten


def test_unreadable_and_malformed_records_are_skipped_with_their_path(tmp_path, caplog):
    record = make_record("vae", None, 0, {"mig": 0.3}, suite="c")
    write_record(tmp_path, record)
    (tmp_path / "runs" / "c" / "broken.json").write_text("{")
    bad = make_record("vae", None, 1, {"mig": 0.3}, suite="c")
    bad.spec["seed"] = "one"
    (tmp_path / "runs" / "c" / "typed.json").write_text(bad.to_json())
    with caplog.at_level(logging.WARNING, logger="benchmarks.report"):
        df = load_results(tmp_path, "c")
    assert len(df) == 1
    assert any("broken.json" in m for m in caplog.messages)
    assert any("typed.json" in m and "is invalid" in m for m in caplog.messages)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_results(tmp_path, "nope")


# -- vaebench export -------------------------------------------------------------------------------


def test_export_csv_and_json_round_trip(results, tmp_path):
    runner = CliRunner()
    target = tmp_path / "x" / "runs.csv"
    got = runner.invoke(app, ["export", "--out", str(results), "--suite", SUITE, "--to", str(target)])
    assert got.exit_code == 0, got.output
    back = pd.read_csv(target)
    df = load_results(results, SUITE)
    assert list(back.columns) == list(df.columns) and len(back) == len(df)
    assert back["metric.mig"].to_numpy() == pytest.approx(df["metric.mig"].to_numpy(float), nan_ok=True)
    got = runner.invoke(app, ["export", "--format", "json", "--out", str(results)])
    assert got.exit_code == 0, got.output
    rows = json.loads((results / "export" / "all.json").read_text())
    assert len(rows) == 10 and rows[0]["run_id"] == df["run_id"].iloc[0]
    assert {r["seed"] for r in rows} == {0, 1}


def test_export_parquet_without_pyarrow_names_the_fix(results, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    got = CliRunner().invoke(app, ["export", "--format", "parquet", "--out", str(results)])
    assert got.exit_code == 2
    assert "pip install pyarrow" in " ".join(got.output.split())


def test_export_parquet_keeps_dtypes(results):
    pytest.importorskip("pyarrow")
    got = CliRunner().invoke(app, ["export", "--format", "parquet", "--out", str(results)])
    assert got.exit_code == 0, got.output
    back = pd.read_parquet(results / "export" / "all.parquet")
    assert str(back["seed"].dtype) == "Int64" and back["metric.mig"].dtype == np.float64


def test_export_bad_format_and_suite_exit_2(results):
    runner = CliRunner()
    got = runner.invoke(app, ["export", "--format", "xml", "--out", str(results)])
    assert got.exit_code == 2 and "xml" in got.output
    got = runner.invoke(app, ["export", "--out", str(results), "--suite", "nope"])
    assert got.exit_code == 2 and "nope" in got.output and SUITE in got.output
