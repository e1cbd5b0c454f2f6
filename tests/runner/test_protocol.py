"""The paper suite trains what disentanglement_lib's unsupervised_study_v1 trained, and says so."""

import collections

import pytest

from benchmarks.runner.protocol import STUDY_PROTOCOL, deviations, protocol_footnote, protocol_of
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


def test_the_paper_suite_scores_the_studys_metrics_on_the_mean_and_the_unsupervised_ones_sampled(paper):
    names = set(paper[0].metrics)
    assert names == {
        "beta_vae",
        "factor_vae",
        "mig",
        "dci",
        "modularity_explicitness",
        "sap",
        "irs",
        "unsupervised",
        "unsupervised@sampled",
    }
    assert paper[0].metrics["dci"]["n_train"] == 10000 and paper[0].metrics["dci"]["n_test"] == 5000
    assert paper[0].representation == "mean"


def test_the_footnote_says_matches_for_the_paper_suite_and_lists_the_quick_suites_deviations(paper):
    assert protocol_footnote(protocol_of(s) for s in paper) == (
        "Protocol: matches disentanglement_lib's unsupervised_study_v1."
    )
    quick = protocol_footnote(protocol_of(s) for s in expand_suite(load_suite("quick")))
    assert quick.startswith("Protocol: deviates from disentanglement_lib's unsupervised_study_v1 in: ")
    for part in ("architecture = locatello", "init = torch", "estimator = mws", "discriminator_clip = none"):
        assert part in quick


def test_every_deviation_is_named_by_its_option():
    protocol = {**STUDY_PROTOCOL, "likelihood": "gaussian", "init": "torch"}
    assert deviations(protocol) == {"likelihood": ("gaussian", "bernoulli"), "init": ("torch", "tf")}
    assert deviations({"architecture": "dlib_conv"}) == {}  # keys a variant lacks are not compared


@pytest.mark.parametrize("suite", ["quick", "study-cpu"])
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
