"""DCI: disentanglement, completeness, informativeness, as disentanglement_lib computes it.

Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of
Disentangled Representations": regress each factor on all codes, read an
importance matrix ``R`` (codes x factors) off the regressors; disentanglement
``D = sum_i rho_i (1 - H_F(P_i.))`` with ``P_i.`` the normalised row of code
``i``, ``rho_i`` its share of the total importance and ``H_F`` the entropy in
base ``n_factors``; completeness the same over columns in base ``n_codes``.

dlib (``evaluation/metrics/dci.py``) fits one
``sklearn.ensemble.GradientBoostingClassifier()`` (all defaults: 100 stages of
depth-3 trees) per factor, takes ``|feature_importances_|`` as the column,
adds 1e-11 before the entropies, and reports **informativeness as the mean
classification accuracy** (train and test; higher is better), not Eastwood &
Williams' prediction error. Its trees draw tie-breaks from numpy's global
RNG, so its own runs differ by a few 1e-3 on tied codes.

The classifier is scikit-learn's, re-implemented: ``metrics.exact_gbt`` grows
the same trees as ``GradientBoostingClassifier(random_state=seed)`` (same
splits, leaf values, importances and predictions, to the bit on codes without
repeated values; on repeated values it sums tied samples in sample order
rather than in scikit-learn's introsort order, a last-bit difference; see its
docstring and tests/metrics/test_exact_gbt.py) about 7x faster on one thread,
by sorting each code once per fit instead of at every node and compiling the
tree growing with numba. ``implementation="sklearn"`` fits scikit-learn's own
``GradientBoostingClassifier`` instead.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
from joblib import Parallel, delayed
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from metrics._validation import check_arrays, warn
from metrics.exact_gbt import fit_gradient_boostings
from metrics.registry import FitCost, Presentation, register_metric
from metrics.sampling import RandomGenerator, check_rng, rng_integers

__all__ = ["dci", "dci_fast", "disentanglement_completeness"]

_KEYS = ("dci_disentanglement", "dci_completeness", "dci_informativeness_train", "dci_informativeness_test")


def disentanglement_completeness(importance: np.ndarray) -> dict[str, float]:
    """D and C from an importance matrix ``(n_codes, n_factors)``, dlib's formulas exactly.

    An all-zero matrix gives D = C = 0 (the weights fall back to uniform).
    """
    importance = np.asarray(importance, dtype=np.float64)
    if importance.ndim != 2 or min(importance.shape) < 2:
        raise ValueError(f"importance must be (n_codes >= 2, n_factors >= 2); got shape {importance.shape}")
    n_codes, n_factors = importance.shape
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=n_factors)
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=n_codes)
    weights = np.ones_like(importance) if importance.sum() == 0.0 else importance
    code_weight = weights.sum(axis=1) / weights.sum()
    factor_weight = weights.sum(axis=0) / weights.sum()
    return {
        "dci_disentanglement": float(np.sum(per_code * code_weight)),
        "dci_completeness": float(np.sum(per_factor * factor_weight)),
    }


def _fit_presorted_gbts(codes_train, factors_train, codes_test, factors_test, seeds, n_jobs, backend):
    """Every factor's classifier at once: ``fit_gradient_boostings`` shares the threads among their trees.

    (``backend`` is joblib's, for the per-factor fits; the compiled trees run on their own threads.)
    """
    problems = [(codes_train, y, codes_test) for y in factors_train.T]
    fits = fit_gradient_boostings(problems, random_states=seeds, n_jobs=n_jobs)
    out = []
    for (importance, predicted_train, predicted_test), y_train, y_test in zip(
        fits, factors_train.T, factors_test.T
    ):
        out.append(
            (np.abs(importance), np.mean(predicted_train == y_train), np.mean(predicted_test == y_test))
        )
    return out


def _fit_gbt(x_train, y_train, x_test, y_test, seed):
    model = GradientBoostingClassifier(random_state=seed)
    model.fit(x_train, y_train)
    importance = np.abs(model.feature_importances_)
    return importance, np.mean(model.predict(x_train) == y_train), np.mean(model.predict(x_test) == y_test)


def _fit_hgb(x_train, y_train, x_test, y_test, seed):
    model = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_depth=3,
        max_leaf_nodes=None,
        min_samples_leaf=1,
        l2_regularization=0.0,
        early_stopping=False,
        random_state=seed,
    )
    # One OpenMP thread per fit (a per-thread setting): our own parallelism is over factors, and
    # OpenMP's spinning threads on a busy 2-core machine made a fit 10x slower (4 s -> 50 s).
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(x_train, y_train)
        predicted_train, predicted_test = model.predict(x_train), model.predict(x_test)
    # Histogram GBTs keep no impurity importances; sum each feature's split gains instead.
    importance = np.zeros(x_train.shape[1])
    for stage in model._predictors:
        for predictor in stage:
            nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            np.add.at(importance, nodes["feature_idx"], np.maximum(nodes["gain"], 0.0))
    total = importance.sum()
    importance = importance / total if total > 0 else importance
    return importance, np.mean(predicted_train == y_train), np.mean(predicted_test == y_test)


def _each_factor(fit):
    """``fit`` (one factor's classifier) as a fit of every factor: joblib over the factors, largest first."""

    def fit_factors(codes_train, factors_train, codes_test, factors_test, seeds, n_jobs, backend):
        n_classes = [len(np.unique(y)) for y in factors_train.T]
        order = sorted(range(len(n_classes)), key=lambda j: -n_classes[j])  # the short ones start last
        in_order = Parallel(n_jobs=n_jobs, backend=backend)(
            delayed(fit)(codes_train, factors_train[:, j], codes_test, factors_test[:, j], seeds[j])
            for j in order
        )
        return [in_order[order.index(j)] for j in range(len(n_classes))]

    return fit_factors


def _dci(name, fit_factors, codes_train, factors_train, codes_test, factors_test, rng, n_jobs, backend):
    """DCI from ``fit_factors`` (every factor's importance column and accuracies, from per-factor seeds)."""
    codes_train, factors_train, codes_test, factors_test = check_arrays(
        codes_train=codes_train,
        factors_train=factors_train,
        codes_test=codes_test,
        factors_test=factors_test,
        min_codes=2,
        min_factors=2,
    )
    rng = check_rng(rng)
    n_codes, n_factors = codes_train.shape[1], factors_train.shape[1]
    n_classes = [len(np.unique(factors_train[:, j])) for j in range(n_factors)]
    if min(n_classes) < 2:
        single = [j for j, k in enumerate(n_classes) if k < 2]
        warn(f"{name}: factor(s) {single} take a single value in factors_train (dlib's GBT raises) -> NaN")
        return dict.fromkeys(_KEYS, float("nan"))
    # One seed per factor, drawn up front: the result does not depend on n_jobs or on the order of the fits.
    seeds = [int(s) for s in np.atleast_1d(rng_integers(rng, 2**31 - 1, size=n_factors))]
    fits = fit_factors(codes_train, factors_train, codes_test, factors_test, seeds, n_jobs, backend)
    importance = np.zeros((n_codes, n_factors))
    acc_train, acc_test = np.zeros(n_factors), np.zeros(n_factors)
    for j, (column, a_train, a_test) in enumerate(fits):
        importance[:, j], acc_train[j], acc_test[j] = column, a_train, a_test
    return {
        **disentanglement_completeness(importance),
        "dci_informativeness_train": float(np.mean(acc_train)),
        "dci_informativeness_test": float(np.mean(acc_test)),
    }


_HIGHER = dict.fromkeys(_KEYS, True)


#: Scores defined on [0, 1] (accuracies, normalised information).
_UNIT = (0.0, 1.0)


@register_metric(
    "dci",
    inputs="train_test",
    higher_is_better=_HIGHER,
    bounds=dict.fromkeys(_KEYS, _UNIT),
    study={"n_train": 10000, "n_test": 5000, "batch_size": 16},
    fast={"n_train": 500, "n_test": 250, "batch_size": 250},
    presentation=Presentation(
        labels={"dci_disentanglement": "DCI disentanglement"}, headline={"dci_disentanglement": 5}
    ),
    fit_cost=FitCost(8.10, per_class=True),
)
def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    rng: RandomGenerator | int = 0,
    n_jobs: int = 1,
    backend: str = "threading",
    implementation: str = "presorted",
) -> dict[str, float]:
    """DCI with dlib's gradient-boosted trees (keys ``dci_*``; informativeness is an accuracy).

    Args:
        codes_train: ``(N, n_codes)`` float training codes, >= 2 codes.
        factors_train: ``(N, n_factors)`` int factors of the same points, >= 2 factors.
        codes_test: ``(M, n_codes)`` held-out codes for ``dci_informativeness_test``.
        factors_test: ``(M, n_factors)`` their factors.
        rng: seeds the trees' tie-breaking (one seed per factor; dlib uses the global RNG); both
            implementations give the same trees for the same seed.
        n_jobs: threads: over every factor's stages' trees (presorted), over factors (sklearn).
        backend: joblib backend for ``implementation="sklearn"``: ``"threading"`` (its tree
            builder releases the GIL) or ``"loky"`` (processes).
        implementation: ``"presorted"`` (``metrics.exact_gbt``, the default) or ``"sklearn"``
            (``GradientBoostingClassifier`` itself; the same model, several times slower).

    A factor with a single value in the training set: dlib's classifier raises;
    we return NaN for all four keys with a warning.
    """
    fits = {"presorted": _fit_presorted_gbts, "sklearn": _each_factor(_fit_gbt)}
    if implementation not in fits:
        raise ValueError(f"implementation must be one of {sorted(fits)}; got {implementation!r}")
    arrays = (codes_train, factors_train, codes_test, factors_test)
    return _dci("dci", fits[implementation], *arrays, rng, n_jobs, backend)


_FAST_KEYS = tuple(k.replace("dci_", "dci_fast_", 1) for k in _KEYS)


@register_metric(
    "dci_fast",
    inputs="train_test",
    higher_is_better=dict.fromkeys(_FAST_KEYS, True),
    bounds=dict.fromkeys(_FAST_KEYS, _UNIT),
    study={"n_train": 10000, "n_test": 5000, "batch_size": 16},
    fast={"n_train": 500, "n_test": 250, "batch_size": 250},
)
def dci_fast(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    rng: RandomGenerator | int = 0,
    n_jobs: int = 1,
    backend: str = "threading",
) -> dict[str, float]:
    """DCI with histogram gradient boosting: NOT dlib's numbers (keys ``dci_fast_*``).

    Same protocol as :func:`dci`, but each factor is fitted with
    ``HistGradientBoostingClassifier`` (100 iterations, learning rate 0.1, depth 3,
    codes binned into 255 quantiles) and the importance of a code is the sum of
    its split gains (second-order loss reductions), normalised to 1, instead of
    the trees' impurity decrease. Report it under its own name: it agrees with
    :func:`dci` only approximately (dlib's fixtures: within 0.08, see
    tests/metrics/test_properties.py::test_dci_fast_is_close_to_dci_but_not_equal). It was written
    as a faster DCI; at the study's sizes the exact :func:`dci` is now the faster of the two
    (results/perf/metrics_cpu.md: 4.9 s against 7.4 s on 2 cores).
    """
    scores = _dci(
        "dci_fast",
        _each_factor(_fit_hgb),
        codes_train,
        factors_train,
        codes_test,
        factors_test,
        rng,
        n_jobs,
        backend,
    )
    # Its own keys, so that a record holding both never confuses it with dlib's DCI.
    return {k.replace("dci_", "dci_fast_", 1): v for k, v in scores.items()}
