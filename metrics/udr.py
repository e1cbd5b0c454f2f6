"""UDR: Unsupervised Disentanglement Ranking of a group of models, as disentanglement_lib computes it.

Duan et al. 2020, "Unsupervised Model Selection for Variational Disentangled
Representation Learning" (ICLR; arXiv:1905.12614), Sec. 3: models trained with
the same hyper-parameters and different seeds should, if disentangled, agree
with each other up to a permutation and sign of their informative latents. For
every ordered pair ``(i, j)`` of models encoded on the same points, a
similarity matrix ``R`` (latents of ``i`` x latents of ``j``) is estimated
and scored by its "relative strength" (Eq. 3):

    UDR_ij = 1/2 [ mean_b max_a R_ab^2 / sum_a R_ab  +  mean_a max_b R_ab^2 / sum_b R_ab ],

and a model's score is the median of ``UDR_im`` over the other models ``i``.

What dlib (``evaluation/udr/metrics/udr.py``, ``compute_udr_sklearn``) does, reproduced here:

* KL per latent: the mean over the points of ``KL(q(z|x) || N(0, 1)) = 0.5 (mu^2 +
  exp(logvar) - logvar - 1)`` (dlib averages per-batch means; ``kl_batch_size`` does the same);
* each model's means z-scored (scikit-learn's ``StandardScaler``: ddof 0, a constant latent
  to 0), then latents with KL <= 0.01 zeroed -- a **hard-coded 0.01**, whatever
  ``kl_filter_threshold`` says;
* ``correlation="lasso"``: ``R = |Lasso(alpha=0.1).fit(z_i, z_j).coef_|.T``;
  ``"spearman"``: ``R_ab = |Spearman(z_i[:, a], z_j[:, b])|`` (NaN for a constant latent);
* ``filter_low_kl``: ``R`` restricted to the latents of both models with KL > ``kl_filter_threshold``;
* ``np.nan_to_num`` turns each 0/0 term (an all-zero row or column) into 0, which counts in
  the mean; so Spearman without the filter scores 0 as soon as a model has a zeroed latent
  (its NaN row spreads through the max), as in dlib.

Deviations (both only where dlib raises):

* a model with no latent above ``kl_filter_threshold`` (with ``filter_low_kl``): dlib's
  ``max`` of an empty matrix raises and the whole group fails; here its pairs are NaN (with a
  MetricWarning), its own score is NaN, and the other models' medians skip the NaN pairs
  (``np.nanmedian``; without NaN it is dlib's ``np.median``);
* bad input raises a ValueError naming the argument.

Registered as ``udr_lasso`` and ``udr_spearman`` (inputs kind ``model_group``: they score a
group of runs together, so ``evaluate_metric`` refuses them; ``vaebench udr`` computes them).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

from metrics._threads import single_threaded_blas
from metrics._validation import check_arrays, warn
from metrics.registry import register_metric

__all__ = [
    "UDRResult",
    "udr",
    "udr_lasso",
    "udr_spearman",
    "relative_strength_disentanglement",
    "lasso_correlation_matrix",
    "spearman_correlation_matrix",
    "gaussian_kl_per_latent",
]

CORRELATIONS = ("lasso", "spearman")
#: dlib zeroes latents at or below this KL before any correlation, whatever kl_filter_threshold is.
DLIB_ZERO_KL = 0.01


class UDRResult(NamedTuple):
    """Everything dlib's ``compute_udr_sklearn`` returns, as arrays (M models, L latents)."""

    model_scores: np.ndarray  # (M,) median over the other models i of pairwise[i, m]
    pairwise: np.ndarray  # (M, M) UDR_ij, i = the regressor / row model; diagonal 0
    raw_correlations: np.ndarray  # (M, M, L, L) R before the KL filter; zeros on the diagonal blocks
    kl: np.ndarray  # (M, L) mean KL per latent
    kl_mask: np.ndarray  # (M, L) bool, KL > kl_filter_threshold


def gaussian_kl_per_latent(mean: np.ndarray, logvar: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Mean over points of ``KL(N(mean, exp(logvar)) || N(0, 1))`` per latent: ``(n, L)`` arrays -> ``(L,)``.

    ``batch_size``: average per-batch means over consecutive batches instead (dlib's
    ``_generate_representation_dataset``; the same number up to rounding).
    """
    kl = 0.5 * (np.square(mean) + np.exp(logvar) - logvar - 1.0)  # (n, L)
    if batch_size is None:
        return kl.mean(axis=0)
    if len(kl) % batch_size:
        raise ValueError(f"kl_batch_size must divide the number of points {len(kl)}; got {batch_size}")
    return np.mean([kl[s : s + batch_size].mean(axis=0) for s in range(0, len(kl), batch_size)], axis=0)


def relative_strength_disentanglement(matrix: np.ndarray) -> float:
    """Duan et al. Eq. 3 on a similarity matrix ``(L_i, L_j)``, with dlib's NaN handling (0/0 terms are 0)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        score_x = np.nanmean(np.nan_to_num(np.max(matrix, axis=0) ** 2 / np.sum(matrix, axis=0)))
        score_y = np.nanmean(np.nan_to_num(np.max(matrix, axis=1) ** 2 / np.sum(matrix, axis=1)))
    return float((score_x + score_y) / 2)


def lasso_correlation_matrix(
    z_i: np.ndarray, z_j: np.ndarray, alpha: float = 0.1, random_state: np.random.RandomState | None = None
) -> np.ndarray:
    """``|coef|`` of the multi-output Lasso of ``z_j (n, L_j)`` on ``z_i (n, L_i)``: ``(L_i, L_j)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Coordinate descent is cyclic: random_state does not change the fit (dlib passes its RandomState;
        # one object, not an int, because scikit-learn would build a RandomState per target latent).
        random_state = np.random.RandomState(0) if random_state is None else random_state
        model = Lasso(alpha=alpha, random_state=random_state).fit(z_i, z_j)
    return np.abs(np.atleast_2d(model.coef_)).T


def spearman_correlation_matrix(z_i: np.ndarray, z_j: np.ndarray) -> np.ndarray:
    """``|Spearman correlation|`` of every latent of ``z_i (n, L_i)`` with every latent of ``z_j (n, L_j)``.

    Pearson correlation of the average ranks (what ``scipy.stats.spearmanr`` computes for
    each pair, vectorised); a constant latent gives NaN, as spearmanr does.
    """
    ranks_i = scipy.stats.rankdata(z_i, axis=0)
    ranks_j = scipy.stats.rankdata(z_j, axis=0)
    ranks_i -= ranks_i.mean(axis=0)
    ranks_j -= ranks_j.mean(axis=0)
    norms = np.sqrt(np.sum(ranks_i**2, axis=0))[:, None] * np.sqrt(np.sum(ranks_j**2, axis=0))[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.clip((ranks_i.T @ ranks_j) / norms, -1.0, 1.0))


def _spearman_loop(z_i: np.ndarray, z_j: np.ndarray) -> np.ndarray:
    # dlib's spearman_correlation_conv: one scipy.stats.spearmanr call per pair of latents.
    out = np.empty((z_i.shape[1], z_j.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning on zeroed latents
        for a in range(z_i.shape[1]):
            for b in range(z_j.shape[1]):
                out[a, b] = abs(scipy.stats.spearmanr(z_i[:, a], z_j[:, b], nan_policy="omit")[0])
    return out


def _check_group(means: Sequence[np.ndarray], logvars: Sequence[np.ndarray]):
    for name, group in (("means", means), ("logvars", logvars)):
        if isinstance(group, np.ndarray) and group.ndim != 3:
            raise ValueError(
                f"{name} must be a list of (n_points, n_latents) arrays, one per model; "
                f"got shape {group.shape}"
            )
    if len(means) != len(logvars):
        raise ValueError(
            f"means and logvars must hold one array per model; got {len(means)} and {len(logvars)}"
        )
    if len(means) < 2:
        raise ValueError(f"means must hold at least 2 models (UDR compares models); got {len(means)}")
    checked_means, checked_logvars = [], []
    for m, (mean, logvar) in enumerate(zip(means, logvars)):
        try:
            mean, logvar = check_arrays(mean=mean, logvar=logvar, min_points=2)
        except ValueError as exc:
            raise ValueError(f"model {m} (means[{m}], logvars[{m}]): {exc}") from None
        if checked_means and mean.shape != checked_means[0].shape:
            raise ValueError(
                f"means[{m}] must have the shape of means[0] (every model encoded on the same points, "
                f"the same number of latents); got {mean.shape} and {checked_means[0].shape}"
            )
        checked_means.append(mean)
        checked_logvars.append(logvar)
    return checked_means, checked_logvars


def udr(
    means: Sequence[np.ndarray],
    logvars: Sequence[np.ndarray],
    *,
    correlation: str = "lasso",
    filter_low_kl: bool = True,
    kl_filter_threshold: float = 0.01,
    kl_batch_size: int | None = None,
    spearman_implementation: str = "vectorised",
) -> UDRResult:
    """UDR of a group of models (Duan et al. 2020) from each model's posterior on the same points.

    Args:
        means: one ``(n_points, n_latents)`` array per model, the encoder means on the same points.
        logvars: the matching log-variances, same shapes.
        correlation: ``"lasso"`` (dlib's default) or ``"spearman"``.
        filter_low_kl: score only the latents with mean KL > ``kl_filter_threshold`` (dlib: True).
        kl_filter_threshold: dlib's 0.01. Latents with KL <= 0.01 are zeroed in any case (dlib).
        kl_batch_size: average the KL over batches of this size first, as dlib does.
        spearman_implementation: ``"vectorised"`` (ranks, one matrix product) or ``"loop"``
            (dlib's one ``spearmanr`` call per pair of latents; the same numbers to ~1e-15).

    Returns:
        :class:`UDRResult`: per-model scores ``(M,)``, the pairwise matrix ``(M, M)``, the
        raw correlations ``(M, M, L, L)``, the KL ``(M, L)`` and the kept-latent mask.
    """
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be one of {', '.join(CORRELATIONS)}; got {correlation!r}")
    if spearman_implementation not in ("vectorised", "loop"):
        raise ValueError(
            f"spearman_implementation must be 'vectorised' or 'loop'; got {spearman_implementation!r}"
        )
    if not isinstance(kl_filter_threshold, int | float) or not np.isfinite(kl_filter_threshold):
        raise ValueError(f"kl_filter_threshold must be a finite number; got {kl_filter_threshold!r}")
    means, logvars = _check_group(means, logvars)
    n_models, n_latents = len(means), means[0].shape[1]
    kl = np.stack([gaussian_kl_per_latent(m, v, kl_batch_size) for m, v in zip(means, logvars)])  # (M, L)
    kl_mask = kl > kl_filter_threshold
    # z-scored means, latents at or below dlib's hard-coded KL 0.01 zeroed: (n, L) per model.
    reps = [StandardScaler().fit_transform(m) * (k > DLIB_ZERO_KL) for m, k in zip(means, kl)]
    if correlation == "lasso":
        lasso_state = np.random.RandomState(0)

        def similarity(z_i, z_j):
            return lasso_correlation_matrix(z_i, z_j, random_state=lasso_state)

    else:
        similarity = (
            spearman_correlation_matrix if spearman_implementation == "vectorised" else _spearman_loop
        )
    raw = np.zeros((n_models, n_models, n_latents, n_latents))
    pairwise = np.zeros((n_models, n_models))
    dead = [m for m in range(n_models) if filter_low_kl and not kl_mask[m].any()]
    if dead:
        warn(
            f"udr: model(s) {dead} have no latent with KL > {kl_filter_threshold} (dlib raises); their "
            "pairs are NaN and their scores NaN"
        )
    with single_threaded_blas():  # small matrices: BLAS threads only cost
        for i in range(n_models):
            for j in range(n_models):
                if i == j:
                    continue
                raw[i, j] = similarity(reps[i], reps[j])
                matrix = raw[i, j][kl_mask[i]][:, kl_mask[j]] if filter_low_kl else raw[i, j]
                pairwise[i, j] = np.nan if matrix.size == 0 else relative_strength_disentanglement(matrix)
    scores = np.empty(n_models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: a dead model's own score
        for m in range(n_models):
            scores[m] = np.nan if m in dead else np.nanmedian(np.delete(pairwise[:, m], m))
    return UDRResult(scores, pairwise, raw, kl, kl_mask)


_SETTINGS = {"n_points": 1000, "filter_low_kl": True, "kl_filter_threshold": 0.01}


def _register_udr(name: str):
    """``register_metric`` for the UDR metric ``name``: one key, ``name``, per model; the shared settings."""
    return register_metric(
        name, inputs="model_group", higher_is_better={name: True}, study=_SETTINGS, fast=_SETTINGS
    )


def _udr_scores(
    name: str, correlation: str, means, logvars, filter_low_kl: bool, kl_filter_threshold: float
) -> list[dict[str, float]]:
    """The registered UDR metrics' body: :func:`udr`'s model scores as ``[{name: score}, ...]``."""
    result = udr(
        means,
        logvars,
        correlation=correlation,
        filter_low_kl=filter_low_kl,
        kl_filter_threshold=kl_filter_threshold,
    )
    return [{name: float(s)} for s in result.model_scores]


@_register_udr("udr_lasso")
def udr_lasso(
    means: Sequence[np.ndarray],
    logvars: Sequence[np.ndarray],
    *,
    filter_low_kl: bool = True,
    kl_filter_threshold: float = 0.01,
) -> list[dict[str, float]]:
    """UDR with Lasso similarities (Duan et al. 2020; dlib's default), one ``{"udr_lasso": score}`` per model.

    Scores a group of models (same config, different seeds) encoded on the same points;
    ``vaebench udr`` computes it over a suite's recorded runs.
    """
    return _udr_scores("udr_lasso", "lasso", means, logvars, filter_low_kl, kl_filter_threshold)


@_register_udr("udr_spearman")
def udr_spearman(
    means: Sequence[np.ndarray],
    logvars: Sequence[np.ndarray],
    *,
    filter_low_kl: bool = True,
    kl_filter_threshold: float = 0.01,
) -> list[dict[str, float]]:
    """UDR with Spearman similarities (Duan et al. 2020), one ``{"udr_spearman": score}`` per model.

    Scores a group of models (same config, different seeds) encoded on the same points;
    ``vaebench udr --correlation spearman`` computes it over a suite's recorded runs.
    """
    return _udr_scores("udr_spearman", "spearman", means, logvars, filter_low_kl, kl_filter_threshold)
