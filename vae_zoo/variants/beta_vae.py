"""beta-VAE (Higgins et al. 2017): the KL weighted by beta."""

from dataclasses import dataclass

from vae_zoo.core import VAE, Terms, non_negative
from vae_zoo.registry import register_model


@register_model("beta_vae")
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017, eq. 4): reconstruction + beta * KL."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        beta: float = 4.0

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "beta")

    study_grid = tuple({"beta": b} for b in (1.0, 2.0, 4.0, 6.0, 8.0, 16.0))
    strength_field = "beta"

    def regularizer(self, terms: Terms):
        """beta times the mean analytic KL; logs the KL."""
        kl = terms.kl.mean()
        return self.config.beta * kl, {"kl": kl}
