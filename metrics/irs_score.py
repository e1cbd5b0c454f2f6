"""Interventional Robustness Score (IRS), as disentanglement_lib computes it.

Suter et al. 2019, "Robustly Disentangled Causal Mechanisms: Validating Deep
Representations for Interventional Robustness", section 4: how much a code
moves when the other factors change while one factor is held fixed, relative
to how much the code moves at all.

dlib (``evaluation/metrics/irs.py``, ``scalable_disentanglement_score``):
factors are discretised into 20 equal-width bins first, exactly constant codes
are dropped, and for every code ``l`` and factor ``i``
``irs[l, i] = 1 - mean_v q99(|z_l - E[z_l | g_i = v]| over g_i = v) / max_n |z_nl - mean z_l|``
(mean over the distinct values ``v``, unweighted; ``diff_quantile`` 0.99 where the
paper uses the maximum). A code scores its best factor; IRS is the average of
these, weighted by the codes' maximal deviations. No active code -> 0.
"""

from __future__ import annotations

import numpy as np

from metrics._validation import check_arrays
from metrics.registry import Presentation, register_metric
from metrics.utils import histogram_discretize

__all__ = ["irs", "irs_matrix"]


def irs_matrix(
    factors: np.ndarray, codes: np.ndarray, diff_quantile: float = 0.99
) -> tuple[np.ndarray, np.ndarray]:
    """dlib's ``scalable_disentanglement_score``: irs ``(n_codes, n_factors)``, max deviations ``(n_codes,)``.

    ``factors`` ``(N, n_factors)`` discrete labels, ``codes`` ``(N, n_codes)`` active codes.
    """
    n_factors, n_codes = factors.shape[1], codes.shape[1]
    max_deviations = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    cum_deviations = np.zeros([n_codes, n_factors])
    for i in range(n_factors):
        values = np.unique(factors[:, i])
        for value in values:
            match = factors[:, i] == value
            e_loc = np.mean(codes[match, :], axis=0)
            cum_deviations[:, i] += np.percentile(
                np.abs(codes[match, :] - e_loc), q=diff_quantile * 100, axis=0
            )
        cum_deviations[:, i] /= values.shape[0]
    return 1.0 - cum_deviations / max_deviations[:, np.newaxis], max_deviations


#: Scores defined on [0, 1] (accuracies, normalised information).
_UNIT = (0.0, 1.0)


@register_metric(
    "irs",
    inputs="codes_factors",
    higher_is_better={"irs": True},
    bounds={"irs": _UNIT},
    study={"n_train": 10000, "batch_size": 16, "diff_quantile": 0.99, "n_bins": 20},
    fast={"n_train": 2000, "batch_size": 500, "diff_quantile": 0.99, "n_bins": 20},
    presentation=Presentation(labels={"irs": "IRS"}, headline={"irs": 8}),
)
def irs(
    codes: np.ndarray, factors: np.ndarray, *, diff_quantile: float = 0.99, n_bins: int = 20
) -> dict[str, float]:
    """IRS (key ``irs``), dlib's definition.

    Args:
        codes: ``(N, n_codes)`` float.
        factors: ``(N, n_factors)`` int; discretised into ``n_bins`` equal-width bins as dlib does.
        diff_quantile: quantile of the within-group deviations (dlib 0.99; the paper 1.0).
        n_bins: the factor discretisation (the studies use 20).

    dlib also returns ``num_active_dims``, which by a slip sums the active codes'
    values instead of counting them; we leave that key out.
    """
    codes, factors = check_arrays(codes=codes, factors=factors)
    if not 0.0 <= diff_quantile <= 1.0:
        raise ValueError(f"diff_quantile must be in [0, 1]; got {diff_quantile}")
    # dlib works on (n_dims, N) arrays; .T of ours is the same memory, so the reductions below
    # add the same numbers in the same order.
    mus, ys = codes.T, factors.T
    ys_discrete = histogram_discretize(ys.T, n_bins).T
    active = mus[mus.var(axis=1) > 0.0]
    if not active.any():
        return {"irs": 0.0}
    matrix, max_deviations = irs_matrix(ys_discrete.T, active.T, diff_quantile)
    scores = matrix.max(axis=1)
    if np.sum(max_deviations) > 0.0:
        return {"irs": float(np.average(scores, weights=max_deviations))}
    return {"irs": float(np.mean(scores))}
