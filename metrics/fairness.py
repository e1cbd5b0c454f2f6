"""Fairness: how a classifier's predictions of one factor move under interventions on another (dlib's).

Locatello et al. 2019, "On the Fairness of Disentangled Representations",
Sec. 4: a classifier is trained on the codes of ``n_train`` points to predict
the target factor ``i``; for every other (sensitive) factor ``j``, ``n_test_per_class``
random factor vectors are drawn once and copied with ``j`` set to each of its
values ``c`` (``do(s_j = c)``); the unfairness of ``(i, j)`` is the total
variation between the distribution of the predictions under each intervention
and the pooled distribution over all interventions,

    TV_c = 1/2 sum_k |P(pred = k | do(s_j = c)) - P(pred = k)|,

averaged over ``c`` (``mean``) or maximised (``max``). Lower is fairer; a
perfect classifier scores exactly 0. dlib computes the TV in float32; so do we
(its values carry float32 rounding, e.g. 0.05111111203829448).

Keys (dlib's ``compute_scores_dict`` for the ``(F, F)`` matrices, rows = predicted
factor ``i``, columns = sensitive factor ``j``, diagonal unused): dlib's
``mean_fairness:<a>:<b>`` becomes ``fairness_mean_<a>_<b>`` and
``max_fairness:<a>:<b>`` becomes ``fairness_max_<a>_<b>``; the aggregates
``<a>:<b>`` are ``mean_sens:mean_pred``, ``mean_sens:max_pred``,
``max_sens:mean_pred``, ``max_sens:max_pred`` (outer aggregation over sensitive
factors of the inner one over predicted factors) and the four ``*_pred:*_sens``
(outer over predicted). The paper's score is ``fairness_mean_mean_pred_mean_sens``.
``per_factor=True`` adds dlib's ``pred<i>:sens<j>``, ``pred<i>:{mean,max}_sens`` and
``sens<j>:{mean,max}_pred`` keys, in dlib's order; the registered metric leaves them out
(their number depends on the data set).

Classifier: dlib's study binds ``gradient_boosting_classifier``, grown by
:mod:`metrics.exact_gbt` as in :mod:`metrics.downstream_task`; ``classifier_rng``
stands for dlib's global RNG. The intervened points come from
:func:`metrics.interventions.sample_interventions`.
"""

from __future__ import annotations

import numpy as np

from metrics._validation import check_counts, warn
from metrics.downstream_task import _check_classifier_rng, _check_options, fit_predict
from metrics.interventions import sample_interventions
from metrics.registry import register_metric
from metrics.sampling import Encoder, GroundTruthSampler, RandomGenerator, check_rng, sample_codes_and_factors

__all__ = ["fairness", "inter_group_fairness", "fairness_scores_from_matrices"]

_AGGREGATES = (
    "mean_sens:mean_pred",
    "mean_sens:max_pred",
    "max_sens:mean_pred",
    "max_sens:max_pred",
    "mean_pred:mean_sens",
    "mean_pred:max_sens",
    "max_pred:mean_sens",
    "max_pred:max_sens",
)


def inter_group_fairness(counts: np.ndarray) -> tuple[float, float]:
    """Mean and max over interventions of the TV to the pooled prediction distribution, in dlib's float32.

    Args:
        counts: ``(n_classes_predicted, n_values_sensitive)`` int, column ``c`` the prediction
            counts under ``do(s = c)``; every column must hold at least one prediction.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise ValueError(
            f"counts must be a 2-D array of non-negative integers; got {counts.dtype} {counts.shape}"
        )
    per_value = counts.sum(axis=0)  # (n_values,) int64
    if (per_value == 0).any():
        raise ValueError("counts must hold at least one prediction in every column (intervention)")
    pooled = counts.sum(axis=1, dtype=np.float32)  # P(pred), pooled over the interventions
    pooled /= pooled.sum()
    conditional = counts.astype(np.float32)
    conditional /= per_value[None, :]  # P(pred | do(s = c)), rounded to float32
    tv = np.sum(np.abs(conditional - pooled[:, None]), axis=0) / 2.0  # (n_values,) float32
    mean = tv * per_value  # float64 from here, as in dlib
    mean /= per_value.sum()
    return float(np.sum(mean)), float(np.amax(tv))


def _scores_dict(matrix: np.ndarray, prefix: str, per_factor: bool) -> dict[str, float]:
    """dlib's ``compute_scores_dict`` for one ``(F, F)`` matrix, same operations in the same order."""
    n = matrix.shape[0]
    out: dict[str, float] = {}
    if per_factor:
        out.update({f"{prefix}_pred{i}_sens{j}": matrix[i, j] for i in range(n) for j in range(n) if i != j})
    row_means, row_maxs, column_means, column_maxs = [], [], [], []
    for i in range(n):
        row = [matrix[i, j] for j in range(n) if j != i]
        row_means.append(np.mean(row))
        row_maxs.append(np.amax(row))
        if per_factor:
            out[f"{prefix}_pred{i}_mean_sens"], out[f"{prefix}_pred{i}_max_sens"] = (
                row_means[-1],
                row_maxs[-1],
            )
    for j in range(n):
        column = [matrix[i, j] for i in range(n) if i != j]
        column_means.append(np.mean(column))
        column_maxs.append(np.amax(column))
        if per_factor:
            out[f"{prefix}_sens{j}_mean_pred"] = column_means[-1]
            out[f"{prefix}_sens{j}_max_pred"] = column_maxs[-1]
    values = (
        np.mean(column_means),
        np.mean(column_maxs),
        np.amax(column_means),
        np.amax(column_maxs),
        np.mean(row_means),
        np.mean(row_maxs),
        np.amax(row_means),
        np.amax(row_maxs),
    )
    for name, value in zip(_AGGREGATES, values):
        out[f"{prefix}_{name.replace(':', '_')}"] = value
    return {k: float(v) for k, v in out.items()}


def fairness_scores_from_matrices(
    mean_fairness: np.ndarray, max_fairness: np.ndarray, *, per_factor: bool = True
) -> dict[str, float]:
    """Every key of dlib's fairness score from its two ``(F, F)`` matrices [predicted i, sensitive j].

    NaN entries (a predicted factor with a single training value) propagate to the aggregates.
    """
    mean_fairness, max_fairness = np.asarray(mean_fairness, float), np.asarray(max_fairness, float)
    for name, m in (("mean_fairness", mean_fairness), ("max_fairness", max_fairness)):
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
            raise ValueError(f"{name} must be a square (F, F) matrix with F >= 2; got shape {m.shape}")
    if mean_fairness.shape != max_fairness.shape:
        raise ValueError(
            "mean_fairness and max_fairness must have the same shape; "
            f"got {mean_fairness.shape} and {max_fairness.shape}"
        )
    return {
        **_scores_dict(mean_fairness, "fairness_mean", per_factor),
        **_scores_dict(max_fairness, "fairness_max", per_factor),
    }


def _aggregate_keys() -> list[str]:
    return [f"fairness_{p}_{a.replace(':', '_')}" for p in ("mean", "max") for a in _AGGREGATES]


@register_metric(
    "fairness",
    inputs="sampler",
    higher_is_better=dict.fromkeys(_aggregate_keys(), False),
    study={"n_train": 10000, "n_test_per_class": 100, "batch_size": 16},
    fast={"n_train": 500, "n_test_per_class": 50, "batch_size": 250},
    # The training set, then per (predicted i, sensitive j != i) K_j intervened copies of the test points.
    encodes=lambda s, sizes: s["n_train"] + s["n_test_per_class"] * (len(sizes) - 1) * sum(sizes),
)
def fairness(
    sampler: GroundTruthSampler,
    encode: Encoder,
    rng: RandomGenerator,
    *,
    n_train: int = 10000,
    n_test_per_class: int = 100,
    batch_size: int = 16,
    predictor: str = "gradient_boosting_classifier",
    per_factor: bool = False,
    classifier_rng: np.random.RandomState | int | None = None,
    implementation: str = "presorted",
    tie_order: str = "sklearn",
    n_jobs: int = 1,
) -> dict[str, float]:
    """Unfairness (Locatello et al. 2019, Sec. 4): TV of one factor's predictions under do() on another.

    Args:
        sampler: the ground-truth data set, >= 2 factors.
        encode: observations -> codes ``(n, n_codes)``.
        rng: draws the ``n_train`` training points, then for each (predicted i, sensitive j != i)
            in order ``n_test_per_class`` factor vectors to intervene on (dlib's order).
        n_train: dlib's ``num_train`` (study 10000).
        n_test_per_class: dlib's ``num_test_points_per_class`` (study 100).
        batch_size: points per ``encode`` call (dlib: 16).
        predictor: ``"gradient_boosting_classifier"`` (the study's) or ``"logistic_regression_cv"``.
        per_factor: also return dlib's per-factor keys.
        classifier_rng: the trees' stream (dlib: numpy's global RNG); None seeds one from ``rng``
            after all points are drawn.
        implementation: trees grown by ``"presorted"`` or ``"sklearn"`` (metrics.downstream_task).
        tie_order: exact_gbt's order of summing tied values (metrics.downstream_task).
        n_jobs: threads for a stage's per-class trees (presorted only).

    Keys ``fairness_{mean,max}_<aggregate>`` (lower is fairer; see the module docstring).
    A predicted factor with a single training value (dlib's classifier raises): its row is NaN,
    with a MetricWarning.
    """
    _check_options(predictor, implementation)
    check_counts(n_train=n_train, n_test_per_class=n_test_per_class, batch_size=batch_size)
    rng = check_rng(rng)
    sizes = tuple(int(s) for s in sampler.factor_sizes)
    if len(sizes) < 2:
        raise ValueError(f"sampler.factor_sizes must name at least 2 factors; got {sizes}")
    n_factors = len(sizes)
    codes_train, factors_train = sample_codes_and_factors(sampler, encode, n_train, rng, batch_size)
    # All intervened points first, in dlib's order (the classifiers never touch rng):
    # tests[i][j] (K_j, n_test_per_class, n_codes).
    tests = [
        {
            j: sample_interventions(sampler, encode, n_test_per_class, rng, factor=j, batch_size=batch_size)
            for j in range(n_factors)
            if j != i
        }
        for i in range(n_factors)
    ]
    classifier_rng = _check_classifier_rng(classifier_rng, rng)
    mean_fairness = np.zeros((n_factors, n_factors))
    max_fairness = np.zeros((n_factors, n_factors))
    for i in range(n_factors):
        if len(np.unique(factors_train[:, i])) < 2:
            warn(f"fairness: factor {i} takes a single value in the training points (dlib raises) -> NaN row")
            mean_fairness[i, :] = max_fairness[i, :] = np.nan
            continue
        others = list(tests[i])
        x_eval = np.concatenate([tests[i][j].reshape(-1, codes_train.shape[1]) for j in others])
        _, predicted = fit_predict(
            codes_train,
            factors_train[:, i],
            x_eval,
            predictor=predictor,
            classifier_rng=classifier_rng,
            implementation=implementation,
            tie_order=tie_order,
            n_jobs=n_jobs,
        )
        start = 0
        for j in others:
            counts = np.zeros((sizes[i], sizes[j]), dtype=np.int64)
            for c in range(sizes[j]):
                block = predicted[start : start + n_test_per_class].astype(np.int64)
                counts[:, c] = np.bincount(block, minlength=sizes[i])
                start += n_test_per_class
            mean_fairness[i, j], max_fairness[i, j] = inter_group_fairness(counts)
    return fairness_scores_from_matrices(mean_fairness, max_fairness, per_factor=per_factor)
