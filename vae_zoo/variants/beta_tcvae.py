from dataclasses import dataclass

from vae_zoo.core import VAE, ConfigError, Terms, non_negative
from vae_zoo.losses import gaussian_log_density, log_aggregate_posterior
from vae_zoo.registry import register_model


@register_model("beta_tcvae")
class BetaTCVAE(VAE):
    """beta-TCVAE (Chen et al. 2018, eq. 4): reconstruction + alpha*MI + beta*TC + gamma*dimension-wise KL."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        alpha: float = 1.0
        beta: float = 6.0
        gamma: float = 1.0
        estimator: str = "mws"  # "mws" minibatch-weighted or "mss" minibatch-stratified sampling

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "alpha", "beta", "gamma")
            if self.estimator not in ("mws", "mss"):
                raise ConfigError(
                    f"BetaTCVAE.Config.estimator must be 'mws' or 'mss'; got {self.estimator!r}"
                )

    study_grid = tuple({"beta": b} for b in (1.0, 2.0, 4.0, 6.0, 8.0, 10.0))
    strength_field = "beta"

    def regularizer(self, terms: Terms):
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
        c = self.config
        return c.alpha * mi + c.beta * tc + c.gamma * dw_kl, {
            "kl": terms.kl.mean(),
            "mi": mi,
            "tc": tc,
            "dw_kl": dw_kl,
        }
