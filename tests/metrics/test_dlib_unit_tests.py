"""disentanglement_lib's own unit tests (its ``*_test.py`` files at commit 86a644d4), ported to our API.

dlib's tests use ``IdentityObservationsData``: 10 factors, each drawn with
``RandomState.random_integers(10)`` (values 1..10), observation = factors, and
``RandomState(0)``. Where dlib binds an *identity discretizer*, we pass
``n_bins=10``: ten equal-width bins over [1, 10] put every value in its own bin,
so the discretised codes are a relabelling and every MI is the same.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import metrics


class IdentityObservations:
    """dlib's dummy_data.IdentityObservationsData."""

    factor_sizes = (10,) * 10

    def sample_factors(self, n, rng):
        return rng.randint(1, 11, size=(n, 10))  # = random_integers(10, size=(n, 10)), dlib's call

    def sample_observations_from_factors(self, factors, rng):
        return factors


DATA = IdentityObservations()


def identity(x):
    return np.asarray(x, dtype=np.float64)


def zeros(x):
    return np.zeros_like(x, dtype=np.float64)


def duplicated(x):
    return np.hstack([x, x]).astype(np.float64)


def shuffled_per_point(rng):
    # dlib's "bad" representation: each observation's 10 values permuted across the 10 codes.
    def rep(x):
        return np.stack([row[rng.permutation(len(row))] for row in x]).astype(np.float64)

    return rep


def sample(rep, n, seed=0, batch_size=16):
    return metrics.sample_codes_and_factors(DATA, rep, n, np.random.RandomState(seed), batch_size)


def train_test(rep, n_train, n_test, seed=0, batch_size=16):
    rs = np.random.RandomState(seed)
    train = metrics.sample_codes_and_factors(DATA, rep, n_train, rs, batch_size)
    test = metrics.sample_codes_and_factors(DATA, rep, n_test, rs, batch_size)
    return (*train, *test)


# -- utils_test ------------------------------------------------------------------------------


def test_histogram_discretizer():
    target = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T
    expected = np.array([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_array_equal(metrics.histogram_discretize(target, 3), expected)


def test_discrete_entropy():
    target = np.array([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_allclose(metrics.discrete_entropy(target), [math.log(3)] * 2)


def test_discrete_mutual_info():
    xs = np.array([[1, 2, 1, 2], [1, 1, 2, 2]]).T
    ys = np.array([[1, 2, 1, 2], [2, 2, 1, 1]]).T
    np.testing.assert_allclose(metrics.discrete_mutual_info(xs, ys), [[math.log(2), 0.0], [0.0, math.log(2)]])


def test_split_train_test():
    train, test = metrics.split_train_test(np.zeros((100, 10)), train_fraction=0.9)
    assert train.shape == (90, 10) and test.shape == (10, 10)


# -- mig_test --------------------------------------------------------------------------------


def test_mig_identity():
    assert 0.9 <= metrics.mig(*sample(identity, 3000), n_bins=10)["mig"] <= 1.0


def test_mig_bad_representation():
    assert 0.0 <= metrics.mig(*sample(zeros, 3000), n_bins=10)["mig"] <= 0.2


def test_mig_duplicated_latent_space():
    assert 0.0 <= metrics.mig(*sample(duplicated, 3000), n_bins=10)["mig"] <= 0.1


# -- beta_vae_test, factor_vae_test ----------------------------------------------------------


def test_beta_vae_identity():
    scores = metrics.beta_vae_score(
        DATA, identity, np.random.RandomState(0), batch_size=5, n_train=2000, n_eval=2000
    )
    assert 0.9 <= scores["beta_vae_train_accuracy"] <= 1.0
    assert 0.9 <= scores["beta_vae_eval_accuracy"] <= 1.0


def test_factor_vae_identity():
    scores = metrics.factor_vae_score(
        DATA,
        identity,
        np.random.RandomState(0),
        batch_size=5,
        n_train=3000,
        n_eval=2000,
        n_variance_estimate=2500,
        threshold=0.0,
    )
    assert 0.9 <= scores["factor_vae_train_accuracy"] <= 1.0
    assert 0.9 <= scores["factor_vae_eval_accuracy"] <= 1.0


def test_factor_vae_bad_representation():
    # threshold 0 keeps the dead codes; their 0/0 ratios attract every vote, as in dlib.
    with pytest.warns(metrics.MetricWarning, match="zero variance"):
        scores = metrics.factor_vae_score(
            DATA,
            zeros,
            np.random.RandomState(0),
            batch_size=5,
            n_train=3000,
            n_eval=2000,
            n_variance_estimate=2500,
            threshold=0.0,
        )
    assert 0.0 <= scores["factor_vae_train_accuracy"] <= 0.2
    assert 0.0 <= scores["factor_vae_eval_accuracy"] <= 0.2


# -- dci_test: the importance-matrix formulas --------------------------------------------------

ONE_CODE_TWO_FACTORS = 1.0 - math.log(2) / math.log(10)


@pytest.mark.parametrize(
    ("importance", "expected_d", "expected_c"),
    [
        (np.diag(np.ones(5)), 1.0, 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),
        (np.zeros((10, 10)), 0.0, 0.0),
        (np.vstack([np.diag(np.ones(5)), np.diag(np.ones(5))]), 1.0, ONE_CODE_TWO_FACTORS),
        (np.diag(np.ones(5))[:2, :], 1.0, 1.0),
        (np.hstack([np.diag(np.ones(5)), np.diag(np.ones(5))]), ONE_CODE_TWO_FACTORS, 1.0),
    ],
    ids=[
        "diagonal",
        "diagonal_empty_code",
        "zero",
        "redundant_codes",
        "missed_factors",
        "one_code_two_factors",
    ],
)
def test_dci_disentanglement_completeness_on_matrices(importance, expected_d, expected_c):
    scores = metrics.disentanglement_completeness(importance)
    np.testing.assert_allclose(scores["dci_disentanglement"], expected_d, atol=1e-7)
    np.testing.assert_allclose(scores["dci_completeness"], expected_c, atol=1e-7)


@pytest.mark.slow
def test_dci_identity():
    scores = metrics.dci(*train_test(identity, 1000, 1000), n_jobs=2)
    assert 0.9 <= scores["dci_disentanglement"] <= 1.0
    assert 0.9 <= scores["dci_completeness"] <= 1.0


@pytest.mark.slow
def test_dci_bad_representation():
    scores = metrics.dci(*train_test(shuffled_per_point(np.random.RandomState(1)), 1000, 1000), n_jobs=2)
    assert 0.0 <= scores["dci_disentanglement"] <= 0.2
    assert 0.0 <= scores["dci_completeness"] <= 0.2


@pytest.mark.slow
def test_dci_duplicated_latent_space():
    scores = metrics.dci(*train_test(duplicated, 1000, 1000), n_jobs=2)
    assert 0.9 <= scores["dci_disentanglement"] <= 1.0
    assert abs(scores["dci_completeness"] - ONE_CODE_TWO_FACTORS) <= 0.1


# -- sap_score_test (dlib tests the continuous mode) -------------------------------------------


def test_sap_identity():
    assert 0.9 <= metrics.sap(*train_test(identity, 3000, 3000), continuous_factors=True)["sap"] <= 1.0


def test_sap_bad_representation():
    assert 0.0 <= metrics.sap(*train_test(zeros, 3000, 3000), continuous_factors=True)["sap"] <= 0.2


def test_sap_duplicated_latent_space():
    assert 0.0 <= metrics.sap(*train_test(duplicated, 3000, 3000), continuous_factors=True)["sap"] <= 0.2


# -- modularity_explicitness_test --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutual_info", "expected"),
    [
        (np.diag(np.ones(5)), 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 2.0 / 3.0),
        (np.zeros((10, 10)), 0.0),
        (np.vstack([np.diag(np.ones(5)), np.diag(np.ones(5))]), 1.0),
        (np.diag(np.ones(5))[:2, :], 1.0),
        (np.hstack([np.diag(np.ones(5)), np.diag(np.ones(5))]), 1.0 - 1.0 / 9.0),
    ],
    ids=[
        "diagonal",
        "diagonal_empty_code",
        "zero",
        "redundant_codes",
        "missed_factors",
        "one_code_two_factors",
    ],
)
def test_modularity_on_matrices(mutual_info, expected):
    np.testing.assert_allclose(metrics.modularity_from_mutual_info(mutual_info), expected)


def test_modularity_identity():
    scores = metrics.modularity_explicitness(*train_test(identity, 3000, 3000), n_bins=10)
    assert 0.9 <= scores["modularity"] <= 1.0


@pytest.mark.slow
def test_modularity_bad_representation():
    rep = shuffled_per_point(np.random.RandomState(1))
    scores = metrics.modularity_explicitness(*train_test(rep, 20000, 20000), n_bins=10)
    assert 0.0 <= scores["modularity"] <= 0.2


@pytest.mark.slow
def test_modularity_duplicated_latent_space():
    scores = metrics.modularity_explicitness(*train_test(duplicated, 3000, 3000), n_bins=10)
    assert 0.9 <= scores["modularity"] <= 1.0


# -- irs_test --------------------------------------------------------------------------------


def test_irs_identity():
    assert 0.9 <= metrics.irs(*sample(identity, 3000, batch_size=3000), n_bins=10)["irs"] <= 1.0


def test_irs_bad_representation():
    assert 0.0 <= metrics.irs(*sample(zeros, 3000, batch_size=3000), n_bins=10)["irs"] <= 0.1


def test_irs_drops_constant_codes():
    # dlib's test_drop_constant_dims: rows 0 and -1 constant among 100 normal rows are dropped.
    # Our irs drops them internally; the score must equal that of the 98 varying codes alone.
    rs = np.random.RandomState(0)
    codes = rs.normal(size=(1000, 100))
    codes[:, 0] = 1.0
    codes[:, -1] = 0.0
    factors = rs.randint(0, 5, size=(1000, 3))
    assert metrics.irs(codes, factors)["irs"] == metrics.irs(codes[:, 1:-1], factors)["irs"]


# -- unsupervised_metrics_test -----------------------------------------------------------------


def test_gaussian_total_correlation_zero():
    assert abs(metrics.gaussian_total_correlation(np.diag(np.ones(5, dtype=np.float32)))) < 0.01


def test_gaussian_total_correlation_same():
    cov = np.array([[1, 0.9], [0.9, 1.0]], dtype=np.float32)
    detp, detq = np.linalg.det(cov), np.linalg.det(np.diag(np.diag(cov)))
    kl = 0.5 * (np.log(detq) - np.log(detp) + np.trace(np.linalg.inv(np.diag(np.diag(cov))) @ cov) - 2)
    assert abs(metrics.gaussian_total_correlation(cov) - kl) < 0.01


def test_gaussian_wasserstein_correlation_zero():
    assert abs(metrics.gaussian_wasserstein_correlation(np.diag(np.ones(5, dtype=np.float32)))) < 0.01


def test_gaussian_wasserstein_correlation_same():
    import scipy.linalg

    cov = np.array([[1, 0.9], [0.9, 1.0]], dtype=np.float32)
    diag = np.diag(np.diag(cov))
    expected = np.trace(cov + diag - 2 * scipy.linalg.sqrtm(cov @ diag)).real
    assert abs(metrics.gaussian_wasserstein_correlation(cov) - expected) < 0.01
