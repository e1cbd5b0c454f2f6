"""Mutual Information Gap (MIG), as disentanglement_lib computes it.

Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", eq. (5):
``MIG = 1/K sum_k (I(z_{j_k}; v_k) - max_{j != j_k} I(z_j; v_k)) / H(v_k)``.
disentanglement_lib (``evaluation/metrics/mig.py``) estimates it from a sample:
each code is discretised into 20 equal-width bins over its sampled range, the
mutual information is the plug-in estimate from the contingency table (nats),
and the normaliser is the plug-in entropy of the sampled factor labels, not
``log K``. Chen et al.'s own estimator is :func:`metrics.mig_chen`; the two are
not comparable number for number (METRICS.md section 1).
"""

from __future__ import annotations

import numpy as np

from metrics._validation import check_arrays, warn
from metrics.registry import FitCost, Presentation, register_metric
from metrics.utils import discrete_entropy, discrete_mutual_info, histogram_discretize

__all__ = ["mig", "mig_from_mutual_info"]


def mig_from_mutual_info(mutual_info: np.ndarray, factor_entropy: np.ndarray) -> float:
    """Mean over factors of (largest - second largest MI over codes) / H(factor).

    ``mutual_info`` is ``(n_codes, n_factors)``; no clamping, as dlib.
    """
    ordered = np.sort(mutual_info, axis=0)[::-1]
    return float(np.mean(np.divide(ordered[0, :] - ordered[1, :], factor_entropy[:])))


#: Scores defined on [0, 1] (accuracies, normalised information).
_UNIT = (0.0, 1.0)


@register_metric(
    "mig",
    inputs="codes_factors",
    higher_is_better={"mig": True},
    bounds={"mig": _UNIT},
    study={"n_train": 10000, "batch_size": 16, "n_bins": 20},
    fast={"n_train": 2000, "batch_size": 500, "n_bins": 20},
    # Two different quantities go by "MIG": a header must always say which one a number is.
    presentation=Presentation(
        labels={"mig": "MIG (histogram, dlib)"},
        headline={"mig": 1},
        note="`mig` is disentanglement_lib's MIG (histogram-discretised codes, plug-in MI, "
        "normalised by the sampled factor's entropy)",
        note_topic="Which MIG",
    ),
    fit_cost=FitCost(0.04),
)
def mig(codes: np.ndarray, factors: np.ndarray, *, n_bins: int = 20) -> dict[str, float]:
    """Mutual Information Gap with disentanglement_lib's histogram estimator (key ``mig``).

    Args:
        codes: ``(N, n_codes)`` float, at least 2 codes.
        factors: ``(N, n_factors)`` int factor values.
        n_bins: equal-width bins per code (the studies use 20).

    Returns ``{"mig": float}`` in [0, 1]. A factor with a single value has zero
    entropy: dlib divides by zero (NaN, or +inf with old scikit-learn); we
    return NaN with a warning naming the factor.
    """
    codes, factors = check_arrays(codes=codes, factors=factors, min_codes=2)
    mutual_info = discrete_mutual_info(histogram_discretize(codes, n_bins), factors)
    entropy = discrete_entropy(factors)
    if np.any(entropy == 0):
        constant = [int(j) for j in np.flatnonzero(entropy == 0)]
        warn(f"mig: factor(s) {constant} take a single value (zero entropy): MIG is undefined -> NaN")
        return {"mig": float("nan")}
    return {"mig": mig_from_mutual_info(mutual_info, entropy)}
