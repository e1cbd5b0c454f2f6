"""beta-TCVAE (Chen et al. 2018): the KL decomposed into MI, total correlation and dimension-wise KL."""

from dataclasses import dataclass

from vae_zoo.core import VAE, ConfigError, Terms, non_negative, one_of
from vae_zoo.losses import TC_ESTIMATORS, gaussian_log_density, log_aggregate_posterior
from vae_zoo.registry import register_model


@register_model("beta_tcvae")
class BetaTCVAE(VAE):
    """beta-TCVAE (Chen et al. 2018, eq. 4): reconstruction + alpha*MI + beta*TC + gamma*dimension-wise KL.

    ``estimator`` picks the minibatch estimate of log q(z) (``losses.TC_ESTIMATORS``):
    "mws" and "mss" (Chen et al., Appendix C.1/C.2; "mss" as derived, "chen_mss" as
    Chen's code builds it) use eq. 4 with the single-sample Monte Carlo KL it
    decomposes. "dlib" is disentanglement_lib's ``BetaTCVAE.regularizer`` (alpha =
    gamma = 1 only): analytic KL + (beta - 1) * its unnormalised TC, which is the
    MWS TC - (D - 1) log B, so its logged regularizer differs from "mws"'s by
    (beta - 1)(D - 1) log B besides the KL's Monte Carlo noise.
    """

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        alpha: float = 1.0
        beta: float = 6.0
        gamma: float = 1.0
        estimator: str = "mws"  # a key of losses.TC_ESTIMATORS

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "alpha", "beta", "gamma")
            one_of(self, "estimator", TC_ESTIMATORS)
            if self.estimator == "dlib" and (self.alpha, self.gamma) != (1.0, 1.0):
                raise ConfigError(
                    "BetaTCVAE.Config.estimator 'dlib' fixes alpha = gamma = 1 (KL + (beta - 1) TC); "
                    f"got alpha={self.alpha!r}, gamma={self.gamma!r}"
                )

    study_grid = tuple({"beta": b} for b in (1.0, 2.0, 4.0, 6.0, 8.0, 10.0))
    strength_field = "beta"

    def regularizer(self, terms: Terms):
        """The weighted decomposition of the KL (Chen et al. eq. 4) and its logged terms."""
        if self.config.dataset_size is None:
            raise ConfigError(
                "beta_tcvae needs config.dataset_size (the number of training images) for log q(z)"
            )
        # Each (B,): the decomposition of E[log q(z|x) - log p(z)] (Chen et al. eq. 2).
        log_qz_x = gaussian_log_density(terms.z, terms.mean, terms.logvar).sum(dim=1)
        log_pz = gaussian_log_density(terms.z, terms.z.new_zeros(()), terms.z.new_zeros(())).sum(dim=1)
        log_qz, log_qz_product = log_aggregate_posterior(
            terms.z, terms.mean, terms.logvar, self.config.dataset_size, self.config.estimator
        )
        mi = (log_qz_x - log_qz).mean()
        tc = (log_qz - log_qz_product).mean()
        dw_kl = (log_qz_product - log_pz).mean()
        c, kl = self.config, terms.kl.mean()
        if c.estimator == "dlib":  # dlib's vae.py BetaTCVAE: kl_loss + (beta - 1) * total_correlation
            regularizer = kl + (c.beta - 1.0) * tc
        else:
            regularizer = c.alpha * mi + c.beta * tc + c.gamma * dw_kl
        return regularizer, {"kl": kl, "mi": mi, "tc": tc, "dw_kl": dw_kl}
