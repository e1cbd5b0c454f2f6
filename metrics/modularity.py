"""Modularity and explicitness, as disentanglement_lib computes them.

Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings with the
F-Statistic Loss", section 3: a code is modular when it carries information
about one factor only, ``modularity_i = 1 - sum_{j != j*} m_ij^2 / (m_ij*^2 (F - 1))``
with ``m`` the mutual information; explicitness is how well a linear
classifier on all codes predicts each factor (ROC AUC).

dlib (``evaluation/metrics/modularity_explicitness.py``): plug-in MI on codes
discretised into 20 equal-width bins (nats); a code with zero MI everywhere
scores 0 and counts in the mean. Explicitness z-scores the codes with the
training mean and standard deviation (ddof 0), fits one scikit-learn-default
``LogisticRegression()`` per factor (lbfgs, multinomial, C=1, max_iter=100)
and averages the macro one-vs-rest ROC AUC of ``predict_proba`` over factors,
on the training and on the test set.
"""

from __future__ import annotations

import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer

from metrics._threads import single_threaded_blas
from metrics._validation import check_arrays, warn
from metrics.registry import FitCost, Presentation, register_metric
from metrics.utils import discrete_mutual_info, histogram_discretize

__all__ = ["modularity_explicitness", "modularity_from_mutual_info", "explicitness_per_factor"]


def modularity_from_mutual_info(mutual_info: np.ndarray) -> float:
    """Mean modularity over codes of an MI matrix ``(n_codes, n_factors)``; dlib's ``modularity``."""
    squared_mi = np.square(mutual_info)
    max_squared_mi = np.max(squared_mi, axis=1)
    numerator = np.sum(squared_mi, axis=1) - max_squared_mi
    denominator = max_squared_mi * (squared_mi.shape[1] - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # dead codes: 0/0, set to 0 just below
        modularity = 1.0 - numerator / denominator
    modularity[max_squared_mi == 0.0] = 0.0
    return float(np.mean(modularity))


def explicitness_per_factor(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[float, float]:
    """Train and test macro ROC AUC of a default LogisticRegression on (already z-scored) codes.

    NaN for the test AUC when the test labels do not have exactly the classes
    seen in training (dlib raises on the shape mismatch).
    """
    with warnings.catch_warnings(), single_threaded_blas():
        # dlib fits with sklearn's default max_iter=100 and keeps whatever lbfgs reached; so do we.
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = LogisticRegression().fit(x_train, y_train)
    binarizer = MultiLabelBinarizer()
    roc_train = roc_auc_score(binarizer.fit_transform(y_train[:, None]), classifier.predict_proba(x_train))
    if not np.array_equal(np.unique(y_test), classifier.classes_):
        return float(roc_train), float("nan")
    roc_test = roc_auc_score(binarizer.fit_transform(y_test[:, None]), classifier.predict_proba(x_test))
    return float(roc_train), float(roc_test)


#: Scores defined on [0, 1] (accuracies, normalised information).
_UNIT = (0.0, 1.0)


@register_metric(
    "modularity_explicitness",
    inputs="train_test",
    higher_is_better={"modularity": True, "explicitness_train": True, "explicitness_test": True},
    bounds=dict.fromkeys(("modularity", "explicitness_train", "explicitness_test"), _UNIT),
    study={"n_train": 10000, "n_test": 5000, "batch_size": 16, "n_bins": 20},
    fast={"n_train": 2000, "n_test": 1000, "batch_size": 500, "n_bins": 20},
    presentation=Presentation(labels={"modularity": "Modularity"}, headline={"modularity": 7}),
    fit_cost=FitCost(0.82),
)
def modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    n_bins: int = 20,
    n_jobs: int = 1,
) -> dict[str, float]:
    """Modularity (train) and explicitness (train and test), dlib's definitions.

    Args:
        codes_train: ``(N, n_codes)`` float training codes.
        factors_train: ``(N, n_factors)`` int factors of the same points, >= 2 factors.
        codes_test: ``(M, n_codes)`` held-out codes for ``explicitness_test``.
        factors_test: ``(M, n_factors)`` their factors.
        n_bins: histogram bins per code for the MI (the studies use 20).
        n_jobs: threads for the per-factor classifiers (same result for any value).

    Deviations from dlib, each with a warning:
      * a constant code (zero standard deviation): dlib divides by 0, feeds NaN to the
        classifier and crashes, losing modularity too. We z-score it to 0, as
        scikit-learn's StandardScaler does (a constant code carries no information, so
        explicitness is that of the other codes).
      * a factor with a single training value: dlib crashes; explicitness -> NaN.
      * a factor whose test values are not exactly its training classes: dlib crashes;
        ``explicitness_test`` -> NaN.
    """
    codes_train, factors_train, codes_test, factors_test = check_arrays(
        codes_train=codes_train,
        factors_train=factors_train,
        codes_test=codes_test,
        factors_test=factors_test,
        min_factors=2,
    )
    mutual_info = discrete_mutual_info(histogram_discretize(codes_train, n_bins), factors_train)
    scores = {"modularity": modularity_from_mutual_info(mutual_info)}

    # dlib's normalize_data on its (n_codes, N) arrays: our codes_train.T is the same memory
    # layout, so the means and standard deviations are the same floating point numbers.
    mean = np.mean(codes_train.T, axis=1)
    std = np.std(codes_train.T, axis=1)
    if np.any(std == 0):
        warn(
            f"modularity_explicitness: code(s) {[int(i) for i in np.flatnonzero(std == 0)]} are constant in "
            "codes_train; dlib crashes here (division by zero), we z-score them to 0 and go on"
        )
        std = np.where(std == 0, 1.0, std)
    x_train = (codes_train - mean) / std
    x_test = (codes_test - mean) / std

    n_factors = factors_train.shape[1]
    single = [j for j in range(n_factors) if len(np.unique(factors_train[:, j])) < 2]
    if single:
        warn(
            f"modularity_explicitness: factor(s) {single} take a single value in factors_train "
            "(dlib's classifier raises) -> explicitness NaN"
        )
        return {**scores, "explicitness_train": float("nan"), "explicitness_test": float("nan")}
    with single_threaded_blas():
        rocs = Parallel(n_jobs=n_jobs, backend="threading")(
            delayed(explicitness_per_factor)(x_train, factors_train[:, j], x_test, factors_test[:, j])
            for j in range(n_factors)
        )
    roc_train, roc_test = np.array(rocs).T
    if np.isnan(roc_test).any():
        bad = [int(j) for j in np.flatnonzero(np.isnan(roc_test))]
        warn(
            f"modularity_explicitness: factor(s) {bad} have test values other than their training classes "
            "(dlib raises) -> explicitness_test NaN"
        )
    scores["explicitness_train"] = float(np.mean(roc_train))
    scores["explicitness_test"] = float(np.mean(roc_test))
    return scores
