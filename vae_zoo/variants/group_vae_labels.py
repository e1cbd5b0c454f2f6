"""GroupVAE with labels (Locatello et al. 2020): pairs share all but the changed factor's dimension."""

from dataclasses import dataclass

from vae_zoo.core import VAE, Terms, non_negative
from vae_zoo.losses import group_average, label_shared_mask
from vae_zoo.registry import register_model


@register_model("group_vae_labels")
class GroupVAELabels(VAE):
    """GroupVAE told which factor changed (Locatello et al. 2020, Section 4; Hosoya 2019).

    Latent dimension i stands for factor i, and a pair shares every dimension but the changed
    factor's, averaged as GroupVAE averages; loss = reconstruction + beta * KL of the pooled
    posteriors, per image of the pair. Needs latent_dim >= the number of factors for every factor to
    have its dimension.
    """

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        beta: float = 1.0

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "beta")

    study_grid = tuple({"beta": b} for b in (1.0, 2.0, 4.0, 6.0, 8.0, 16.0))
    strength_field = "beta"
    views = 2
    needs_changed_factor = True

    def shared_dimensions(self, mean, logvar, changed_factor):
        """Every dimension but the changed factor's: ``(B, D)`` bool."""
        return label_shared_mask(changed_factor, mean.shape[-1])

    def average_posteriors(self, mean, logvar):
        """GroupVAE's average of the pair's posteriors (arithmetic means of mean and variance)."""
        return group_average(mean, logvar)

    def regularizer(self, terms: Terms):
        """beta times the mean KL of the pooled posteriors; logs the KL."""
        kl = terms.kl.mean()
        return self.config.beta * kl, {"kl": kl}
