"""Observation models p(x|z): negative log-likelihood per image, summed over pixels.

Each likelihood maps decoder logits and targets (B, C, H, W) to (B,) so that the
core averages over the batch: the reconstruction term is then on the scale of
the papers' per-image ELBO, and a regularizer weight (beta, gamma, lambda) means
what it means there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from vaebench.registry import Registry

Likelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LIKELIHOODS: Registry[Likelihood] = Registry(
    "likelihood", "vaebench.likelihoods", builtin_modules=("vae_zoo.likelihoods",)
)
register_likelihood = LIKELIHOODS.register

#: Gaussian observation noise. With sigma^2 = 1/2 the NLL without its constant is
#: the summed squared error, disentanglement_lib's ``l2_loss``.
GAUSSIAN_STD = math.sqrt(0.5)


@register_likelihood("bernoulli")
def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(x; sigmoid(logits)) summed over pixels: (B, C, H, W) -> (B,). For dSprites."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


@register_likelihood("gaussian")
def gaussian_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log N(x; sigmoid(logits), GAUSSIAN_STD^2) summed over pixels: (B, C, H, W) -> (B,).

    Without the constant D/2 log(2 pi sigma^2). For 3D Shapes (x in [0, 1]).
    """
    return (x - torch.sigmoid(logits)).pow(2).flatten(1).sum(dim=1) / (2.0 * GAUSSIAN_STD**2)
