"""The study's statistics against known answers, and `vaebench analyze` on synthetic records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from test_report import make_record, write_record
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.report import analysis_stats as st
from benchmarks.report import load_results


def _design(model_effects, hyper_effects, seed_effects):
    """Balanced runs y = mu + a_m + b_c(m) + e_s(c), with effects that sum to zero at every level."""
    rows = []
    for m, a in enumerate(model_effects):
        for c, b in enumerate(hyper_effects):
            for e in seed_effects:
                sign = 1 if (m + c) % 2 == 0 else -1  # seed deviations still sum to zero per cell
                rows.append({"model": f"m{m}", "config": f"m{m}-c{c}", "y": 5.0 + a + b + sign * e})
    return pd.DataFrame(rows)


def test_variance_shares_recover_known_shares():
    a, b, e = np.array([-1.0, 0.0, 1.0]), np.array([-0.5, 0.5]), np.array([-0.2, 0.0, 0.2])
    df = _design(a, b, e)
    # SS_model = 6 * sum a^2 = 12; SS_hyper = 3 * 3 * sum b^2 = 4.5; SS_seed = 6 * sum e^2 = 0.48.
    total = 12 + 4.5 + 0.48
    shares = st.variance_shares(df, "y")
    assert shares["model"] == pytest.approx(12 / total, rel=1e-12)
    assert shares["hyperparameter"] == pytest.approx(4.5 / total, rel=1e-12)
    assert shares["seed"] == pytest.approx(0.48 / total, rel=1e-12)
    assert shares["n_runs"] == 18 and shares["n_configs"] == 6 and shares["min_seeds"] == 3


def test_variance_shares_unbalanced_still_sum_to_one():
    rng = np.random.default_rng(1)
    df = _design([-1.0, 1.0], [-0.3, 0.3], [-0.1, 0.0, 0.1, 0.2]).iloc[:-1]
    df = df.assign(y=df["y"] + rng.normal(0, 0.05, len(df)))
    shares = st.variance_shares(df, "y")
    assert shares["model"] + shares["hyperparameter"] + shares["seed"] == pytest.approx(1.0, rel=1e-12)


def test_variance_shares_refuse_too_little_data():
    df = _design([-1.0, 1.0], [0.0], [0.1, -0.1])
    with pytest.raises(
        st.InsufficientData,
        match="at least 3 seeds in every configuration to estimate seed variance; the fewest is 2",
    ):
        st.variance_shares(df, "y")
    one = _design([0.0], [-1.0, 1.0], [-0.1, 0.0, 0.1])
    with pytest.raises(st.InsufficientData, match="at least 2 models"):
        st.variance_shares(one, "y")
    flat = _design([0.0, 0.0], [0.0], [0.0, 0.0, 0.0])
    with pytest.raises(st.InsufficientData, match="same value"):
        st.variance_shares(flat, "y")


def test_win_probability_equals_a_brute_force_count():
    a = [0.1, 0.5, 0.5, 0.9, 0.3]
    b = [0.5, 0.2, 0.4, 0.5]
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    got = st.pairwise_win_probability(a, b, np.random.default_rng(0), n_boot=500)
    assert got.p == wins / (len(a) * len(b))
    assert got.u == sps.mannwhitneyu(a, b).statistic == wins
    assert got.p_value == pytest.approx(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    assert got.low <= got.p <= got.high and (got.n_a, got.n_b) == (5, 4)
    with pytest.raises(st.InsufficientData, match="at least 2 runs on each side"):
        st.pairwise_win_probability([1.0], b, np.random.default_rng(0))


def test_bootstrap_interval_covers_the_truth_at_about_its_level():
    # X ~ N(d, 1), Y ~ N(0, 1): P(X > Y) = Phi(d / sqrt 2).
    rng = np.random.default_rng(12345)
    d, n, trials = 0.8, 25, 300
    truth = sps.norm.cdf(d / np.sqrt(2))
    covered = 0
    for _ in range(trials):
        w = st.pairwise_win_probability(rng.normal(d, 1, n), rng.normal(0, 1, n), rng, n_boot=400)
        covered += w.low <= truth <= w.high
    assert 0.88 <= covered / trials <= 0.99  # nominal 0.95; percentile intervals run a little narrow


def test_pairwise_comparisons_are_antisymmetric_and_holm_adjusted():
    rng = np.random.default_rng(3)
    rows = [
        {"dataset": "d", "model": m, "config": m, "seed": s, "y": shift + rng.normal(0, 0.1)}
        for m, shift in (("a", 0.0), ("b", 1.0), ("c", 0.02))
        for s in range(6)
    ]
    res = st.pairwise_comparisons(pd.DataFrame(rows), "y", np.random.default_rng(0), n_boot=300)
    ab = res[(res.model_a == "a") & (res.model_b == "b")].iloc[0]
    ba = res[(res.model_a == "b") & (res.model_b == "a")].iloc[0]
    assert ab.p_win == 0.0 and ba.p_win == 1.0 and ab.significant and ba.significant
    assert ab.p_holm == ba.p_holm >= ab.p_value
    raw = res[res.model_a < res.model_b].sort_values(["model_a", "model_b"])["p_value"].to_numpy()
    assert st.holm(raw) == pytest.approx(res[res.model_a < res.model_b]["p_holm"].to_numpy())
    assert st.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    with pytest.raises(st.InsufficientData, match="at least 3 seeds per configuration"):
        st.pairwise_comparisons(pd.DataFrame(rows).iloc[::3], "y", np.random.default_rng(0))


@pytest.mark.parametrize("n_a, n_b", [(2, 2), (3, 6), (6, 6), (4, 7)])
def test_smallest_attainable_p_is_scipys_exact_p_of_a_complete_separation(n_a, n_b):
    low, high = np.arange(n_a, dtype=float), 100.0 + np.arange(n_b)
    exact = sps.mannwhitneyu(low, high, alternative="two-sided", method="exact").pvalue
    assert st.smallest_attainable_p(n_a, n_b) == pytest.approx(exact, rel=1e-12)
    # every other ranking gives a larger p
    mixed = np.concatenate([low[:-1], [100.5]])
    assert sps.mannwhitneyu(mixed, high, method="exact").pvalue > st.smallest_attainable_p(n_a, n_b)
    with pytest.raises(ValueError, match="positive run counts"):
        st.smallest_attainable_p(0, n_b)


def test_rank_correlations_equal_scipy():
    rng = np.random.default_rng(0)
    values = pd.DataFrame(rng.normal(size=(12, 4)), columns=list("abcd"))
    values.loc[3, "b"] = np.nan
    values["e"] = 1.0  # constant: left out
    rho, n = st.spearman_matrix(values)
    assert list(rho.columns) == list("abcd")
    both = values[["a", "b"]].dropna()
    assert rho.loc["a", "b"] == pytest.approx(sps.spearmanr(both["a"], both["b"]).statistic, rel=1e-12)
    assert rho.loc["c", "d"] == pytest.approx(sps.spearmanr(values["c"], values["d"]).statistic, rel=1e-12)
    assert n.loc["a", "b"] == 11 and n.loc["c", "d"] == 12 and rho.loc["a", "a"] == 1.0
    cross, _ = st.cross_spearman(values, ["a", "e"], ["c", "d"])
    assert list(cross.index) == ["a"] and cross.loc["a", "d"] == rho.loc["a", "d"]
    with pytest.raises(st.InsufficientData, match="at least 5 runs; there are 4"):
        st.spearman_matrix(values.iloc[:4])
    with pytest.raises(st.InsufficientData, match="at least 2 metrics that vary"):
        st.spearman_matrix(values[["a", "e"]])


def test_representation_curves_refuse_without_the_sampled_scores():
    df = pd.DataFrame(
        {
            "model": ["m"] * 2,
            "seed": [0, 0],
            "strength_field": ["beta"] * 2,
            "strength_value": [1.0, 4.0],
            "metric.tc": [1.0, 2.0],
        }
    )
    with pytest.raises(
        st.InsufficientData, match=r"no score of the sampled representation \(metric_sampled.tc\)"
    ):
        st.representation_curves(df, "metric.tc", "metric_sampled.tc")
    curves = st.representation_curves(
        df.assign(**{"metric_sampled.tc": [0.5, 0.1]}), "metric.tc", "metric_sampled.tc"
    )
    assert curves["representation"].tolist() == ["mean", "mean", "sampled", "sampled"]
    assert curves["mean"].tolist() == [1.0, 2.0, 0.5, 0.1] and curves["n"].tolist() == [1, 1, 1, 1]


# -- vaebench analyze ------------------------------------------------------------------------------


def _study(tmp_path, suite="study", seeds=(0, 1, 2), sampled=True):
    grid = [
        ("vae", None, [None]),
        ("beta_vae", "beta", [1.0, 4.0, 16.0]),
        ("factor_vae", "gamma", [10.0, 40.0]),
    ]
    rng = np.random.default_rng(7)
    for model, field, values in grid:
        for value in values:
            for seed in seeds:
                base = {"vae": 0.1, "beta_vae": 0.3, "factor_vae": 0.5}[model] + 0.01 * (value or 0)
                unit = lambda x: float(np.clip(x, 0.0, 1.0))  # noqa: E731  (these scores are defined on [0, 1])
                metrics = {
                    "mig": unit(base + rng.normal(0, 0.03)),
                    "dci_disentanglement": unit(base + rng.normal(0, 0.05)),
                    "sap": unit(base / 2 + rng.normal(0, 0.02)),
                    "gaussian_total_correlation": 3.0 - base + rng.normal(0, 0.1),
                    "mutual_info_score": 0.5 - base / 3 + rng.normal(0, 0.05),
                }
                if sampled:
                    metrics["sampled_gaussian_total_correlation"] = (
                        2.0 - 0.1 * (value or 0) + rng.normal(0, 0.05)
                    )
                strength = (field, value) if field else None
                record = make_record(model, strength, seed, metrics, suite=suite, final={"kl": 1.0})
                write_record(tmp_path, record)
    return tmp_path


def test_analyze_draws_every_figure_with_enough_seeds(tmp_path):
    out = _study(tmp_path)
    got = CliRunner().invoke(app, ["analyze", "--out", str(out), "--suite", "study", "--n-boot", "200"])
    assert got.exit_code == 0, got.output
    folder = out / "analysis" / "study"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "agreement_dsprites.png", "pairwise_dsprites.png", "representation_dsprites.png",
        "selection_dsprites.png", "summary.md", "variance_dsprites.png",
    ]  # fmt: skip
    summary = (folder / "summary.md").read_text()
    assert "Not computed" not in summary and "n = 18 runs" in summary
    assert "| MIG (histogram, dlib) | beta_vae | factor_vae |" in summary
    # Every factor_vae run has a higher MIG than every vae run: the interval collapses, and says so.
    assert "| MIG (histogram, dlib) | factor_vae | vae | 1.00 | [1.00, 1.00]† |" in summary
    # vae has 3 runs, factor_vae 6: 2 / C(9, 3) = 0.024, times 3 pairs under Holm = 0.071 > 0.05
    assert (
        "3 against 6 runs: 0.024, at best 0.071 after Holm over 3 pairs, so no such pair can be "
        "significant at α = 0.05" in summary
    )
    assert "6 against 9 runs: 0.0004, at best 0.0012 after Holm over 3 pairs." in summary
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    CliRunner().invoke(app, ["analyze", "--out", str(out), "--suite", "study", "--n-boot", "200"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # deterministic


def test_analyze_with_one_seed_refuses_what_needs_seeds_and_does_the_rest(tmp_path):
    out = _study(tmp_path, seeds=(0,), sampled=False)
    stale = out / "analysis" / "study" / "pairwise_dsprites.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    got = CliRunner().invoke(app, ["analyze", "--out", str(out)])
    assert got.exit_code == 0, got.output
    folder = out / "analysis" / "study"
    assert sorted(p.name for p in folder.glob("*.png")) == [
        "agreement_dsprites.png",
        "selection_dsprites.png",
    ]
    summary = (folder / "summary.md").read_text()
    assert summary.count("**Not computed:**") == 3
    assert (
        "needs at least 3 seeds in every configuration to estimate seed variance; the fewest is 1" in summary
    )
    assert "needs at least 3 seeds per configuration to compare models against seed noise" in summary
    assert "no score of the sampled representation (metric_sampled.gaussian_total_correlation)" in summary


def test_analyze_refuses_too_few_runs_and_bad_options(tmp_path):
    out = _study(tmp_path, seeds=(0,))
    for path in sorted((out / "runs" / "study").glob("*.json"))[3:]:
        path.unlink()
    got = CliRunner().invoke(app, ["analyze", "--out", str(out)])
    summary = (out / "analysis" / "study" / "summary.md").read_text()
    # Three runs of beta_vae (beta 1, 4, 16) are left: the total-correlation curves are all it can draw.
    assert got.exit_code == 0 and summary.count("**Not computed:**") == 4
    assert summary.count("a rank correlation needs at least 5 runs; there are 3") == 2
    assert sorted(p.name for p in (out / "analysis" / "study").glob("*.png")) == [
        "representation_dsprites.png"
    ]
    got = CliRunner().invoke(app, ["analyze", "--out", str(out), "--n-boot", "5"])
    assert got.exit_code == 2 and "--n-boot" in got.output
    got = CliRunner().invoke(app, ["analyze", "--out", str(out), "--suite", "nope"])
    assert got.exit_code == 2 and "study" in got.output
    assert load_results(out, "study").shape[0] == 3
