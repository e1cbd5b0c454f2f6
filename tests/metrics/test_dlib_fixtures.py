"""Our metrics against disentanglement_lib's outputs on fixed arrays (tests/data/dlib/deterministic).

MIG, SAP (both modes), modularity, explicitness, the unsupervised scores and
IRS must equal dlib's modern results to 1e-9, intermediates included; DCI to
5e-3 (dlib's trees break ties with the global RNG). Where dlib raised or
returned a non-real number, the documented deviation is checked instead.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from dlib_reference import DETERMINISTIC_CASES, KEYS, decode, load_case

import metrics
from metrics.utils import discrete_mutual_info, histogram_discretize

TOL = 1e-9
DCI_TOL = 5e-3


def ours(metric: str, a: dict) -> dict[str, float]:
    train_test = (a["codes_train"], a["factors_train"], a["codes_test"], a["factors_test"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.MetricWarning)
        if metric == "mig":
            return metrics.mig(a["codes_train"], a["factors_train"])
        if metric == "sap_discrete":
            return metrics.sap(*train_test)
        if metric == "sap_continuous":
            return metrics.sap(*train_test, continuous_factors=True)
        if metric == "modularity_explicitness":
            return metrics.modularity_explicitness(*train_test)
        if metric == "unsupervised":
            return metrics.unsupervised(a["codes_train"])
        if metric == "irs":
            return metrics.irs(a["codes_train"], a["factors_train"])
        if metric == "dci":
            return metrics.dci(*train_test, rng=0, n_jobs=2)
    raise KeyError(metric)


def assert_same(ours_value: float, ref, tol: float, what: str) -> None:
    ref = decode(ref)
    if isinstance(ref, complex):  # dlib's sqrtm round-off; we return the real part
        assert abs(ref.imag) < 1e-6, what
        ref = ref.real
    if math.isnan(ref):
        assert math.isnan(ours_value), f"{what}: dlib NaN, ours {ours_value}"
    elif math.isinf(ref):
        assert ours_value == ref, f"{what}: dlib {ref}, ours {ours_value}"
    else:
        assert abs(ours_value - ref) <= tol, (
            f"{what}: ours {ours_value!r} vs dlib {ref!r} (|diff| {abs(ours_value - ref):.3g})"
        )


# Documented deviations: (case, metric, our key) -> what we check instead.
DEVIATIONS = {
    ("dsprites_collapsed_n1000", "unsupervised", "gaussian_total_correlation"),
}
DETERMINISTIC = ["mig", "sap_discrete", "sap_continuous", "modularity_explicitness", "unsupervised", "irs"]


@pytest.mark.parametrize("metric", DETERMINISTIC)
@pytest.mark.parametrize("case", DETERMINISTIC_CASES)
def test_scores_match_dlib(case, metric):
    ref_json, arrays = load_case(case)
    ref = ref_json["results"]["modern"][metric]
    result = ours(metric, arrays)
    assert all(type(v) is float for v in result.values())
    if ref["scores"] is None:
        pytest.skip(f"dlib raised ({ref['error'].splitlines()[0]}); the deviation is tested separately")
    for dlib_key, key in KEYS[metric].items():
        if (case, metric, key) in DEVIATIONS:
            continue
        assert_same(result[key], ref["scores"][dlib_key], TOL, f"{case}/{metric}/{key}")


def matrix(value) -> np.ndarray:
    """A nested JSON list of the fixtures as a float array ('nan' strings decoded)."""
    return np.vectorize(decode, otypes=[float])(np.array(value, dtype=object))


@pytest.mark.parametrize("case", DETERMINISTIC_CASES)
def test_intermediates_match_dlib(case):
    """MI matrix, factor entropies, SAP score matrices, explicitness per factor, IRS matrix.

    The classifier intermediates (SAP discrete, explicitness) are checked on the
    1000-point cases only, to keep the default run short; their scores are checked on all.
    """
    ref_json, a = load_case(case)
    ref = ref_json["results"]["modern"]
    small = len(a["codes_train"]) <= 1000
    codes, factors = a["codes_train"], a["factors_train"]
    mi = discrete_mutual_info(histogram_discretize(codes, 20), factors)
    np.testing.assert_allclose(mi, matrix(ref["mig"]["intermediates"]["mi_matrix"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(
        metrics.discrete_entropy(factors),
        matrix(ref["mig"]["intermediates"]["factor_entropy"]),
        rtol=0,
        atol=TOL,
    )
    for mode, continuous in (("sap_discrete", False), ("sap_continuous", True)):
        if ref[mode]["scores"] is not None and (continuous or small):
            scores = metrics.sap_score_matrix(
                codes, factors, a["codes_test"], a["factors_test"], continuous_factors=continuous
            )
            np.testing.assert_allclose(
                scores, matrix(ref[mode]["intermediates"]["score_matrix"]), rtol=0, atol=TOL
            )
    explicit = ref["modularity_explicitness"]["intermediates"] or {}
    if explicit.get("explicitness_per_factor_train") and small:
        mean, std = np.mean(codes.T, axis=1), np.std(codes.T, axis=1)
        x_train, x_test = (codes - mean) / std, (a["codes_test"] - mean) / std
        for j in range(factors.shape[1]):
            roc_train, roc_test = metrics.explicitness_per_factor(
                x_train, factors[:, j], x_test, a["factors_test"][:, j]
            )
            assert abs(roc_train - explicit["explicitness_per_factor_train"][j]) <= TOL
            assert abs(roc_test - explicit["explicitness_per_factor_test"][j]) <= TOL
    irs_ref = ref["irs"]["intermediates"]
    active = codes[:, codes.var(axis=0) > 0]
    irs, max_dev = metrics.irs_matrix(histogram_discretize(factors, 20), active, 0.99)
    np.testing.assert_allclose(irs, matrix(irs_ref["IRS_matrix"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(max_dev, matrix(irs_ref["max_deviations"]), rtol=0, atol=TOL)


def test_collapsed_codes_deviation():
    """Two constant codes: dlib's explicitness crashes and its total correlation is NaN."""
    ref_json, a = load_case("dsprites_collapsed_n1000")
    ref = ref_json["results"]["modern"]
    train_test = (a["codes_train"], a["factors_train"], a["codes_test"], a["factors_test"])
    with pytest.warns(metrics.MetricWarning, match=r"code\(s\) \[3, 4\] are constant"):
        scores = metrics.modularity_explicitness(*train_test)
    # The modularity dlib computed before crashing is kept.
    expected = ref["modularity_explicitness"]["intermediates"]["modularity_score_computed_before_error"]
    assert abs(scores["modularity"] - expected) <= TOL
    # Constant codes z-score to 0, so explicitness is that of the three live codes.
    live = [0, 1, 2]
    alone = metrics.modularity_explicitness(
        a["codes_train"][:, live], a["factors_train"], a["codes_test"][:, live], a["factors_test"]
    )
    assert abs(scores["explicitness_train"] - alone["explicitness_train"]) < 1e-6
    assert abs(scores["explicitness_test"] - alone["explicitness_test"]) < 1e-6
    assert 0.5 < scores["explicitness_test"] <= 1.0
    # Total correlation: that of the non-constant codes (dlib: NaN).
    with pytest.warns(metrics.MetricWarning, match="constant"):
        tc = metrics.unsupervised(a["codes_train"])["gaussian_total_correlation"]
    assert math.isnan(decode(ref["unsupervised"]["scores"]["gaussian_total_correlation"]))
    assert tc == metrics.gaussian_total_correlation(np.cov(a["codes_train"][:, live].T))


def test_constant_factor_deviation():
    """A factor with a single value: dlib gives NaN (MIG) or raises (SAP, explicitness, DCI)."""
    ref_json, a = load_case("edge_constant_factor_n1000")
    ref = ref_json["results"]["modern"]
    train_test = (a["codes_train"], a["factors_train"], a["codes_test"], a["factors_test"])
    assert ref["sap_discrete"]["error"] and ref["modularity_explicitness"]["error"] and ref["dci"]["error"]
    with pytest.warns(metrics.MetricWarning, match=r"factor\(s\) \[0\]"):
        assert math.isnan(metrics.mig(a["codes_train"], a["factors_train"])["mig"])
    with pytest.warns(metrics.MetricWarning, match=r"factor\(s\) \[0\]"):
        assert math.isnan(metrics.sap(*train_test)["sap"])
    with pytest.warns(metrics.MetricWarning, match=r"factor\(s\) \[0\]"):
        scores = metrics.modularity_explicitness(*train_test)
    assert math.isnan(scores["explicitness_train"]) and math.isnan(scores["explicitness_test"])
    # Modularity is still defined: a constant factor has zero MI with every code.
    mi = discrete_mutual_info(histogram_discretize(a["codes_train"], 20), a["factors_train"])
    assert scores["modularity"] == metrics.modularity_from_mutual_info(mi)
    with pytest.warns(metrics.MetricWarning, match=r"factor\(s\) \[0\]"):
        dci = metrics.dci(*train_test)
    assert all(math.isnan(v) for v in dci.values())


def _dci_case(case):
    ref_json, a = load_case(case)
    ref = ref_json["results"]["modern"]["dci"]
    if ref["scores"] is None:
        pytest.skip("dlib raised; see test_constant_factor_deviation")
    result = ours("dci", a)
    for dlib_key, key in KEYS["dci"].items():
        assert_same(result[key], ref["scores"][dlib_key], DCI_TOL, f"{case}/dci/{key}")


def test_dci_matches_dlib_small_case():
    _dci_case("shapes3d_identity_n1000")


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in DETERMINISTIC_CASES if c != "shapes3d_identity_n1000"])
def test_dci_matches_dlib(case):
    _dci_case(case)
