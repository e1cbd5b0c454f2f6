"""Ada-GVAE (Locatello et al. 2020): weakly supervised pairs, shared dimensions found by KL."""

from dataclasses import dataclass

from vae_zoo.core import VAE, Terms, non_negative, one_of
from vae_zoo.losses import ALL_EQUAL_ROWS, adaptive_shared_mask, group_average, pair_kl
from vae_zoo.registry import register_model


@register_model("group_vae_argmax")
class GroupVAEArgmax(VAE):
    """Ada-GVAE (Locatello et al. 2020, eqs. 4-6).

    Pairs share the dimensions whose KL between the two posteriors is below the midpoint of its range,
    averaged as GroupVAE averages; loss = reconstruction + beta * KL of the pooled posteriors, per
    image of the pair.

    ``all_equal`` (``losses.ALL_EQUAL_ROWS``) decides the pairs whose per-dimension KLs are all
    equal: "average" shares every dimension (disentanglement_lib on a CPU), "keep" none (its
    TF 1.14 on a GPU).
    """

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        beta: float = 1.0
        all_equal: str = "average"

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "beta")
            one_of(self, "all_equal", ALL_EQUAL_ROWS)

    study_grid = tuple({"beta": b} for b in (1.0, 2.0, 4.0, 6.0, 8.0, 16.0))
    strength_field = "beta"
    views = 2

    def shared_dimensions(self, mean, logvar, changed_factor):
        """The dimensions whose KL between the pair's posteriors is below the midpoint: ``(B, D)`` bool."""
        return adaptive_shared_mask(pair_kl(mean, logvar), self.config.all_equal)

    def average_posteriors(self, mean, logvar):
        """GroupVAE's average of the pair's posteriors (arithmetic means of mean and variance)."""
        return group_average(mean, logvar)

    def regularizer(self, terms: Terms):
        """beta times the mean KL of the pooled posteriors; logs the KL."""
        kl = terms.kl.mean()
        return self.config.beta * kl, {"kl": kl}
