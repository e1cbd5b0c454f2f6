"""Tables and figures from synthetic run records built through the real types (no runner, no training)."""

from __future__ import annotations

import csv
import io
import logging

import numpy as np
import pytest

import metrics
from benchmarks.report import load_results, write_figures, write_tables
from benchmarks.report.presentation import higher_is_better, metric_header
from benchmarks.runner.records import RunRecord, artifact_path, record_path
from benchmarks.runner.records import write_record as _write_record
from benchmarks.runner.spec import RunSpec
from metrics.registry import METRICS
from vaebench.errors import UserError


def write_record(out_dir, record: RunRecord) -> None:
    """Write ``record`` where the runner would, as the runner writes it."""
    _write_record(record_path(out_dir, record.suite, record.run_id), record)


SUITE = "synth"
FACTORS = ["shape", "scale", "orientation", "pos_x", "pos_y"]
METRIC_SETTINGS = {
    "mig": {"n_train": 1000, "batch_size": 16, "n_bins": 20},
    "mig_chen": {"n_samples": 2000},
    "beta_vae": {"n_train": 500, "n_eval": 250, "batch_size": 64},
    "dci": {"n_train": 1000, "n_test": 500},
    "unsupervised": {"n_train": 1000},
}
TRAINING = {
    "steps": 300,
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 0.0005,
    "precision": "auto",
    "log_every": 100,
    "checkpoint_every": 1000,
}

# The grid of the main fixture: (model, strength field, strength values).
GRID = [("vae", None, [None]), ("beta_vae", "beta", [1.0, 4.0]), ("factor_vae", "gamma", [10.0, 40.0])]
SEEDS = [0, 1]
# Exact values for one cell, checked in the tables: beta_vae (beta=4), mig, seeds 0 and 1.
KNOWN_MIG = {0: 0.1234567, 1: 0.2345678}
FAILED = ("factor_vae", 40.0, 1)  # model, strength, seed of the run that diverged
NULL_METRIC = ("beta_vae", 4.0, 1, "mig_chen")  # this run's mig_chen is null


def make_record(
    model: str,
    strength: tuple[str, float] | None,
    seed: int,
    metrics: dict[str, float | None],
    *,
    suite: str = SUITE,
    dataset: str = "dsprites",
    status: str = "ok",
    failure: dict | None = None,
    final: dict[str, float] | None = None,
    n_latents: int = 4,
    training: dict | None = None,
    metric_settings: dict | None = None,
) -> RunRecord:
    """A run record as the runner builds it (``RunRecord.for_spec``), with made-up numbers."""
    config = {"architecture": "locatello", "latent_dim": n_latents, "likelihood": "bernoulli"}
    if strength is not None:
        config[strength[0]] = strength[1]
    spec = RunSpec(
        suite=suite,
        dataset=dataset,
        model=model,
        model_config=config,
        seed=seed,
        training={**TRAINING, **(training or {})},
        metrics=METRIC_SETTINGS if metric_settings is None else metric_settings,
    )
    rng = np.random.default_rng([seed, len(model), int(strength[1]) if strength else 0])
    mi = rng.uniform(0, 0.8, size=(n_latents, len(FACTORS))).round(4).tolist()
    ok = status == "ok"
    return RunRecord.for_spec(
        spec,
        status=status,
        metrics=metrics if ok else {},
        metric_seconds={k: 0.1 for k in METRIC_SETTINGS} if ok else {},
        evaluation={"points_encoded": 4000} if ok else {},
        mi_matrix={"codes_by_factors": mi, "factor_names": FACTORS} if ok else None,
        curve={"step": [100, 200, 300], "loss": [90.0, 70.0, 60.0]} if ok else {},
        final=(final or {}) if ok else {},
        failure=failure,
        timing={"train_seconds": 12.0, "eval_seconds": 3.0, "images_per_second": 1600.0},
        provenance={
            "vaebench": "0.1.0",
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "git_dirty": False,
            "python": "3.11.2",
            "torch": "2.5.1",
            "numpy": "2.4.6",
            "scipy": "1.17.1",
            "scikit_learn": "1.9.1",
            "platform": "Linux",
            "device": "cpu",
            "device_name": "cpu",
            "precision": "fp32",
            "dataset": {"name": dataset, "source": "procedural"},
            "created": f"2025-01-0{seed + 1}T00:00:00+00:00",
        },
    )


def write_artifact(out_dir, record: RunRecord, n_steps: int = 5) -> None:
    """Traversal images: latent i draws a bar whose position moves with the step, brighter for low i."""
    n_latents = record.spec["model_config"]["latent_dim"]
    images = np.zeros((n_latents, n_steps, 1, 64, 64), dtype=np.uint8)
    for i in range(n_latents):
        for j in range(n_steps):
            images[i, j, 0, 8 + 10 * j : 16 + 10 * j, 8 + 12 * i : 20 + 12 * i] = 255 - 40 * i
    path = artifact_path(out_dir, record.suite, record.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        traversals=images,
        traversal_values=np.linspace(-2.0, 2.0, n_steps),
        kl_per_dim=np.array([0.1, 2.5, 0.02, 1.2])[:n_latents],
    )


def synthetic_metrics(model: str, strength: float | None, seed: int) -> dict[str, float | None]:
    base = {"vae": 0.1, "beta_vae": 0.2, "factor_vae": 0.3}[model] + 0.004 * (strength or 0.0)
    values: dict[str, float | None] = {
        "mig": base + 0.05 * seed,
        "mig_chen": base / 2 + 0.03 * seed,
        "beta_vae_train_accuracy": 0.7 + base / 2,
        "beta_vae_eval_accuracy": 0.65 + base / 2 + 0.01 * seed,
        "dci_disentanglement": base + 0.1 - 0.02 * seed,
        "dci_completeness": base + 0.05,
        "gaussian_total_correlation": 2.0 - base + 0.1 * seed,
    }
    if model == "beta_vae" and strength == 4.0:
        values["mig"] = KNOWN_MIG[seed]
    if (model, strength, seed, "mig_chen") == NULL_METRIC:
        values["mig_chen"] = None
    return values


def write_synthetic_suite(out_dir):
    """A suite of 9 ok runs and 1 failed run (3 models, 5 configurations, 2 seeds), with artifacts."""
    for model, field, values in GRID:
        for value in values:
            for seed in SEEDS:
                strength = (field, value) if field else None
                if (model, value, seed) == FAILED:
                    record = make_record(
                        model,
                        strength,
                        seed,
                        {},
                        status="failed",
                        failure={"step": 120, "reason": "loss is nan"},
                    )
                else:
                    final = {
                        "loss": 60.0,
                        "reconstruction": 50.0 + 2 * (value or 0) + seed,
                        "kl": 20.0 - (value or 0) / 4,
                    }
                    record = make_record(
                        model, strength, seed, synthetic_metrics(model, value, seed), final=final
                    )
                    if model == "vae":
                        record.metric_warnings = {"dci": ["lbfgs failed to converge (status=1)"]}
                    write_artifact(out_dir, record)
                write_record(out_dir, record)
    return out_dir


@pytest.fixture
def results(tmp_path):
    return write_synthetic_suite(tmp_path)


def read_csv_rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# -- tables ----------------------------------------------------------------------------------------


def test_tables_are_byte_identical_across_regenerations(results):
    first = write_tables(results)
    assert [p.name for p in first] == [f"{SUITE}.csv", f"{SUITE}.md", f"{SUITE}.tex"]
    contents = [p.read_bytes() for p in first]
    second = write_tables(results, suite=SUITE)
    assert second == first
    assert [p.read_bytes() for p in second] == contents


def test_known_mean_and_std_in_markdown_and_exact_numbers_in_csv(results):
    write_tables(results)
    values = list(KNOWN_MIG.values())
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    markdown = (results / "tables" / f"{SUITE}.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| beta_vae (beta=4) |"))
    # MIG (histogram) is the first metric column.
    assert row.split(" | ")[1] == f"{mean:.3f} ± {std:.3f} (n=2)" == "0.179 ± 0.079 (n=2)"

    rows = read_csv_rows(results / "tables" / f"{SUITE}.csv")
    cell = next(r for r in rows if r["config"] == "beta_vae (beta=4)" and r["metric"] == "mig")
    assert cell["n"] == "2" and cell["seeds"] == "0 1"
    assert float(cell["mean"]) == pytest.approx(mean, rel=1e-12, abs=0)
    assert float(cell["std"]) == pytest.approx(std, rel=1e-12, abs=0)
    assert float(cell["min"]) == KNOWN_MIG[0] and float(cell["max"]) == KNOWN_MIG[1]


def test_null_metric_lowers_n_and_single_value_shows_n1(results):
    write_tables(results)
    rows = read_csv_rows(results / "tables" / f"{SUITE}.csv")
    cell = next(r for r in rows if r["config"] == "beta_vae (beta=4)" and r["metric"] == "mig_chen")
    assert cell["n"] == "1" and cell["std"] == "" and cell["seeds"] == "0"
    markdown = (results / "tables" / f"{SUITE}.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| beta_vae (beta=4) |"))
    assert row.split(" | ")[2] == f"{float(cell['mean']):.3f} (n=1)"


def test_failed_run_listed_with_step_and_reason_and_excluded(results):
    write_tables(results)
    markdown = (results / "tables" / f"{SUITE}.md").read_text()
    failed_section = markdown.split("## Failed runs")[1].split("\n## ")[0]
    assert "| dsprites | factor_vae (gamma=40) | 1 |" in failed_section
    assert "| 120 | loss is nan |" in failed_section
    rows = read_csv_rows(results / "tables" / f"{SUITE}.csv")
    cell = next(r for r in rows if r["config"] == "factor_vae (gamma=40)" and r["metric"] == "mig")
    assert cell["n"] == "1" and cell["seeds"] == "0"
    assert "10 records (9 ok, 1 failed)" in markdown
    assert 'dci warned in 2 of 10 runs (e.g. "lbfgs failed to converge (status=1)")' in markdown


def test_headers_say_which_mig_and_direction(results):
    write_tables(results)
    markdown = (results / "tables" / f"{SUITE}.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| model | MIG"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[1:3] == ["MIG (histogram, dlib) ↑", "MIG (Chen et al., log K) ↑"]
    assert columns[-2:] == ["Reconstruction (final) ↓", "KL (final) ↓"]
    assert "gaussian_total_correlation ↓" in columns
    # Headline scores first, in the documented order; other metrics after them.
    assert columns.index("DCI disentanglement ↑") < columns.index("beta_vae_train_accuracy ↑")
    tex = (results / "tables" / f"{SUITE}.tex").read_text()
    assert "MIG (histogram, dlib) $\\uparrow$" in tex and "MIG (Chen et al., log K) $\\uparrow$" in tex


def test_directions_and_headers_come_from_the_registry():
    assert higher_is_better("gaussian_total_correlation") is False
    assert higher_is_better("sampled_gaussian_total_correlation") is False  # a name@sampled entry's key
    assert higher_is_better("factor_vae_active_dims") is None  # a count: neither direction
    assert higher_is_better("kl") is False and higher_is_better("not_registered") is None
    assert metric_header("mig") == "MIG (histogram, dlib) ↑"
    assert metric_header("sampled_mutual_info_score") == "sampled_mutual_info_score ↓"
    assert metric_header("not_registered") == "not_registered —"


@pytest.fixture
def toy_metric(monkeypatch):
    """Register a toy metric for one test only.

    Its outputs: ``toy_score`` (labelled, a headline score ranked before every built-in one) and
    ``toy_count`` (no label, no direction).
    """
    METRICS.names()  # load the built-in metrics before the registry is copied
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))  # restored after the test

    @metrics.register_metric(
        "toy",
        inputs="codes_only",
        higher_is_better={"toy_score": True, "toy_count": None},
        study={"n_train": 100, "batch_size": 10},
        fast={"n_train": 100, "batch_size": 10},
        presentation=metrics.Presentation(
            labels={"toy_score": "Toy score (test)"},
            headline={"toy_score": 0},
            note="`toy` is a metric registered by a test",
            note_topic="About the toy",
        ),
    )
    def toy(codes):
        """A score for tests."""
        return {"toy_score": 1.0, "toy_count": 2.0}

    yield "toy"


def test_a_newly_registered_metric_appears_with_its_label_in_tables_and_figures(tmp_path, toy_metric):
    for model, value in (("vae", None), ("beta_vae", 4.0)):
        for seed in (0, 1):
            scores = {"mig": 0.1 * seed, "toy_score": 0.5 + 0.1 * seed + (value or 0), "toy_count": 3.0}
            record = make_record(
                model,
                ("beta", value) if value else None,
                seed,
                scores,
                suite="toy",
                final={"kl": 1.0},
                metric_settings={**METRIC_SETTINGS, "toy": {}},
            )
            write_record(tmp_path, record)
    write_tables(tmp_path)
    markdown = (tmp_path / "tables" / "toy.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| model |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    # The headline rank puts it first; the unlabelled key is shown by its name, with no direction.
    assert columns[1:3] == ["Toy score (test) ↑", "MIG (histogram, dlib) ↑"]
    assert "toy_count —" in columns
    assert "| vae | 0.550 ± 0.071 (n=2) |" in markdown
    assert "Toy score (test) ↑: configuration means range from 0.550 (vae) to 4.550" in markdown
    rows = read_csv_rows(tmp_path / "tables" / "toy.csv")
    assert {r["header"] for r in rows if r["metric"] == "toy_score"} == {"Toy score (test) ↑"}
    assert {r["higher_is_better"] for r in rows if r["metric"] == "toy_count"} == {""}
    # Its note is printed with the protocol of the records that ran it.
    assert "- **About the toy:** `toy` is a metric registered by a test\n" in markdown
    assert [c for c in load_results(tmp_path, "toy").columns if c.startswith("metric.")][:2] == [
        "metric.toy_score",
        "metric.mig",
    ]
    assert "distributions_dsprites.png" in {p.name for p in write_figures(tmp_path)}


def test_best_hyperparameter_is_chosen_by_median_not_mean(tmp_path):
    # beta=1: seeds give 0.0, 0.6, 0.6 (mean 0.4, median 0.6); beta=2: 0.5 each (mean 0.5, median 0.5).
    # Total correlation is lower-is-better: beta=2 has the lower median there.
    per_point = {1.0: [0.0, 0.6, 0.6], 2.0: [0.5, 0.5, 0.5]}
    tc = {1.0: [9.0, 1.0, 3.0], 2.0: [2.0, 2.0, 2.0]}  # medians 3.0 vs 2.0, means 4.33 vs 2.0
    for beta, mig in per_point.items():
        for seed, value in enumerate(mig):
            metrics = {"mig": value, "gaussian_total_correlation": tc[beta][seed]}
            record = make_record("beta_vae", ("beta", beta), seed, metrics, suite="median", final={"kl": 1.0})
            write_record(tmp_path, record)
    write_tables(tmp_path, suite="median")
    markdown = (tmp_path / "tables" / "median.md").read_text()
    best = markdown.split("best hyperparameter per model")[1].split("\n## ")[0]
    row = next(line for line in best.splitlines() if line.startswith("| beta_vae |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "0.600 (beta=1)"
    assert cells[2] == "2.000 (beta=2)"
    mean_row = next(line for line in markdown.splitlines() if line.startswith("| beta_vae (beta=1) |"))
    assert "0.400 ± 0.346 (n=3)" in mean_row


def test_single_seed_says_differences_are_not_tested(tmp_path):
    for model, value in (("vae", None), ("beta_vae", 4.0)):
        record = make_record(
            model, ("beta", value) if value else None, 0, {"mig": 0.1 + (value or 0) / 10}, suite="one"
        )
        write_record(tmp_path, record)
    write_tables(tmp_path)
    markdown = (tmp_path / "tables" / "one.md").read_text()
    assert "differences between models are not tested against seed noise" in markdown
    means = markdown.split("best hyperparameter")[0]
    rows = [line for line in means.splitlines() if line.startswith(("| vae |", "| beta_vae (beta=4) |"))]
    assert rows == ["| beta_vae (beta=4) | 0.500 (n=1) |", "| vae | 0.100 (n=1) |"]


def test_two_seed_notes_compare_spread_with_seed_std(results):
    write_tables(results)
    markdown = (results / "tables" / f"{SUITE}.md").read_text()
    note = next(
        line for line in markdown.splitlines() if "MIG (histogram, dlib) ↑: configuration means" in line
    )
    cells = [r for r in read_csv_rows(results / "tables" / f"{SUITE}.csv") if r["metric"] == "mig"]
    means = [float(r["mean"]) for r in cells]
    seeded = [(int(r["n"]), float(r["std"])) for r in cells if r["std"]]
    pooled = np.sqrt(sum((n - 1) * sd**2 for n, sd in seeded) / sum(n - 1 for n, _ in seeded))
    spread = max(means) - min(means)
    assert len(seeded) == 4 and spread > pooled  # factor_vae (gamma=40) has one seed (the other failed)
    assert f"spread of {spread:.3f} across 5 configurations" in note
    assert f"The spread exceeds the pooled seed std {pooled:.3f} ({spread / pooled:.1f}×)" in note
    assert "1 configuration with one value not in the pooled std" in note
    assert "not tested against seed noise" not in markdown


def test_corrupt_record_is_reported_by_path_and_left_alone(tmp_path, caplog):
    for seed in (0, 1):
        record = make_record("vae", None, seed, {"mig": 0.1 * (seed + 1)}, suite="c", final={"kl": 3.0})
        write_record(tmp_path, record)
    bad = tmp_path / "runs" / "c" / "broken-000000000000.json"
    bad.write_text('{"schema": "vaebench.run/1", "run_id": ')
    wrong = tmp_path / "runs" / "c" / "other-000000000000.json"
    wrong.write_text('{"schema": "something/2"}')
    malformed = make_record("vae", None, 0, {"mig": 0.9}, suite="c")
    malformed.spec["seed"] = "zero"
    _write_record(tmp_path / "runs" / "c" / "typed-000000000000.json", malformed)
    before = bad.read_bytes(), wrong.read_bytes()
    with caplog.at_level(logging.WARNING, logger="benchmarks.report"):
        tables = write_tables(tmp_path)
        figures = write_figures(tmp_path)
    assert (bad.read_bytes(), wrong.read_bytes()) == before
    assert len(tables) == 3 and figures  # the readable records still give tables and figures
    for name in ("broken", "other", "typed"):
        path = f"runs/c/{name}-000000000000.json"
        # Reported twice (tables, figures) by its path relative to the output directory.
        assert sum(path in m for m in caplog.messages) == 2
        assert f"`{path}`" in (tmp_path / "tables" / "c.md").read_text()
    markdown = (tmp_path / "tables" / "c.md").read_text()
    assert "2 records (2 ok, 0 failed)" in markdown and "0.150 ± 0.071 (n=2)" in markdown
    assert "expected schema 'vaebench.run/" in markdown and "found 'something/2'" in markdown
    # refused by the record's own checks (its id is neither its file's name nor its spec's hash)
    assert "typed-000000000000.json is invalid: run_id" in markdown


def test_unknown_suite_is_refused(results):
    with pytest.raises(FileNotFoundError, match="nope"):
        write_tables(results, suite="nope")


# -- figures ---------------------------------------------------------------------------------------


def test_figures_are_written(results):
    paths = write_figures(results)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "distributions_dsprites.png",
            "strength_dsprites.png",
            "tradeoff_dsprites.png",
            "mi_dsprites.png",
            "traversals_dsprites_beta_vae.png",
            "traversals_dsprites_factor_vae.png",
            "traversals_dsprites_vae.png",
        ]
    )
    for path in paths:
        assert path.parent == results / "figures" / SUITE
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_missing_artifact_skips_that_models_traversals_with_a_message(tmp_path, caplog):
    # Two models, one seed; only beta_vae has its artifact. A stale traversal figure of vae from
    # an earlier regeneration must go, so the folder matches the records.
    for model, strength in (("vae", None), ("beta_vae", ("beta", 4.0))):
        record = make_record(
            model, strength, 0, {"mig": 0.3}, suite="part", final={"kl": 1.0, "reconstruction": 9}
        )
        write_record(tmp_path, record)
        if model == "beta_vae":
            write_artifact(tmp_path, record)
    stale = tmp_path / "figures" / "part" / "traversals_dsprites_vae.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    with caplog.at_level(logging.WARNING, logger="benchmarks.report"):
        paths = write_figures(tmp_path, suite="part")
    assert [p.name for p in paths if p.name.startswith("traversals_")] == ["traversals_dsprites_beta_vae.png"]
    assert len(paths) == 5 and not stale.exists()
    missing = [m for m in caplog.messages if "no traversal artifact" in m]
    assert len(missing) == 1 and "vae seed 0 at artifacts/part/vae-" in missing[0]


def test_figures_with_one_model_one_seed_and_no_strength(tmp_path):
    record = make_record(
        "vae", None, 0, {"mig": 0.2, "sap": None}, suite="tiny", final={"reconstruction": 1, "kl": 2}
    )
    write_record(tmp_path, record)
    paths = write_figures(tmp_path)
    first = [p.read_bytes() for p in paths]
    assert write_figures(tmp_path) == paths and [p.read_bytes() for p in paths] == first  # reproducible PNGs
    assert {p.name for p in paths} == {
        "distributions_dsprites.png",
        "tradeoff_dsprites.png",
        "mi_dsprites.png",
    }  # no strength figure: no run has a regularisation strength
    write_tables(tmp_path)
    markdown = (tmp_path / "tables" / "tiny.md").read_text()
    assert "| vae | 0.200 (n=1) | — |" in markdown  # sap is null in the only run
    assert "Only one configuration (vae): no comparison between models." in markdown
    assert "best hyperparameter" not in markdown  # nothing to choose between


# -- README section --------------------------------------------------------------------------------


def test_readme_section_is_replaced_with_means_from_the_records(results, tmp_path):
    from benchmarks.report.readme import update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n<!-- results:{SUITE} -->\nold\n<!-- /results:{SUITE} -->\n\nrest\n")
    update_readme(readme, results, SUITE)
    text = readme.read_text()
    assert "old" not in text and text.startswith("# title") and text.endswith("rest\n")
    row = next(line for line in text.splitlines() if line.startswith("| beta_vae (beta=4) |"))
    values = list(KNOWN_MIG.values())
    assert row.split(" | ")[1] == f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
    assert "9 of 10 runs ok" in text and "(cells: mean ± std over seeds)" in text
    assert "![" not in text  # 2 seeds: the analyses cannot be shown
    update_readme(readme, results, SUITE)  # idempotent
    assert readme.read_text() == text


def test_readme_section_of_a_study_has_a_dataset_column_and_its_analysis_figures(tmp_path):
    from benchmarks.report.readme import results_section

    for dataset, offset in (("dsprites", 0.0), ("shapes3d", 0.5)):
        for seed in (0, 1, 2):
            record = make_record(
                "beta_vae", ("beta", 4.0), seed, {"mig": offset + 0.1 * seed}, suite="st", dataset=dataset
            )
            write_record(tmp_path, record)
    assert "![" not in results_section(tmp_path, "st")  # nothing analysed yet
    folder = tmp_path / "analysis" / "st"
    folder.mkdir(parents=True)
    for name in ("agreement_dsprites.png", "variance_dsprites.png", "variance_shapes3d.png"):
        (folder / name).write_bytes(b"png")
    text = results_section(tmp_path, "st")
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    assert rows[0][:3] == ["| dataset", "model", "MIG (histogram, dlib) ↑"]
    assert [r[:3] for r in rows[1:]] == [
        ["| dsprites", "beta_vae (beta=4)", "0.100 ± 0.100"],
        ["| shapes3d", "beta_vae (beta=4)", "0.600 ± 0.100"],
    ]
    figures = [line for line in text.splitlines() if line.startswith("![")]
    assert [f.rsplit("/", 1)[1] for f in figures] == [
        "agreement_dsprites.png)", "variance_dsprites.png)", "variance_shapes3d.png)",
    ]  # fmt: skip
    assert f"{(folder / 'summary.md').as_posix()}" in text


def test_readme_without_the_markers_is_refused(results, tmp_path):
    from benchmarks.report.readme import update_readme

    readme = tmp_path / "README.md"
    readme.write_text("# nothing to replace\n")
    with pytest.raises(UserError, match="no '<!-- results:"):
        update_readme(readme, results, SUITE)
