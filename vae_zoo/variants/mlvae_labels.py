"""ML-VAE with labels (Locatello et al. 2020): pairs share all but the changed factor's dimension."""

from dataclasses import dataclass

from vae_zoo.core import VAE, Terms, non_negative
from vae_zoo.losses import label_shared_mask, ml_average
from vae_zoo.registry import register_model


@register_model("mlvae_labels")
class MLVaeLabels(VAE):
    """ML-VAE told which factor changed (Locatello et al. 2020, Section 4; Bouchacourt et al. 2018).

    Latent dimension i stands for factor i, and a pair shares every dimension but the changed
    factor's, aggregated as ML-VAE does; loss = reconstruction + beta * KL of the pooled posteriors,
    per image of the pair. Needs latent_dim >= the number of factors for every factor to have its
    dimension.
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
        """ML-VAE's product of experts of the pair's posteriors."""
        return ml_average(mean, logvar)

    def regularizer(self, terms: Terms):
        """beta times the mean KL of the pooled posteriors; logs the KL."""
        kl = terms.kl.mean()
        return self.config.beta * kl, {"kl": kl}
