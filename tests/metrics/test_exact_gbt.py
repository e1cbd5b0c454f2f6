"""The presorted, compiled GBT against scikit-learn's GradientBoostingClassifier, which it re-implements."""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from metrics.exact_gbt import HAVE_NUMBA, _introsort_3way, _pairwise_sum, fit_gradient_boosting

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="without numba the module calls scikit-learn itself")


def sklearn_reference(x_train, y_train, x_test, **kwargs):
    model = GradientBoostingClassifier(**{"random_state": 0, **kwargs}).fit(x_train, y_train)
    return model.feature_importances_, model.predict(x_train), model.predict(x_test)


def assert_sklearns_trees_for_two_seeds(x, y, x_test):
    """With tie_order="sklearn": scikit-learn's importances (to 1e-12) and predictions, seeds 0 and 1."""
    for random_state in (0, 1):
        ours = fit_gradient_boosting(x, y, x_test, random_state=random_state, tie_order="sklearn")
        reference = sklearn_reference(x, y, x_test, random_state=random_state)
        np.testing.assert_allclose(ours[0], reference[0], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ours[1], reference[1])
        np.testing.assert_array_equal(ours[2], reference[2])


def codes_and_labels(rng, n, n_features, n_classes):
    """Labels that depend on two of the features, plus noise features."""
    x = rng.normal(size=(n, n_features))
    score = x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    return x, y


@pytest.mark.parametrize("n_classes", [2, 3, 7])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("tie_order", ["stable", "sklearn"])
def test_same_trees_as_sklearn_on_continuous_codes(n_classes, seed, tie_order):
    """Without repeated values the tie order cannot matter: both orders give scikit-learn's trees."""
    rng = np.random.default_rng(seed)
    x, y = codes_and_labels(rng, 400, 6, n_classes)
    x_test, _ = codes_and_labels(rng, 200, 6, n_classes)
    assert all(len(np.unique(column.astype(np.float32))) == len(column) for column in x.T)
    ours = fit_gradient_boosting(x, y, x_test, tie_order=tie_order)
    reference = sklearn_reference(x, y, x_test)
    np.testing.assert_allclose(ours[0], reference[0], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ours[1], reference[1])
    np.testing.assert_array_equal(ours[2], reference[2])


def test_same_as_sklearn_with_constant_and_coarsely_tied_codes():
    """Ties within a feature (values on a 0.25 grid) and a constant feature."""
    rng = np.random.default_rng(3)
    x, y = codes_and_labels(rng, 500, 4, 5)
    x[:, 1] = np.round(x[:, 1] * 4) / 4
    x[:, 2] = 0.7
    x_test, _ = codes_and_labels(rng, 100, 4, 5)
    ours = fit_gradient_boosting(x, y, x_test, tie_order="sklearn")
    reference = sklearn_reference(x, y, x_test)
    np.testing.assert_allclose(ours[0], reference[0], rtol=0, atol=1e-10)
    assert ours[0][2] == 0.0
    np.testing.assert_array_equal(ours[1], reference[1])
    np.testing.assert_array_equal(ours[2], reference[2])


def test_heavily_tied_and_duplicated_codes_match_sklearn_exactly():
    """Ties decide by scikit-learn's introsort order and feature draws: both are reproduced."""
    rng = np.random.default_rng(11)
    x, y = codes_and_labels(rng, 1500, 5, 6)
    x[:, 0] = np.round(x[:, 0] * 2)  # a handful of values, hundreds of samples each
    x[:, 3] = x[:, 0]  # a duplicated code: its splits tie exactly with code 0's
    x[:, 4] = np.where(rng.random(1500) < 0.5, 0.0, 1.0)
    x_test, _ = codes_and_labels(rng, 300, 5, 6)
    assert_sklearns_trees_for_two_seeds(x, y, x_test)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 1000, 4099])
def test_pairwise_sum_is_numpys_to_the_bit(n):
    a = np.random.default_rng(n).normal(size=n) * 10.0 ** np.random.default_rng(n + 1).integers(-8, 8, size=n)
    assert _pairwise_sum(a, 0, n) == np.sum(a)
    assert _pairwise_sum(np.r_[1.0, a], 1, n) == np.sum(a)


@pytest.mark.parametrize("n", [5, 16, 17, 300])
@pytest.mark.parametrize("distinct", [4, 1000])
def test_introsort_matches_a_plain_port_of_sklearns(n, distinct):
    """The shortcut (tie-free sub-arrays written out sorted) leaves the order of ties unchanged."""
    rng = np.random.default_rng(n)
    values = rng.integers(0, distinct, size=n).astype(np.float32)
    order = np.argsort(values, kind="stable").astype(np.int32)
    sorted_values = values[order]
    tie_prefix = np.r_[0, np.cumsum(sorted_values[1:] == sorted_values[:-1])].astype(np.int64)
    no_shortcut = np.full(n, np.arange(n), dtype=np.int64)  # every sub-array counts as tied
    plain_values, plain_indices = values.copy(), np.arange(n, dtype=np.int32)
    _introsort_3way(plain_values, plain_indices, 0, n, 2 * int(np.log2(n)), order, sorted_values, no_shortcut)
    fast_values, fast_indices = values.copy(), np.arange(n, dtype=np.int32)
    _introsort_3way(fast_values, fast_indices, 0, n, 2 * int(np.log2(n)), order, sorted_values, tie_prefix)
    assert np.all(np.diff(plain_values) >= 0)
    np.testing.assert_array_equal(values[plain_indices], plain_values)
    np.testing.assert_array_equal(fast_indices, plain_indices)
    sorting = pytest.importorskip("sklearn.utils._sorting")  # scikit-learn's own, private, wrapper
    sk_values, sk_indices = values.copy(), np.arange(n, dtype=np.intp)
    sorting._py_simultaneous_sort(sk_values, sk_indices, n, use_three_way_partition=True)
    np.testing.assert_array_equal(plain_indices, sk_indices)


def test_values_closer_than_the_feature_threshold_are_never_split():
    """scikit-learn's FEATURE_THRESHOLD: values within 1e-7 of their neighbour count as equal."""
    x = np.zeros((40, 2))
    x[:, 0] = np.arange(40) * 5e-8  # a chain of near-ties: one value to the splitter
    x[:, 1] = np.repeat([0.0, 1.0], 20)
    y = (np.arange(40) >= 15).astype(int)
    ours = fit_gradient_boosting(x, y, x, tie_order="sklearn")
    reference = sklearn_reference(x, y, x)
    np.testing.assert_allclose(ours[0], reference[0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours[1], reference[1])


def test_non_default_stages_rate_and_depth_match_sklearn():
    rng = np.random.default_rng(5)
    x, y = codes_and_labels(rng, 300, 3, 4)
    ours = fit_gradient_boosting(x, y, x[:50], n_stages=20, learning_rate=0.3, max_depth=2)
    reference = sklearn_reference(x, y, x[:50], n_estimators=20, learning_rate=0.3, max_depth=2)
    np.testing.assert_allclose(ours[0], reference[0], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ours[1], reference[1])


@pytest.mark.parametrize("tie_order", ["stable", "sklearn"])
def test_threads_give_identical_results(tie_order):
    rng = np.random.default_rng(7)
    x, y = codes_and_labels(rng, 300, 5, 6)
    x[:, 0] = np.round(x[:, 0])
    one = fit_gradient_boosting(x, y, x[:80], n_jobs=1, tie_order=tie_order)
    two = fit_gradient_boosting(x, y, x[:80], n_jobs=2, tie_order=tie_order)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_stable_tie_order_is_close_to_sklearns_on_tied_codes():
    """Summing tied samples in another order moves the criterion by rounding only."""
    rng = np.random.default_rng(3)
    x, y = codes_and_labels(rng, 800, 4, 5)
    x[:, 1] = np.round(x[:, 1] * 4) / 4
    stable = fit_gradient_boosting(x, y, x, tie_order="stable")
    exact = fit_gradient_boosting(x, y, x, tie_order="sklearn")
    np.testing.assert_allclose(stable[0], exact[0], atol=2e-3)
    assert np.mean(stable[1] == exact[1]) > 0.99


def test_labels_keep_their_values():
    rng = np.random.default_rng(8)
    x, y = codes_and_labels(rng, 200, 3, 3)
    labels = np.array([10, 20, 35])[y]
    _, predicted, _ = fit_gradient_boosting(x, labels, x)
    assert set(np.unique(predicted)) <= {10, 20, 35}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_depth": 4}, "max_depth must be <= 3"),
        ({"n_jobs": 0}, "n_jobs must be a positive integer"),
        ({"tie_order": "random"}, "tie_order must be 'sklearn' or 'stable'"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=message):
        fit_gradient_boosting(x, np.arange(20) % 2, x, **kwargs)


def test_a_single_class_is_refused():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="at least two classes"):
        fit_gradient_boosting(x, np.ones(5), x)


def test_dci_is_the_same_with_either_implementation():
    import metrics

    rng = np.random.default_rng(2)
    factors = np.stack([rng.integers(0, 3, 600), rng.integers(0, 5, 600)], axis=1)
    codes = np.concatenate(
        [factors + 0.3 * rng.normal(size=factors.shape), rng.normal(size=(600, 2))], axis=1
    )
    split = (codes[:400], factors[:400], codes[400:], factors[400:])
    presorted = metrics.dci(*split, rng=4, n_jobs=2)
    reference = metrics.dci(*split, rng=4, implementation="sklearn")
    assert presorted.keys() == reference.keys()
    for key in presorted:
        assert presorted[key] == pytest.approx(reference[key], abs=1e-12), key
    with pytest.raises(ValueError, match="implementation must be one of"):
        metrics.dci(*split, implementation="xgboost")


def test_without_numba_the_same_model_runs_in_sklearn(monkeypatch):
    """Where numba is missing (the GPU image), fit_gradient_boosting falls back to scikit-learn."""
    from metrics import exact_gbt

    rng = np.random.default_rng(12)
    x, y = codes_and_labels(rng, 300, 4, 4)
    compiled = fit_gradient_boosting(x, y, x[:50], random_state=3)
    monkeypatch.setattr(exact_gbt, "HAVE_NUMBA", False)
    fallback = fit_gradient_boosting(x, y, x[:50], random_state=3)
    np.testing.assert_allclose(compiled[0], fallback[0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(compiled[1], fallback[1])
    np.testing.assert_array_equal(compiled[2], fallback[2])


def test_twins_and_collisions_match_sklearn_exactly():
    """The study's case: twins, identical rows labelled apart, and codes that collide: sklearn's trees.

    Points drawn with replacement are twins (same row, same label: their order cannot matter);
    identical rows with different labels (dSprites' orientations 0 and 2 pi) and codes that
    collide in one feature can. The sort is replayed only for the latter, and the presorted
    trees are kept only where no decision can depend on it.
    """
    rng = np.random.default_rng(5)
    pool, pool_y = codes_and_labels(rng, 600, 4, 8)
    pool = pool.astype(np.float32)
    pool[1::50] = pool[::50]  # identical rows; their labels mostly differ
    pool[7::40, 2] = pool[3::40, 2]  # collisions in one code
    draw = rng.integers(0, len(pool), 900)  # with replacement: twins
    x, y = pool[draw], pool_y[draw]
    assert len(np.unique(x, axis=0)) < len(np.unique(np.c_[x, y], axis=0)) < len(x)
    x_test, _ = codes_and_labels(rng, 200, 4, 8)
    assert_sklearns_trees_for_two_seeds(x, y, x_test)


def test_the_order_error_bounds_a_measured_reordering():
    """``_order_error`` against the largest proxy difference measured between orders of one split's sums."""
    from metrics.exact_gbt import _order_error

    rng = np.random.default_rng(0)
    n, n_left = 2000, 700
    worst = 0.0
    for _ in range(100):
        r = rng.uniform(-1, 1, n) * rng.uniform(0, 1, n) ** 8  # magnitudes spread over decades
        proxies = []
        for _ in range(2):  # the same split, its sums taken in two random orders
            left, right = rng.permutation(r[:n_left]), rng.permutation(r[n_left:])
            s_left = 0.0
            for value in left:
                s_left += value
            s_total = s_left
            for value in right:
                s_total += value
            s_right = s_total - s_left
            proxies.append(s_left * s_left / n_left + s_right * s_right / (n - n_left))
        worst = max(worst, abs(proxies[0] - proxies[1]))
    assert 0.0 < worst <= _order_error(n, np.abs(r).sum())


def test_rows_labelled_apart_have_equal_residuals_in_every_other_class():
    """``_class_alike``'s premise: a row's samples share raw scores; their own classes' residuals differ."""
    from metrics.exact_gbt import _class_alike, _negative_gradient

    rng = np.random.default_rng(2)
    n_classes, labels = 6, np.array([0, 3, 5, 5])  # samples 0 and 1 share a row, as do 2 and 3
    raw = rng.normal(size=(n_classes, 1)).repeat(2, axis=1)  # (K, 2): the two rows' raw scores
    raw = np.ascontiguousarray(raw[:, [0, 0, 1, 1]] + np.array([0.0, 0.0, 0.25, 0.25]))  # (K, 4)
    onehot = np.zeros((n_classes, 4))
    onehot[labels, np.arange(4)] = 1.0
    residual = np.empty_like(raw)
    _negative_gradient(raw, onehot, False, residual)
    row = np.array([0, 0, 1, 1], np.int64)
    alike = np.empty(4, np.int64)
    for k in range(n_classes):
        _class_alike(row, onehot[k], alike)
        assert (alike[0] == alike[1]) == (k not in (0, 3))  # labelled 0 and 3
        assert (residual[k, 0] == residual[k, 1]) == (alike[0] == alike[1])
        assert alike[2] == alike[3] and residual[k, 2] == residual[k, 3]  # twins: one label
        assert alike[1] != alike[2]  # other rows are never alike


def test_many_rows_labelled_apart_match_sklearn_exactly():
    """A third of the rows repeated under another label, among 12 classes: scikit-learn's trees.

    Each repeat ties in every feature and matters only to the trees of its two labels; the other
    trees keep their presorted order.
    """
    rng = np.random.default_rng(8)
    pool, pool_y = codes_and_labels(rng, 300, 4, 12)
    pool = pool.astype(np.float32)
    pool[100:200] = pool[:100]  # the same rows ...
    pool_y[100:200] = (pool_y[:100] + 1 + rng.integers(0, 11, 100)) % 12  # ... labelled apart
    draw = rng.integers(0, len(pool), 600)  # with replacement: twins too
    x, y = pool[draw], pool_y[draw]
    x_test, _ = codes_and_labels(rng, 100, 4, 12)
    assert_sklearns_trees_for_two_seeds(x, y, x_test)


@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_fits_side_by_side_on_one_stream_are_the_fits_one_after_another(n_jobs):
    """``fit_gradient_boostings``: every fit's seeds drawn in order, stages interleaved on the threads."""
    from metrics.exact_gbt import SMALL_STAGE, fit_gradient_boostings

    rng = np.random.default_rng(4)
    problems = []
    for n, n_classes in ((300, 3), (200, 2), (2500, 9), (120, 5)):  # small and large stages
        x, y = codes_and_labels(rng, n, 4, n_classes)
        x[:, 2] = np.round(x[:, 2])  # ties: the seeds decide between tied splits
        problems.append((x, y, x[:50]))
    assert any(len(x) * 9 >= SMALL_STAGE for x, _, _ in problems)  # a stage a tree a task
    stream = np.random.RandomState(9)
    in_turn = [fit_gradient_boosting(*problem, random_state=stream._bit_generator) for problem in problems]
    stream = np.random.RandomState(9)
    side_by_side = fit_gradient_boostings(problems, [stream._bit_generator] * 4, n_jobs=n_jobs)
    for ours, reference in zip(side_by_side, in_turn, strict=True):
        for a, b in zip(ours, reference):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="4 problems need as many random_states; got 1"):
        fit_gradient_boostings(problems, [0])


def test_an_error_in_a_fit_side_by_side_is_raised(monkeypatch):
    from metrics import exact_gbt

    def broken(*args):
        raise FloatingPointError("a tree failed")

    monkeypatch.setattr(exact_gbt, "_fit_stage_trees", broken)
    rng = np.random.default_rng(1)
    problems = [(*codes_and_labels(rng, 400, 3, 60), np.zeros((5, 3))) for _ in range(2)]
    with pytest.raises(FloatingPointError, match="a tree failed"):
        exact_gbt.fit_gradient_boostings([(x, y, t) for x, y, t in problems], [0, 1], n_jobs=2)


def test_the_scans_bound_is_never_below_a_proxy():
    """``_BOUND_SLACK``: the product with reciprocals, times the slack, bounds the divided proxy.

    A plain scan skips a candidate's divisions when that bound is no larger than the best proxy; were
    the bound ever below its proxy, a better split could be skipped. Checked on sums of residuals in
    [-1, 1] at every count split of small nodes and at random ones of large nodes, ties at 0 included.
    """
    from metrics.exact_gbt import _BOUND_SLACK

    rng = np.random.default_rng(0)
    cases = [(n_left, n - n_left) for n in range(2, 300) for n_left in range(1, n)]
    cases += [tuple(int(v) for v in rng.integers(1, 10_000, 2)) for _ in range(20_000)]
    for n_left, n_right in cases:
        for sum_left, sum_right in (rng.uniform(-1, 1, 2) * (n_left, n_right)).tolist(), (0.0, 0.0):
            proxy = sum_left * sum_left / n_left + sum_right * sum_right / n_right
            bound = sum_left * sum_left * (1.0 / n_left) + sum_right * sum_right * (1.0 / n_right)
            assert proxy <= bound * _BOUND_SLACK


def sklearns_scan(values, residual, start, end):
    """A plain port of node_split_best's scan of one feature: (position, left sum) at every candidate.

    Partitioner.next_p steps over values within FEATURE_THRESHOLD of their predecessor (float32);
    Criterion.update adds the samples stepped over from the left, or, when the step is longer than the
    rest of the node, restarts from the total and subtracts the rest, last first.
    """
    threshold = np.float32(1e-7)
    total = 0.0
    for q in range(start, end):
        total += residual[q]
    sum_left, pos, p, out = 0.0, start, start, []
    while p < end:
        p += 1
        while p < end and values[p] <= values[p - 1] + threshold:
            p += 1
        if p >= end:
            break
        if p - pos <= end - p:
            for q in range(pos, p):
                sum_left += residual[q]
        else:
            sum_left = total
            for q in range(end - 1, p - 1, -1):
                sum_left -= residual[q]
        pos = p
        out.append((p, sum_left))
    return total, out


@pytest.mark.parametrize("layout", ["continuous", "tied", "long_tie_then_a_few", "near_ties"])
def test_the_scan_kernel_reaches_sklearns_sums_at_every_candidate(layout):
    """``_next_candidate_split`` with no threshold stops at every candidate, with scikit-learn's sums.

    Bit for bit, on a node inside a longer array (start > 0): continuous values, many ties, a long tie
    followed by a few values (Criterion.update's subtraction from the end), and near-ties.
    """
    from metrics.exact_gbt import _next_candidate_split

    rng = np.random.default_rng(3)
    n, start, end = 400, 37, 350
    values = {
        "continuous": np.sort(rng.normal(size=n)),
        "tied": np.sort(rng.integers(0, 9, n)),
        "long_tie_then_a_few": np.r_[np.zeros(n - 80), np.sort(rng.normal(size=80)) + 5.0],
        "near_ties": np.cumsum(rng.choice([4e-8, 1e-3], size=n, p=[0.7, 0.3])),  # steps float32 keeps
    }[layout].astype(np.float32)
    residual = rng.uniform(-1, 1, n)
    samples = np.arange(n, dtype=np.int32)
    inverse = 1.0 / np.maximum(np.arange(n + 1), 1.0)
    total, expected = sklearns_scan(values, residual, start, end)
    assert expected
    reached, p, sum_left, value = [], start, 0.0, values[start]
    while True:
        args = (samples, values, residual, inverse, start, end, p, sum_left, value, total, -np.inf)
        p, sum_left, value = _next_candidate_split(*args)
        if p >= end:
            break
        reached.append((p, sum_left))
    assert reached == expected  # positions and float sums, to the bit
    if layout == "long_tie_then_a_few":  # the case is there: the first candidate is reached from the end
        assert expected[0][0] - start > end - expected[0][0]
