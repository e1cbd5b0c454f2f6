"""Unsupervised scores of a representation, as disentanglement_lib computes them.

dlib (``evaluation/metrics/unsupervised_metrics.py``), from the sampled codes
alone (factors unused), with ``cov`` the sample covariance (ddof 1):

* ``gaussian_total_correlation = 0.5 (sum_i log cov_ii - log det cov)``, the total
  correlation KL(N(0, cov) || N(0, diag cov)) in nats;
* ``gaussian_wasserstein_correlation = 2 tr(cov) - 2 tr(sqrtm(diag(cov) cov))``,
  the squared 2-Wasserstein distance between the same two Gaussians, and its
  ``_norm`` divided by ``tr(cov)``;
* ``mutual_info_score``: mean off-diagonal plug-in MI between codes discretised
  into 20 equal-width bins (nats).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from metrics._validation import check_arrays, warn
from metrics.registry import FitCost, register_metric
from metrics.utils import discrete_mutual_info, histogram_discretize

__all__ = ["unsupervised", "gaussian_total_correlation", "gaussian_wasserstein_correlation"]


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """``0.5 (sum log diag(cov) - log det cov)``, nats; +inf when cov is singular with a positive diagonal."""
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """``2 tr(cov) - 2 tr(sqrtm(cov * diag(cov)[:, None]))``, real part.

    The product's eigenvalues are those of ``D^1/2 cov D^1/2`` (PSD), so the exact
    trace is real; scipy's ``sqrtm`` leaves an imaginary round-off part (~1e-9)
    on singular covariances, which dlib returns as a complex number and we drop.
    """
    with warnings.catch_warnings():
        # "Matrix is singular": expected for singular covariances; the real part is still right.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(cov * np.expand_dims(np.diag(cov), axis=1))
    return float(np.real(2 * np.trace(cov) - 2 * np.trace(root)))


@register_metric(
    "unsupervised",
    inputs="codes_only",
    higher_is_better={
        "gaussian_total_correlation": False,
        "gaussian_wasserstein_correlation": False,
        "gaussian_wasserstein_correlation_norm": False,
        "mutual_info_score": False,
    },
    study={"n_train": 10000, "batch_size": 16, "n_bins": 20},
    fast={"n_train": 2000, "batch_size": 500, "n_bins": 20},
    fit_cost=FitCost(0.04),
)
def unsupervised(codes: np.ndarray, *, n_bins: int = 20) -> dict[str, float]:
    """Gaussian total correlation, Wasserstein correlation (raw, normalised), mean pairwise MI of the codes.

    Args:
        codes: ``(N, n_codes)`` float, at least 2 codes.
        n_bins: histogram bins per code for the MI (the studies use 20).

    Lower is more factorised. Deviations from dlib (always real floats), with a warning:
      * constant codes: dlib's log(0) makes the total correlation NaN; a constant is
        independent of everything, so we compute the total correlation of the other
        codes (0 if fewer than 2 are left). All codes constant: the normalised
        Wasserstein score is 0/0 -> NaN.
      * a singular covariance with a positive diagonal (e.g. a duplicated code): the
        total correlation is +inf, as in dlib (the codes are deterministically related).
      * the Wasserstein scores drop sqrtm's round-off imaginary part (dlib returns complex).
    """
    (codes,) = check_arrays(codes=codes, min_codes=2)
    n_codes = codes.shape[1]
    # np.cov on dlib's (n_codes, N) layout: codes.T is the same memory, hence the same floats.
    cov = np.cov(codes.T)
    diag = np.diag(cov)
    constant = np.flatnonzero(diag == 0)
    if constant.size:
        warn(
            f"unsupervised: code(s) {[int(i) for i in constant]} are constant; dlib's total correlation is "
            "NaN (log 0); we return the total correlation of the non-constant codes"
        )
        keep = np.flatnonzero(diag > 0)
        total_correlation = gaussian_total_correlation(cov[np.ix_(keep, keep)]) if keep.size >= 2 else 0.0
    else:
        with np.errstate(divide="ignore"):
            total_correlation = gaussian_total_correlation(cov)
    if np.isinf(total_correlation):
        warn(
            "unsupervised: the codes' covariance is singular (some codes are exact linear functions of "
            "others); the Gaussian total correlation is +inf"
        )
    wasserstein = gaussian_wasserstein_correlation(cov)
    trace = np.sum(diag)
    if trace == 0:
        warn("unsupervised: all codes are constant; gaussian_wasserstein_correlation_norm is 0/0 -> NaN")
        wasserstein_norm = float("nan")
    else:
        wasserstein_norm = float(wasserstein / trace)
    mutual_info = discrete_mutual_info(*(2 * [histogram_discretize(codes, n_bins)]))
    np.fill_diagonal(mutual_info, 0)
    return {
        "gaussian_total_correlation": total_correlation,
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein_norm,
        "mutual_info_score": float(np.sum(mutual_info) / (n_codes**2 - n_codes)),
    }
