"""Separated Attribute Predictability (SAP), as disentanglement_lib computes it.

Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from
Unlabeled Observations", section 3: a score matrix ``S[i, j]`` of how well
code ``i`` alone predicts factor ``j``; SAP is the mean over factors of the gap
between the two largest entries of the factor's column.

dlib (``evaluation/metrics/sap_score.py``) has two modes. The studies use the
discrete one (``continuous_factors=False``): ``S[i, j]`` is the test accuracy of
a 1-D ``LinearSVC(C=0.01, class_weight="balanced")`` (one-vs-rest) trained on
code ``i`` to predict factor ``j``. The continuous one (what dlib's unit tests
use) is the squared Pearson correlation on the training set, 0 for a code
with variance <= 1e-12.
"""

from __future__ import annotations

import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from metrics._validation import check_arrays, warn
from metrics.registry import FitCost, Presentation, register_metric

__all__ = ["sap", "sap_score_matrix", "sap_from_score_matrix"]


def sap_from_score_matrix(score_matrix: np.ndarray) -> float:
    """Mean over factors of (largest - second largest score over codes); ``(n_codes, n_factors)`` in."""
    ordered = np.sort(score_matrix, axis=0)
    return float(np.mean(ordered[-1, :] - ordered[-2, :]))


def _svm_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    with warnings.catch_warnings():
        # dlib runs liblinear with its default 1000 iterations and keeps the result; so do we.
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
        classifier.fit(x_train[:, None], y_train)
    return float(np.mean(classifier.predict(x_test[:, None]) == y_test))


def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    continuous_factors: bool = False,
    n_jobs: int = 1,
) -> np.ndarray:
    """dlib's ``compute_score_matrix``: ``(n_codes, n_factors)`` (inputs already validated).

    Factors with a single value in the training set get a NaN column (dlib's
    LinearSVC raises on them; the continuous mode divides by zero).
    """
    n_codes, n_factors = codes_train.shape[1], factors_train.shape[1]
    single = [len(np.unique(factors_train[:, j])) < 2 for j in range(n_factors)]
    scores = np.zeros((n_codes, n_factors))
    if continuous_factors:
        for i in range(n_codes):
            for j in range(n_factors):
                if single[j]:
                    scores[i, j] = np.nan
                    continue
                cov = np.cov(codes_train[:, i], factors_train[:, j], ddof=1)
                var_code, var_factor = cov[0, 0], cov[1, 1]
                scores[i, j] = cov[0, 1] ** 2 / (var_code * var_factor) if var_code > 1e-12 else 0.0
        return scores
    pairs = [(i, j) for j in range(n_factors) for i in range(n_codes) if not single[j]]
    # 1-D fits are independent; liblinear releases the GIL, so threads share the cores.
    accuracies = Parallel(n_jobs=n_jobs, backend="threading")(
        delayed(_svm_accuracy)(codes_train[:, i], factors_train[:, j], codes_test[:, i], factors_test[:, j])
        for i, j in pairs
    )
    for (i, j), accuracy in zip(pairs, accuracies):
        scores[i, j] = accuracy
    scores[:, single] = np.nan
    return scores


#: Scores defined on [0, 1] (accuracies, normalised information).
_UNIT = (0.0, 1.0)


@register_metric(
    "sap",
    inputs="train_test",
    higher_is_better={"sap": True},
    bounds={"sap": _UNIT},
    study={"n_train": 10000, "n_test": 5000, "batch_size": 16, "continuous_factors": False},
    fast={"n_train": 2000, "n_test": 1000, "batch_size": 500, "continuous_factors": False},
    presentation=Presentation(labels={"sap": "SAP"}, headline={"sap": 6}),
    fit_cost=FitCost(0.60),
)
def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    continuous_factors: bool = False,
    n_jobs: int = 1,
) -> dict[str, float]:
    """SAP score (key ``sap``); the study's discrete mode by default.

    Args:
        codes_train: ``(N, n_codes)`` float training codes, at least 2 codes.
        factors_train: ``(N, n_factors)`` int factors of the same points.
        codes_test: ``(M, n_codes)`` held-out codes (the discrete mode scores on them; the
            continuous mode ignores them, as dlib).
        factors_test: ``(M, n_factors)`` their factors.
        continuous_factors: False: 1-D linear SVM test accuracies (the studies); True:
            squared correlations (dlib's unit tests).
        n_jobs: threads for the independent 1-D SVM fits (same result for any value).

    A factor with a single value in the training set: dlib raises (discrete) or
    returns NaN (continuous); we return NaN with a warning.
    """
    codes_train, factors_train, codes_test, factors_test = check_arrays(
        codes_train=codes_train,
        factors_train=factors_train,
        codes_test=codes_test,
        factors_test=factors_test,
        min_codes=2,
    )
    scores = sap_score_matrix(
        codes_train,
        factors_train,
        codes_test,
        factors_test,
        continuous_factors=continuous_factors,
        n_jobs=n_jobs,
    )
    if np.isnan(scores).any():
        constant = [int(j) for j in np.flatnonzero(np.isnan(scores).any(axis=0))]
        warn(f"sap: factor(s) {constant} take a single value in factors_train; SAP is undefined -> NaN")
        return {"sap": float("nan")}
    return {"sap": sap_from_score_matrix(scores)}
