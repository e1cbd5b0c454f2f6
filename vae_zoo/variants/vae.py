"""The plain VAE (Kingma & Welling 2014): the base class's ELBO, registered as ``vae``."""

from vae_zoo.core import VAE
from vae_zoo.registry import register_model


@register_model("vae")
class PlainVAE(VAE):
    """VAE (Kingma & Welling 2014): reconstruction + KL(q(z|x) || N(0, I))."""
