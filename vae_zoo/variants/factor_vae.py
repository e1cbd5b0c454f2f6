from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vae_zoo.core import VAE, Terms, VAEOutput, non_negative
from vae_zoo.losses import permute_dims
from vae_zoo.registry import register_model


def discriminator(latent_dim: int, hidden: int = 1000, layers: int = 6) -> nn.Sequential:
    """Kim & Mnih 2018, Appendix: 6 dense layers of 1000 with leaky ReLU (0.2), 2 logits
    [from q(z), from prod_d q(z_d)]."""
    blocks: list[nn.Module] = []
    width = latent_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, 2))


@register_model("factor_vae")
class FactorVAE(VAE):
    """FactorVAE (Kim & Mnih 2018, eq. 2): KL + gamma * TC, TC estimated by a discriminator."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        gamma: float = 30.0
        discriminator_lr: float = 1e-4

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "gamma", "discriminator_lr")

    study_grid = tuple({"gamma": g} for g in (10.0, 20.0, 30.0, 40.0, 50.0, 100.0))
    strength_field = "gamma"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.discriminator = discriminator(self.config.latent_dim)

    def regularizer(self, terms: Terms):
        kl = terms.kl.mean()
        logits = self.discriminator(terms.z)  # (B, 2)
        # Density-ratio trick: log D(z) - log(1 - D(z)) = logit_0 - logit_1 estimates log q(z)/prod q(z_d).
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return kl + self.config.gamma * tc, {"kl": kl, "tc": tc}

    def make_auxiliary_optimizer(self):
        return torch.optim.Adam(
            self.discriminator.parameters(), lr=self.config.discriminator_lr, betas=(0.5, 0.9)
        )

    def auxiliary_loss(self, output: VAEOutput, generator=None):
        z = output.z.detach()  # (B, D): the discriminator must not move the encoder
        real = F.log_softmax(self.discriminator(z), dim=1)[:, 0]
        permuted = F.log_softmax(self.discriminator(permute_dims(z, generator)), dim=1)[:, 1]
        return -0.5 * (real.mean() + permuted.mean())  # cross-entropy, Kim & Mnih Algorithm 1
