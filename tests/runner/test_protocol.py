"""The paper suite trains what unsupervised_study_v1 trained; every difference is listed.

The study is disentanglement_lib's; every difference of a run from it is computed from the run's full
spec.
"""

import collections
import re

import pytest

from benchmarks.runner.protocol import compare_run, compare_runs, load_reference
from benchmarks.runner.suite import SuiteError, expand_suite, load_suite, override_suite, parse_suite

STUDY_DATASETS = {
    "dsprites",
    "color_dsprites",
    "noisy_dsprites",
    "scream_dsprites",
    "smallnorb",
    "cars3d",
    "shapes3d",
}
# sweep.py's grids: six points per model.
STUDY_GRIDS = {
    "beta_vae": ("beta", {1.0, 2.0, 4.0, 6.0, 8.0, 16.0}),
    "annealed_vae": ("c_max", {5.0, 10.0, 25.0, 50.0, 75.0, 100.0}),
    "factor_vae": ("gamma", {10.0, 20.0, 30.0, 40.0, 50.0, 100.0}),
    "dip_vae_i": ("lambda_od", {1.0, 2.0, 5.0, 10.0, 20.0, 50.0}),
    "dip_vae_ii": ("lambda_od", {1.0, 2.0, 5.0, 10.0, 20.0, 50.0}),
    "beta_tcvae": ("beta", {1.0, 2.0, 4.0, 6.0, 8.0, 10.0}),
}


@pytest.fixture(scope="module")
def paper():
    return expand_suite(load_suite("paper"))


def test_the_paper_suite_covers_the_studys_seven_datasets_grids_and_seeds(paper):
    assert {s.dataset for s in paper} == STUDY_DATASETS
    assert len(paper) == 7 * 6 * 6 * 10
    for model, (field, values) in STUDY_GRIDS.items():
        runs = [s for s in paper if s.model == model]
        assert {s.full_model_config()[field] for s in runs} == values, model
        assert {s.seed for s in runs} == set(range(10))
    assert collections.Counter(s.model for s in paper).keys() == STUDY_GRIDS.keys()


def test_beta_tcvaes_dataset_size_is_the_number_of_training_images(paper):
    # N in log q(z) ~ logsumexp_j log q(z | x_j) - log(N M): every stored image, unscored factors included
    sizes = {s.dataset: s.full_model_config()["dataset_size"] for s in paper if s.model == "beta_tcvae"}
    assert sizes == {
        "dsprites": 737_280,
        "color_dsprites": 737_280,
        "noisy_dsprites": 737_280,
        "scream_dsprites": 737_280,
        "smallnorb": 48_600,  # 5 categories x 10 instances x 9 elevations x 18 azimuths x 6 lightings
        "cars3d": 17_568,
        "shapes3d": 480_000,
    }


def test_every_dataset_of_the_paper_suite_trains_with_the_bernoulli_likelihood(paper):
    assert {(s.dataset, s.full_model_config()["likelihood"]) for s in paper} == {
        (d, "bernoulli") for d in STUDY_DATASETS
    }


def test_the_paper_suite_builds_the_studys_network_loss_and_schedule(paper):
    for s in paper:
        config = s.full_model_config()
        assert (config["architecture"], config["init"], config["latent_dim"]) == ("dlib_conv", "tf", 10)
        assert s.training.batch_size == 64 and s.training.learning_rate == 1e-4
        if s.model == "beta_tcvae":
            assert config["estimator"] == "dlib"
        if s.model == "factor_vae":
            assert config["discriminator_clip"] == "dlib"
            assert s.training.steps == 150_000  # both minimize() calls advance dlib's global step
        else:
            assert s.training.steps == 300_000
        if s.model == "annealed_vae":
            assert (config["gamma"], config["ramp_steps"]) == (1000.0, 100_000)
        if s.model == "dip_vae_i":
            assert config["lambda_d"] == 10 * config["lambda_od"]
        if s.model == "dip_vae_ii":
            assert config["lambda_d"] == config["lambda_od"]


STUDY_METRICS = {
    "beta_vae",
    "factor_vae",
    "mig",
    "dci",
    "modularity_explicitness",
    "sap",
    "unsupervised",
    "downstream_task_gbt",
    "downstream_task_lr",
}


def test_the_paper_suite_scores_the_studys_metrics_on_both_representations_and_irs_as_an_addition(paper):
    names = set(paper[0].metrics)
    assert names == (STUDY_METRICS | {"irs"}) | {f"{m}@sampled" for m in STUDY_METRICS | {"irs"}}
    assert paper[0].metrics["dci"]["n_train"] == 10000 and paper[0].metrics["dci"]["n_test"] == 5000
    assert list(paper[0].metrics["downstream_task_gbt"]["train_sizes"]) == [10, 100, 1000, 10000]
    assert paper[0].representation == "mean"
    assert {s.dataset_source for s in paper} == {"official"} and {s.training.precision for s in paper} == {
        "fp32"
    }


def test_the_paper_suite_deviates_from_the_study_only_in_its_named_seeds(paper):
    diff = compare_runs(paper)
    assert [(d.group, d.key) for d in diff.deviations] == [("seeds", "seeds")]
    assert diff.deviations[0].value == "0-9 (10 seeds)"
    assert {d.key for d in diff.additions} == {"irs", "irs@sampled"}
    assert diff.note().startswith("Protocol: deviates from disentanglement_lib's unsupervised_study_v1")


def test_matches_is_said_only_when_nothing_differs(paper):
    one = [s for s in paper if s.dataset == "dsprites" and s.model == "beta_vae" and s.seed == 0][0]
    study_metrics = {k: v for k, v in one.metrics.items() if k.partition("@")[0] != "irs"}
    runs = [one.replace(seed=seed, metrics=study_metrics) for seed in range(50)]
    diff = compare_runs(runs)
    assert diff.matches and not diff.additions
    assert (
        diff.note()
        == "Protocol: matches disentanglement_lib's unsupervised_study_v1 (Locatello et al. 2019)."
    )
    assert not compare_runs(runs[:49]).matches  # one seed short of the study's 50


def _paper_run(paper, model="annealed_vae"):
    return [s for s in paper if s.dataset == "dsprites" and s.model == model and s.seed == 0][0]


def _with_config(spec, **fields):
    return spec.replace(model_config={**spec.model_config, **fields})


def _with_training(spec, **fields):
    return spec.replace(training={**spec.training.to_dict(), **fields})


CHANGES = {
    "steps": (lambda s: _with_training(s, steps=1000), "training", "steps"),
    "learning_rate": (lambda s: _with_training(s, learning_rate=5e-4), "training", "learning_rate"),
    "batch_size": (lambda s: _with_training(s, batch_size=2), "training", "batch_size"),
    "precision bf16": (lambda s: _with_training(s, precision="bf16"), "training", "precision"),
    "precision auto": (lambda s: _with_training(s, precision="auto"), "training", "precision"),
    "ramp": (lambda s: _with_config(s, ramp_steps=1), "model", "annealed_vae.ramp_steps"),
    "gamma": (lambda s: _with_config(s, gamma=1.0), "model", "annealed_vae.gamma"),
    "c_max off the grid": (lambda s: _with_config(s, c_max=7.0), "model", "annealed_vae.c_max"),
    "latent_dim": (lambda s: _with_config(s, latent_dim=3), "model", "latent_dim"),
    "architecture": (lambda s: _with_config(s, architecture="locatello"), "model", "architecture"),
    "init": (lambda s: _with_config(s, init="torch"), "model", "init"),
    "likelihood": (lambda s: _with_config(s, likelihood="gaussian"), "model", "likelihood"),
    "procedural data": (lambda s: s.replace(dataset_source="procedural"), "data", "dataset_source"),
    "auto data": (lambda s: s.replace(dataset_source="auto"), "data", "dataset_source"),
    "evaluation seed": (lambda s: s.replace(evaluation_seed=3), "evaluation", "evaluation_seed"),
    "metric setting": (
        lambda s: s.replace(metrics={**s.metrics, "mig": {**s.metrics["mig"], "n_train": 2000}}),
        "evaluation",
        "mig.n_train",
    ),
    "metric missing": (
        lambda s: s.replace(metrics={k: v for k, v in s.metrics.items() if not k.startswith("sap")}),
        "evaluation",
        "sap",
    ),
    "sampled missing": (
        lambda s: s.replace(metrics={k: v for k, v in s.metrics.items() if k != "dci@sampled"}),
        "evaluation",
        "dci@sampled",
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_one_changed_setting_is_one_deviation_with_both_values(paper, change):
    make, group, key = CHANGES[change]
    base = _paper_run(paper)
    assert not compare_run(base).deviations
    diff = compare_run(make(base))
    assert [(d.group, d.key) for d in diff.deviations] == [(group, key)]
    deviation = diff.deviations[0]
    assert deviation.value != deviation.reference and deviation.source
    assert (
        f"{key} = " in diff.note()
        or f"not scored on the sampled representation: {key.partition('@')[0]}" in diff.note()
    )


def test_factor_vaes_own_step_count_and_a_model_outside_the_study_are_deviations(paper):
    factor = _paper_run(paper, "factor_vae")
    assert not compare_run(factor).deviations  # 150,000 updates, as dlib's doubled global step gave
    diff = compare_run(_with_training(factor, steps=300_000))
    assert [(d.key, d.value, d.reference) for d in diff.deviations] == [
        ("factor_vae.steps", 300_000, 150_000)
    ]
    weak = _paper_run(paper).replace(
        model="group_vae_argmax",
        model_config={**_paper_run(paper).model_config},
        pairs={"k": 1, "semantics": "dlib"},
    )
    keys = {
        d.key
        for d in compare_run(
            weak.replace(
                model_config={
                    k: v
                    for k, v in weak.model_config.items()
                    if k
                    in ("architecture", "init", "latent_dim", "likelihood", "in_channels", "dataset_size")
                }
            )
        ).deviations
    }
    assert {"model", "pairs"} <= keys


def test_what_a_record_says_ran_replaces_the_specs_auto(paper):
    auto = _with_training(_paper_run(paper), precision="auto").replace(dataset_source="auto")
    assert {d.key for d in compare_run(auto).deviations} == {"precision", "dataset_source"}
    assert not compare_run(auto, ran={"precision": "fp32", "dataset_source": "official"}).deviations
    ran_procedural = compare_run(auto, ran={"precision": "fp32", "dataset_source": "procedural"})
    assert [(d.key, d.value) for d in ran_procedural.deviations] == [("dataset_source", "procedural")]


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        (
            "quick",
            [
                "steps = 1,200 (study: 300,000)",
                "factor_vae.steps = 1,200 (study: 150,000)",
                "learning_rate = 0.0005 (study: 0.0001)",
                "annealed_vae.ramp_steps = 800 (study: 100,000)",
                "beta_vae.n_train = 500 (study: 10,000)",
                "downstream_task_gbt = not scored",
                "not scored on the sampled representation: beta_vae",
                "dataset_source = auto",
                "seeds = 0 (1 seed) (study: 0-49 (50 seeds))",
                "Additions: dci_fast (not in the study); irs (not in the study); mig_chen (not in the study)",
            ],
        ),
        (
            "study-cpu",
            [
                "annealed_vae.gamma = 100 (study: 1000)",
                "annealed_vae.ramp_steps = 700 (study: 100,000)",
                # It scores the unsupervised scores on both representations, with the same settings.
                "unsupervised@sampled.batch_size = 500 (study: 16)",
                "unsupervised@sampled.n_train = 2,000 (study: 10,000)",
                "not scored on the sampled representation: beta_vae, dci, factor_vae, mig, "
                "modularity_explicitness, sap (study: every metric on both)",
            ],
        ),
    ],
)
def test_the_cpu_suites_notes_list_every_deviation(suite, expected):
    note = compare_runs(expand_suite(load_suite(suite))).note()
    for part in expected:
        assert part in note, part
    # Every deviation is said, once: as a setting, or in the list of the metrics not scored.
    listed = note.partition("not scored on the sampled representation: ")[2].partition(" (study")[0]
    unscored = listed.split(", ")
    assert len(unscored) == len(set(unscored))
    for d in compare_runs(expand_suite(load_suite(suite))).deviations:
        metric, _, rest = d.key.partition("@")
        if rest and "." not in rest:
            assert metric in unscored, d.key
        else:
            assert len(re.findall(rf"(?<![\w.@]){re.escape(d.key)} = ", note)) == 1, d.key


def test_the_reference_names_a_source_for_every_value_and_agrees_with_the_zoos_grids():
    ref = load_reference()
    for group in (ref.training, ref.model, ref.data):
        assert all(entry["source"] for entry in group.values())
    assert all(entry["source"] for entry in ref.models.values())
    assert all(entry["source"] for entry in ref.evaluation["metrics"].values())
    from vae_zoo import get_model

    for model, (field, values) in STUDY_GRIDS.items():
        assert set(ref.models[model]["grid"][field]) == values
        assert {point[field] for point in get_model(model).study_grid} == values


@pytest.mark.parametrize("suite", ["quick", "study-cpu", "weak-cpu"])
def test_a_committed_suite_keeps_the_run_ids_of_its_records(suite):
    """Adding options and metrics must not move the committed records' ids (a rerun would retrain)."""
    from pathlib import Path

    committed = sorted(
        p.stem for p in (Path(__file__).parents[2] / "results" / "runs" / suite).glob("*.json")
    )
    assert committed and sorted(s.run_id for s in expand_suite(load_suite(suite))) == committed


def test_a_bad_option_value_in_a_suite_is_refused_naming_the_valid_ones(tmp_path):
    raw = {
        "name": "x",
        "datasets": ["dsprites"],
        "seeds": [0],
        "training": {"steps": 10, "init": "xavier"},
        "models": {"vae": [{}]},
        "metrics": {"names": ["mig"]},
    }
    with pytest.raises(SuiteError, match="init must be one of tf, torch"):
        parse_suite(raw)
    raw["training"] = {"steps": 10}
    raw["models"] = {"beta_tcvae": {"grid": [{}], "estimator": "chen"}}
    with pytest.raises(SuiteError, match="estimator"):
        expand_suite(parse_suite(raw))
    raw["models"] = {"factor_vae": {"grid": "study", "training": {"stepz": 5}}}
    with pytest.raises(SuiteError, match="training must be a table of"):
        parse_suite(raw)


def test_steps_from_the_command_line_override_a_models_own_step_count():
    specs = expand_suite(override_suite(load_suite("paper"), steps=10, models=["factor_vae"]))
    assert {s.training.steps for s in specs} == {10}


def test_the_plan_estimates_a_suite_that_scores_the_sampled_representation():
    """``name@sampled`` entries count like their metric (a suite with them must plan and run)."""
    import torch

    from benchmarks.runner.estimate import estimate_evaluation_seconds

    spec = expand_suite(load_suite("study-cpu"))[0]
    assert "unsupervised@sampled" in spec.metrics
    with_sampled = estimate_evaluation_seconds(spec, torch.device("cpu"))
    without = estimate_evaluation_seconds(
        spec.replace(metrics={k: v for k, v in spec.metrics.items() if "@" not in k}), torch.device("cpu")
    )
    assert with_sampled > without > 0


@pytest.mark.parametrize("field, value", [("steps", 0), ("precision", "fp16"), ("optimizer", "sgd")])
def test_suite_model_and_command_line_training_settings_pass_the_same_checks(field, value):
    raw = {
        "name": "x",
        "datasets": ["dsprites"],
        "seeds": [0],
        "training": {"steps": 10},
        "models": {"vae": [{}]},
        "metrics": {"names": ["mig"]},
    }
    message = f"training.{field} must be"
    with pytest.raises(SuiteError, match=message):
        parse_suite({**raw, "training": {"steps": 10, field: value}})
    with pytest.raises(SuiteError, match=message):
        parse_suite({**raw, "models": {"vae": {"grid": [{}], "training": {field: value}}}})
    if field == "steps":
        with pytest.raises(SuiteError, match=message):
            override_suite(parse_suite(raw), steps=value)


def test_plan_protocol_prints_every_deviation_with_both_values():
    from typer.testing import CliRunner

    from benchmarks.cli import app

    result = CliRunner().invoke(app, ["plan", "--suite", "paper", "--protocol"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 deviation(s) from disentanglement_lib's unsupervised_study_v1" in result.output
    assert "0-9 (10 seeds)" in result.output and "0-49 (50 seeds)" in result.output
    assert "Additions (not in the study): irs, irs@sampled." in result.output
