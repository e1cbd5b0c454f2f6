"""DIP-VAE-II (Kumar et al. 2018): a penalty on the covariance of the aggregate posterior."""

from dataclasses import dataclass

from vae_zoo.core import VAE, Terms, non_negative
from vae_zoo.losses import covariance, dip_penalty
from vae_zoo.registry import register_model


@register_model("dip_vae_ii")
class DIPVAEII(VAE):
    """DIP-VAE-II (Kumar et al. 2018, eq. 7): KL + a penalty on Cov_q(z)[z] away from I."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        lambda_od: float = 10.0
        lambda_d: float = 10.0

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "lambda_od", "lambda_d")

    study_grid = tuple({"lambda_od": l, "lambda_d": l} for l in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0))
    strength_field = "lambda_od"

    def regularizer(self, terms: Terms):
        """KL + the DIP penalty on Cov_q(z)[z]; logs both."""
        kl = terms.kl.mean()
        # Cov_q(z)[z] = E_x[diag(exp(logvar))] + Cov_x[mean]   (law of total covariance), (D, D)
        cov_z = covariance(terms.mean) + terms.logvar.exp().mean(dim=0).diag_embed()
        dip = dip_penalty(cov_z, self.config.lambda_od, self.config.lambda_d)
        return kl + dip, {"kl": kl, "dip": dip}
