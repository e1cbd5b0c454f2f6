"""Shared maths of the zoo, as pure functions on tensors.

Shapes: ``B`` batch, ``D`` latent dimensions. Every function here is used by
more than one variant or by the core; a variant's own file only combines them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "gaussian_kl",
    "gaussian_log_density",
    "log_q_z_pairwise",
    "log_aggregate_posterior",
    "mss_log_importance_weights",
    "chen_mss_log_importance_weights",
    "TC_ESTIMATORS",
    "DISCRIMINATOR_LOSSES",
    "discriminator_loss",
    "covariance",
    "dip_penalty",
    "permute_dims",
    "pair_kl",
    "ALL_EQUAL_ROWS",
    "adaptive_shared_mask",
    "label_shared_mask",
    "group_average",
    "ml_average",
]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over dims: (B, D) -> (B,).

    Kingma & Welling 2014, Appendix B: -1/2 sum(1 + log s^2 - m^2 - s^2).
    """
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise log N(x; mean, exp(logvar)); broadcasts, no reduction."""
    inv_var = torch.exp(-logvar)
    return -0.5 * (_LOG_2PI + logvar + (x - mean).pow(2) * inv_var)


def log_q_z_pairwise(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(z_i,d | x_j) for every pair of batch items: (B, D) x3 -> (B_i, B_j, D)."""
    return gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))


def mss_log_importance_weights(batch_size: int, dataset_size: int, device=None) -> torch.Tensor:
    """log r for minibatch-stratified sampling, (B, B); row i weights the posteriors q(.|x_j).

    Chen et al. 2018, Appendix C.2: with n* = i the sample's own data point,
    q(z) ~ 1/N q(z|n*) + (N-M)/(NM) q(z|n_{j*}) + 1/M sum over the other M-1,
    M = B - 1. Here the 1/N weight is on the diagonal (the sample's own
    posterior) and the stratum weight on the next batch item, as the derivation
    says: each row sums to one, and when the other batch items are drawn
    uniformly from the rest of the data set, E_batch[q_hat(z)] = q(z) exactly.

    This is NOT the matrix of Chen's code (``chen_mss_log_importance_weights``,
    also disentangling-vae's): there the 1/N weight lands in column 0, not on the
    diagonal, in B - 1 of B rows (63 of 64 at B = 64), so a sample's own
    posterior is weighted 1/M, and Chen's "MSS" behaves on average like MWS
    rather than like this estimator (tests/zoo shows the two matrices and their
    mean q_hat(z)/q(z)). Results of ``estimator="mss"`` are therefore not
    comparable with models trained with Chen's or disentangling-vae's MSS code;
    ``estimator="chen_mss"`` reproduces theirs.
    """
    _check_mss(batch_size, dataset_size)
    n, m = float(dataset_size), float(batch_size - 1)
    weights = torch.full((batch_size, batch_size), 1.0 / m, device=device)
    idx = torch.arange(batch_size, device=device)
    weights[idx, idx] = 1.0 / n
    weights[idx, (idx + 1) % batch_size] = (n - m) / (n * m)
    return weights.log()


def chen_mss_log_importance_weights(batch_size: int, dataset_size: int, device=None) -> torch.Tensor:
    """The (B, B) log-weights of Chen et al.'s code, reproduced for comparison.

    From rtqichen/beta-tcvae, vae_quant.py, ``_log_importance_weight_matrix``.

    It fills the flattened matrix with stride M + 1 = B, which walks down a
    column, not the diagonal (stride B + 1): 1/N in column 0 and the stratum
    weight (N-M)/(NM) in column 1 of every row, then overwrites entry (M-1, 0)
    with the stratum weight; everything else is 1/M.
    """
    _check_mss(batch_size, dataset_size)
    n, m = float(dataset_size), batch_size - 1
    weights = torch.full((batch_size, batch_size), 1.0 / m, device=device)
    weights[:, 0] = 1.0 / n
    weights[:, 1] = (n - m) / (n * m)
    weights[m - 1, 0] = (n - m) / (n * m)
    return weights.log()


def _check_mss(batch_size: int, dataset_size: int) -> None:
    if batch_size < 3:
        raise ValueError(f"minibatch-stratified sampling needs a batch of at least 3; got {batch_size}")
    if dataset_size < batch_size:
        raise ValueError(f"dataset_size ({dataset_size}) must be at least the batch size ({batch_size})")


def _mws_log_weights(batch_size: int, dataset_size: int, device=None) -> torch.Tensor:
    return torch.full((batch_size, batch_size), -math.log(batch_size), device=device)


def _dlib_log_weights(batch_size: int, dataset_size: int, device=None) -> torch.Tensor:
    return torch.zeros((batch_size, batch_size), device=device)


#: Estimators of the aggregate posterior: name -> (B, dataset_size, device) -> log-weights (B, B).
#: "mws" and "mss" weight rows that sum to one; "dlib" is disentanglement_lib's
#: ``total_correlation`` (plain logsumexp, no normalisation: log q(z) is offset by
#: +log B and log prod_d q(z_d) by +D log B, so its TC is the MWS TC - (D - 1) log B).
TC_ESTIMATORS: dict[str, Callable[..., torch.Tensor]] = {
    "mws": _mws_log_weights,
    "mss": mss_log_importance_weights,
    "chen_mss": chen_mss_log_importance_weights,
    "dlib": _dlib_log_weights,
}


def log_aggregate_posterior(
    z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, dataset_size: int, estimator: str = "mws"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch estimates of log q(z) and log prod_d q(z_d), each (B,).

    q(z) = 1/N sum_n q(z|x_n) is the aggregate posterior (Chen et al. 2018,
    eq. 2); the estimate is log sum_j w_ij q(z_i|x_j) with log-weights from
    ``TC_ESTIMATORS[estimator]``: "mws" (minibatch-weighted sampling, Appendix
    C.1), "mss" (minibatch-stratified sampling, Appendix C.2, as derived),
    "chen_mss" (the matrix of Chen's code) or "dlib" (disentanglement_lib).

    MWS weights every batch item 1/B. Chen et al.'s eq. S5 (and their code)
    weights them 1/(N B): those weights sum to 1/N, so their log q(z) is offset
    by -log N and the logged TC by (D - 1) log N. The offsets are constants, so
    gradients are identical to theirs, but with weights that sum to one the
    logged MI, TC and dimension-wise KL are estimates of those quantities
    (tested against a brute-force TC in tests/zoo).
    """
    if estimator not in TC_ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(TC_ESTIMATORS)}; got {estimator!r}")
    batch_size = z.shape[0]
    log_qz_pairs = log_q_z_pairwise(z, mean, logvar)  # (B_i, B_j, D)
    log_w = TC_ESTIMATORS[estimator](batch_size, dataset_size, device=z.device)  # (B_i, B_j)
    log_qz = torch.logsumexp(log_w + log_qz_pairs.sum(dim=2), dim=1)  # (B,)
    log_qz_product = torch.logsumexp(log_w.unsqueeze(2) + log_qz_pairs, dim=1).sum(dim=1)  # (B,)
    return log_qz, log_qz_product


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Biased (1/B) covariance of the rows of x: (B, D) -> (D, D), as disentanglement_lib's DIP-VAE."""
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / x.shape[0]


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """Kumar et al. 2018, eq. 6/7: lambda_od sum_{i!=j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2."""
    diag = torch.diagonal(cov)
    off_diag = cov - torch.diag_embed(diag)
    return lambda_od * off_diag.pow(2).sum() + lambda_d * (diag - 1.0).pow(2).sum()


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each latent dimension independently across the batch: (B, D) -> (B, D).

    Samples from prod_d q(z_d) given samples of q(z) (Kim & Mnih 2018, Algorithm 1).
    Each column is a permutation of the same column of z, so every marginal is kept.
    """
    keys = torch.rand(
        z.shape, generator=generator, device=z.device if generator is None else generator.device
    )
    order = keys.to(z.device).argsort(dim=0)  # (B, D): an independent permutation per dimension
    return torch.gather(z, 0, order)


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=1)


def _dlib_clipped_log_probs(logits: torch.Tensor) -> torch.Tensor:
    # disentanglement_lib's make_discriminator: softmax, then tf.clip_by_value(probs, 1e-6, 1 - 1e-6);
    # a clipped probability passes no gradient (clamp's gradient is zero outside the bounds, as TF's).
    return F.softmax(logits, dim=1).clamp(1e-6, 1.0 - 1e-6).log()


#: FactorVAE discriminator's log-probabilities from its logits (B, 2) -> (B, 2).
#: "none": log_softmax (exact); "dlib": disentanglement_lib's clipped probabilities.
DISCRIMINATOR_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": _log_probs,
    "dlib": _dlib_clipped_log_probs,
}


def discriminator_loss(logits_real: torch.Tensor, logits_permuted: torch.Tensor, clip: str = "none"):
    """Kim & Mnih 2018, Algorithm 1: cross-entropy of the discriminator, -1/2 (E log D(z) + E log(1 - D(z~))).

    ``logits_real`` (B, 2) scores samples of q(z), ``logits_permuted`` (B, 2) samples of
    prod_d q(z_d); column 0 is "from q(z)". ``clip`` picks ``DISCRIMINATOR_LOSSES``.
    """
    log_probs = DISCRIMINATOR_LOSSES[clip]
    return -0.5 * (log_probs(logits_real)[:, 0].mean() + log_probs(logits_permuted)[:, 1].mean())


# -- weak supervision: pairs of observations (Locatello et al. 2020) --------------------------
# Shapes: B pairs, D latent dimensions; a pair's posteriors are stacked as (B, 2, D).


def pair_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-dimension divergence of a pair's posteriors, (B, 2, D) -> (B, D).

    Locatello et al. 2020, eq. 5: delta_j = KL(q(z_j|x1) || q(z_j|x2)); as
    disentanglement_lib's ``compute_kl``, without the 1/2 (2 x the KL), which
    does not move the threshold between the row's min and max.
    """
    mean_1, mean_2 = mean.unbind(dim=1)
    logvar_1, logvar_2 = logvar.unbind(dim=1)
    var_1, var_2 = logvar_1.exp(), logvar_2.exp()
    return var_1 / var_2 + (mean_2 - mean_1).pow(2) / var_2 - 1.0 + logvar_2 - logvar_1


#: What the adaptive mask does on a row whose divergences are all equal (max == min, e.g.
#: one latent or identical posteriors), where the threshold (max + min) / 2 selects nothing.
#: "average": every dimension is shared, as disentanglement_lib on a CPU (TF's 0/0 = NaN bin
#: is not 1); "keep": none is, as disentanglement_lib's pinned TF 1.14 on a GPU (fminf/fmaxf
#: clip the NaN to bin 1).
ALL_EQUAL_ROWS = ("average", "keep")


def adaptive_shared_mask(kl: torch.Tensor, all_equal: str = "average") -> torch.Tensor:
    """The dimensions a pair shares under Ada-GVAE/Ada-ML-VAE's rule: (B, D) -> (B, D) bool.

    Locatello et al. 2020, eq. 6: dimension j is shared iff delta_j < tau =
    (max_j delta_j + min_j delta_j) / 2, computed as disentanglement_lib bins it
    (``histogram_fixed_width_bins`` with two bins over [min, max] per row): a value
    on the midpoint falls in the upper bin and is not shared. ``all_equal`` (one of
    ``ALL_EQUAL_ROWS``) decides rows with max == min.
    """
    if all_equal not in ALL_EQUAL_ROWS:
        raise ValueError(f"all_equal must be one of {', '.join(ALL_EQUAL_ROWS)}; got {all_equal!r}")
    low = kl.min(dim=1, keepdim=True).values  # (B, 1)
    high = kl.max(dim=1, keepdim=True).values  # (B, 1)
    degenerate = high == low  # (B, 1)
    scaled = (kl - low) / torch.where(degenerate, torch.ones_like(high), high - low)
    upper_bin = torch.floor(2.0 * scaled).clamp(0.0, 1.0) == 1.0  # (B, D)
    return torch.where(degenerate, torch.tensor(all_equal == "average"), ~upper_bin)


def label_shared_mask(changed_factor: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """The dimensions a pair shares when told which factor changed: (B,) -> (B, D) bool.

    GVAE/ML-VAE with labels (Locatello et al. 2020, Section 4; disentanglement_lib's
    ``aggregate_labels``): dimension i stands for factor i, so every dimension but the
    changed factor's is shared. A label outside [0, D) (-1: nothing changed) shares
    nothing, as dlib's all-zero one-hot row does.
    """
    dims = torch.arange(latent_dim, device=changed_factor.device)  # (D,)
    in_range = (changed_factor >= 0) & (changed_factor < latent_dim)  # (B,)
    return (dims.unsqueeze(0) != changed_factor.unsqueeze(1)) & in_range.unsqueeze(1)


def group_average(mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GroupVAE's shared posterior of a pair, (B, 2, D) -> mean, logvar (B, D).

    Hosoya 2019 as disentanglement_lib averages it: the arithmetic mean of the means
    and of the variances (not of the log-variances; the spread of the means is not added).
    """
    mean_1, mean_2 = mean.unbind(dim=1)
    logvar_1, logvar_2 = logvar.unbind(dim=1)
    return 0.5 * mean_1 + 0.5 * mean_2, torch.log(0.5 * logvar_1.exp() + 0.5 * logvar_2.exp())


def ml_average(mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ML-VAE's shared posterior of a pair, (B, 2, D) -> mean, logvar (B, D).

    Bouchacourt et al. 2018 as disentanglement_lib computes it: the product-of-experts
    mean, with variance 2 v1 v2 / (v1 + v2), the harmonic mean of the variances (twice
    the product of experts' variance).
    """
    mean_1, mean_2 = mean.unbind(dim=1)
    var_1, var_2 = logvar.unbind(dim=1)
    var_1, var_2 = var_1.exp(), var_2.exp()
    shared_var = 2.0 * var_1 * var_2 / (var_1 + var_2)
    shared_mean = (mean_1 / var_1 + mean_2 / var_2) * shared_var * 0.5
    return shared_mean, shared_var.log()
