"""DIP-VAE-I (Kumar et al. 2018): a penalty on the covariance of the posterior means."""

from dataclasses import dataclass

from vae_zoo.core import VAE, Terms, non_negative
from vae_zoo.losses import covariance, dip_penalty
from vae_zoo.registry import register_model


@register_model("dip_vae_i")
class DIPVAEI(VAE):
    """DIP-VAE-I (Kumar et al. 2018, eq. 6): KL + a penalty on Cov[posterior mean] away from I."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        lambda_od: float = 10.0
        lambda_d: float = 100.0

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "lambda_od", "lambda_d")

    study_grid = tuple({"lambda_od": l, "lambda_d": 10.0 * l} for l in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0))
    strength_field = "lambda_od"

    def regularizer(self, terms: Terms):
        """KL + the DIP penalty on Cov[posterior mean]; logs both."""
        kl = terms.kl.mean()
        dip = dip_penalty(covariance(terms.mean), self.config.lambda_od, self.config.lambda_d)  # (D, D) -> ()
        return kl + dip, {"kl": kl, "dip": dip}
