"""FactorVAE (Kim & Mnih 2018): total correlation estimated by a discriminator."""

from dataclasses import dataclass

import torch
from torch import nn

from vae_zoo.core import VAE, Terms, VAEOutput, non_negative, one_of
from vae_zoo.losses import DISCRIMINATOR_LOSSES, discriminator_loss, permute_dims
from vae_zoo.registry import register_model


def discriminator(latent_dim: int, hidden: int = 1000, layers: int = 6) -> nn.Sequential:
    """FactorVAE's discriminator (Kim & Mnih 2018, Appendix).

    6 dense layers of 1000 with leaky ReLU (0.2), 2 logits [from q(z), from prod_d q(z_d)];
    disentanglement_lib's ``fc_discriminator`` is the same.
    """
    blocks: list[nn.Module] = []
    width = latent_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, 2))


@register_model("factor_vae")
class FactorVAE(VAE):
    """FactorVAE (Kim & Mnih 2018, eq. 2): KL + gamma * TC, TC estimated by a discriminator.

    As disentanglement_lib (not Kim & Mnih, who permute a second batch), the
    discriminator sees the training batch's own z and its per-dimension permutation.
    ``discriminator_clip``: "none" (default, unchanged numerics) takes the exact
    log_softmax; "dlib" clips the discriminator's softmax probabilities to
    [1e-6, 1 - 1e-6] before the log in its loss, as dlib's ``make_discriminator``
    (the TC term uses the logits either way). Its optimiser is Adam(lr 1e-4,
    betas (0.5, 0.9), eps 1e-8), dlib's shared.gin ``discriminator/AdamOptimizer``.
    """

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        gamma: float = 30.0
        discriminator_lr: float = 1e-4
        discriminator_clip: str = "none"  # a key of losses.DISCRIMINATOR_LOSSES

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "gamma", "discriminator_lr")
            one_of(self, "discriminator_clip", DISCRIMINATOR_LOSSES)

    study_grid = tuple({"gamma": g} for g in (10.0, 20.0, 30.0, 40.0, 50.0, 100.0))
    strength_field = "gamma"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.discriminator = discriminator(self.config.latent_dim)
        self.initialise(self.discriminator)

    def regularizer(self, terms: Terms):
        """KL + gamma * TC, TC from the discriminator's logits (density-ratio trick); logs both."""
        kl = terms.kl.mean()
        logits = self.discriminator(terms.z)  # (B, 2)
        # Density-ratio trick: log D(z) - log(1 - D(z)) = logit_0 - logit_1 estimates log q(z)/prod q(z_d).
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return kl + self.config.gamma * tc, {"kl": kl, "tc": tc}

    def make_auxiliary_optimizer(self):
        """Adam for the discriminator (Kim & Mnih's betas 0.5, 0.9)."""
        return torch.optim.Adam(
            self.discriminator.parameters(), lr=self.config.discriminator_lr, betas=(0.5, 0.9)
        )

    def auxiliary_loss(self, output: VAEOutput, generator=None):
        """The discriminator's loss on real codes against dimension-permuted ones (encoder detached)."""
        z = output.z.detach()  # (B, D): the discriminator must not move the encoder
        real = self.discriminator(z)  # (B, 2)
        permuted = self.discriminator(permute_dims(z, generator))  # (B, 2)
        return discriminator_loss(real, permuted, self.config.discriminator_clip)
