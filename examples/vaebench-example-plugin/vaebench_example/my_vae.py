"""A third-party variant: a gamma-weighted KL, written exactly as the README shows."""

from dataclasses import dataclass

from vae_zoo import VAE, register_model


@register_model("my_vae")
class MyVAE(VAE):
    """Example plug-in: reconstruction + gamma * KL (a beta-VAE under another name)."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        gamma: float = 2.0

    def regularizer(self, terms):
        # terms.kl: (B,) analytic KL per sample, summed over latent dims
        # terms.mean, terms.logvar, terms.z: (B, latent_dim); terms.step: int
        """gamma times the mean analytic KL; logs the KL."""
        kl = terms.kl.mean()
        return self.config.gamma * kl, {"kl": kl}
