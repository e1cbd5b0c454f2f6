"""Known answers and invariances of the metrics and their building blocks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.special
from dlib_reference import KEYS, load_case
from sklearn.metrics import mutual_info_score

import metrics
from metrics.chen_mig import _log_mixture_sum

# -- building blocks equal the references they replace --------------------------------------------


def test_mutual_info_is_sklearns_bit_for_bit():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 2000))
        a = rng.integers(-3, int(rng.integers(-2, 40)), n)
        b = (
            rng.integers(0, int(rng.integers(1, 25)), n)
            if rng.random() < 0.7
            else (a * 3 + rng.integers(0, 2, n)) % 7
        )
        assert metrics.mutual_info(a, b) == mutual_info_score(a, b)


def test_histogram_discretize_is_dlibs_formula():
    rng = np.random.default_rng(1)
    values = np.column_stack(
        [rng.normal(size=500), rng.exponential(size=500), np.full(500, 2.5), rng.integers(0, 7, 500)]
    )
    ours = metrics.histogram_discretize(values, 20)
    for i in range(values.shape[1]):  # dlib: np.digitize(x, np.histogram(x, 20)[1][:-1])
        np.testing.assert_array_equal(
            ours[:, i], np.digitize(values[:, i], np.histogram(values[:, i], 20)[1][:-1])
        )
    assert len(np.unique(ours[:, 2])) == 1  # a constant column: one bin (numpy's [v-0.5, v+0.5] range)
    assert ours[:, 0].min() == 1 and ours[:, 0].max() == 20


def test_log_mixture_sum_truncation_is_exact():
    rng = np.random.default_rng(2)
    mu = rng.normal(size=4000) * rng.choice([0.01, 1.0, 30.0], size=4000)
    sigma = np.exp(rng.uniform(-9, 1, size=4000))
    z = mu[:500] + sigma[:500] * rng.normal(size=500)
    log_pdf = -0.5 * np.log(2 * np.pi) - np.log(sigma) - (z[:, None] - mu) ** 2 / (2 * sigma**2)
    brute = scipy.special.logsumexp(log_pdf, axis=1)
    ours = _log_mixture_sum(z, mu, sigma, block=64)  # over the samples sorted by z
    np.testing.assert_allclose(np.sort(ours), np.sort(brute), rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.sum(), brute.sum(), rtol=1e-13)


# -- invariances -----------------------------------------------------------------------------------


def test_results_do_not_depend_on_memory_layout_or_dtype():
    _, a = load_case("dsprites_identity_n1000")
    args = (a["codes_train"], a["factors_train"], a["codes_test"], a["factors_test"])
    fortran = tuple(np.asfortranarray(x) for x in args)
    as_float_factors = (args[0], args[1].astype(float), args[2], args[3].astype(np.int32))
    for fn in (metrics.sap, metrics.modularity_explicitness):
        assert fn(*args) == fn(*fortran) == fn(*as_float_factors)
    for fn in (metrics.mig, metrics.irs):
        assert fn(args[0], args[1]) == fn(fortran[0], fortran[1]) == fn(args[0], as_float_factors[1])
    assert metrics.unsupervised(args[0]) == metrics.unsupervised(fortran[0])


def test_mig_is_invariant_to_code_order_and_monotone_maps():
    _, a = load_case("dsprites_identity_noise_n10000")
    codes, factors = a["codes_train"][:3000], a["factors_train"][:3000]
    base = metrics.mig(codes, factors)["mig"]
    assert metrics.mig(codes[:, ::-1], factors)["mig"] == pytest.approx(base, abs=1e-12)
    # An affine map keeps the equal-width bins: same discretisation, same MIG.
    assert metrics.mig(3.0 * codes - 1.0, factors)["mig"] == pytest.approx(base, abs=1e-12)


# -- sampling --------------------------------------------------------------------------------------


class Toy:
    factor_sizes = (3, 6, 10)

    def sample_factors(self, n, rng):
        return np.stack([metrics.rng_integers(rng, k, size=n) for k in self.factor_sizes], axis=1)

    def sample_observations_from_factors(self, factors, rng):
        return factors / (np.array(self.factor_sizes) - 1.0)


def identity(x):
    return np.asarray(x, dtype=float)


def test_sample_codes_and_factors_follows_dlibs_stream():
    rs = np.random.RandomState(5)
    codes, factors = metrics.sample_codes_and_factors(Toy(), identity, 50, rs, batch_size=16)
    # dlib's generate_batch_factor_code: batches of min(16, left); each factor column drawn in turn.
    ref = np.random.RandomState(5)
    expected = np.concatenate(
        [np.stack([ref.randint(k, size=m) for k in Toy.factor_sizes], axis=1) for m in (16, 16, 16, 2)]
    )
    np.testing.assert_array_equal(factors, expected)
    np.testing.assert_array_equal(codes, expected / (np.array(Toy.factor_sizes) - 1.0))


def test_encode_batch_size_does_not_change_deterministic_codes():
    a = metrics.beta_vae_score(
        Toy(), identity, np.random.RandomState(0), batch_size=8, n_train=300, n_eval=100
    )
    b = metrics.beta_vae_score(
        Toy(),
        identity,
        np.random.RandomState(0),
        batch_size=8,
        n_train=300,
        n_eval=100,
        encode_batch_size=100,
    )
    assert a == b
    f1 = metrics.sample_factor_vae_local_variances(
        Toy(), identity, 40, np.random.RandomState(1), batch_size=8
    )
    f2 = metrics.sample_factor_vae_local_variances(
        Toy(), identity, 40, np.random.RandomState(1), batch_size=8, encode_batch_size=64
    )
    np.testing.assert_array_equal(f1[0], f2[0])
    np.testing.assert_array_equal(f1[1], f2[1])


def test_beta_vae_features_hold_the_fixed_factor_at_zero():
    features, labels = metrics.sample_beta_vae_features(
        Toy(), identity, 200, np.random.RandomState(0), batch_size=10
    )
    assert features.shape == (200, 3) and labels.shape == (200,)
    np.testing.assert_array_equal(features[np.arange(200), labels], 0.0)
    assert (np.delete(features.reshape(-1), np.arange(200) * 3 + labels) > 0).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_sampled_metrics_name_a_count_that_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match=f"n_train must be a positive integer; got {bad!r}"):
        metrics.beta_vae_score(Toy(), identity, np.random.RandomState(0), n_train=bad, n_eval=5)
    with pytest.raises(ValueError, match=f"n_train must be a positive integer; got {bad!r}"):
        metrics.fairness(Toy(), identity, np.random.RandomState(0), n_train=bad)


def test_factor_vae_counts_active_dims_where_dlib_reports_all():
    def with_dead_code(x):
        return np.concatenate([x, np.zeros((len(x), 2))], axis=1)

    scores = metrics.factor_vae_score(
        Toy(),
        with_dead_code,
        np.random.RandomState(0),
        batch_size=16,
        n_train=300,
        n_eval=200,
        n_variance_estimate=500,
    )
    assert scores["factor_vae_active_dims"] == 3.0  # dlib would report len(mask) = 5
    assert scores["factor_vae_train_accuracy"] == 1.0 and scores["factor_vae_eval_accuracy"] == 1.0


def test_factor_vae_majority_vote_by_hand():
    # 2 factors, 2 codes; code 0 wins for factor 0 (3 votes vs 1), code 1 for factor 1.
    global_var = np.array([1.0, 1.0])
    fixed = np.array([0, 0, 0, 1, 1])
    local = np.array([[0.1, 1], [0.1, 1], [0.1, 1], [0.1, 1], [1, 0.1]])
    scores = metrics.factor_vae_score_from_variances(global_var, fixed, local, fixed, local, n_factors=2)
    assert scores["factor_vae_train_accuracy"] == pytest.approx(4 / 5)
    assert scores["factor_vae_active_dims"] == 2.0


def test_split_train_test_refuses_too_few_points():
    train, test = metrics.split_train_test(np.arange(10), train_fraction=0.9)
    assert len(train) == 9 and len(test) == 1
    with pytest.raises(ValueError, match="too few points to split: 1 rows"):
        metrics.split_train_test(np.arange(1), train_fraction=0.9)
    with pytest.raises(ValueError, match="same number of rows"):
        metrics.split_train_test(np.arange(10), np.arange(9))


# -- Chen et al.'s MIG -----------------------------------------------------------------------------

SIZES = (3, 6, 10, 8)


def grid_posterior(mean_fn, std):
    factors = metrics.factor_grid(SIZES)
    x = factors / (np.array(SIZES) - 1.0)
    mean = mean_fn(x)
    return mean, np.full(mean.shape, 2 * np.log(std)), factors


def test_mig_chen_noiseless_copies_reach_log_k():
    mean, logvar, factors = grid_posterior(lambda x: x, 1e-4)
    score = metrics.mig_chen(mean, logvar, factors, SIZES, rng=0, n_samples=2000)["mig_chen"]
    assert score > 0.97
    # Each code's entropy minus its conditional entropy given its own factor is log K.
    std = np.exp(0.5 * logvar)
    rows = np.arange(len(factors))
    h = metrics.gaussian_mixture_entropy(mean, mean, std)
    h_given = np.mean(
        [
            metrics.gaussian_mixture_entropy(
                mean[factors[:, 2] == v], mean[factors[:, 2] == v], std[rows[factors[:, 2] == v]]
            )
            for v in range(SIZES[2])
        ],
        axis=0,
    )
    assert h[2] - h_given[2] == pytest.approx(math.log(SIZES[2]), abs=1e-6)


def test_mig_chen_independent_noise_is_near_zero():
    rng = np.random.default_rng(0)
    mean, logvar, factors = grid_posterior(lambda x: rng.normal(size=(len(x), 4)), 0.3)
    assert abs(metrics.mig_chen(mean, logvar, factors, SIZES, rng=1, n_samples=1000)["mig_chen"]) < 0.05


def test_mig_chen_exclusion_and_single_value_factors():
    # Code 0 copies factor 0 only; factors 1-3 are represented by nothing.
    mean, logvar, factors = grid_posterior(lambda x: np.column_stack([x[:, 0], 0 * x[:, 1:]]), 1e-3)
    with_shape = metrics.mig_chen(mean, logvar, factors, SIZES, rng=0, n_samples=500)["mig_chen"]
    assert with_shape == pytest.approx(1 / 4, abs=0.02)
    assert (
        metrics.mig_chen(mean, logvar, factors, SIZES, rng=0, n_samples=500, exclude_factors=(0,))["mig_chen"]
        < 0.02
    )
    keep = factors[:, 3] == 0  # a thinned grid on which factor 3 has one value
    with pytest.warns(metrics.MetricWarning, match=r"factor\(s\) \[3\] take a single value"):
        assert math.isnan(metrics.mig_chen(mean[keep], logvar[keep], factors[keep], SIZES, rng=0)["mig_chen"])


def test_mig_chen_accepts_a_thinned_grid():
    factors = metrics.factor_grid(SIZES, max_values=4)
    assert len(factors) == 3 * 3 * 4 * 4
    x = factors / (np.array(SIZES) - 1.0)
    score = metrics.mig_chen(x, np.full(x.shape, -12.0), factors, SIZES, rng=0, n_samples=500)["mig_chen"]
    assert score > 0.95  # normalised by log of the values present, so a thinned grid still reaches ~1


def test_gaussian_mixture_entropy_closed_forms():
    rng = np.random.default_rng(3)
    std = np.full((4000, 1), 0.7)
    one = np.zeros((4000, 1))  # a single Gaussian repeated: entropy 0.5 log(2 pi e s^2)
    samples = one + std * rng.normal(size=one.shape)
    expected = 0.5 * math.log(2 * math.pi * math.e * 0.49)
    assert metrics.gaussian_mixture_entropy(samples, one, std)[0] == pytest.approx(expected, abs=0.03)


# -- dci_fast is not dci -----------------------------------------------------------------------------


@pytest.mark.slow  # two DCIs at 2,000 points (5 s)
def test_dci_fast_is_close_to_dci_but_not_equal():
    """Measured on every dlib fixture: |dci_fast - dlib's dci| <= 0.08 (duplicated codes: completeness)."""
    ref_json, a = load_case("dsprites_duplicate_n1000")
    ref = ref_json["results"]["modern"]["dci"]["scores"]
    fast = metrics.dci_fast(
        a["codes_train"], a["factors_train"], a["codes_test"], a["factors_test"], n_jobs=2
    )
    assert set(fast) == {k.replace("dci_", "dci_fast_", 1) for k in KEYS["dci"].values()}  # never dci's keys
    gaps = {
        key: abs(fast[key.replace("dci_", "dci_fast_", 1)] - ref[dlib_key])
        for dlib_key, key in KEYS["dci"].items()
    }
    assert max(gaps.values()) <= 0.08, gaps
    assert gaps["dci_completeness"] > 0.05  # the histogram trees split importance between copies differently


def test_warnings_name_the_cause():
    codes = np.random.default_rng(0).normal(size=(200, 3))
    factors = np.column_stack([np.zeros(200, int), np.arange(200) % 4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isnan(metrics.mig(codes, factors)["mig"])
    assert any(
        issubclass(w.category, metrics.MetricWarning) and "factor(s) [0]" in str(w.message) for w in caught
    )
