"""vae_zoo: one ELBO core and the variants that differ only in their regularizer.

>>> from vae_zoo import create_model, list_models
>>> "beta_vae" in list_models()
True
>>> model = create_model("beta_vae", beta=4.0)

A new variant subclasses ``VAE``, nests a frozen keyword-only ``Config`` and
overrides ``regularizer``; ``@register_model("name")`` (or the entry-point
group ``vaebench.models``) makes it available everywhere, the CLI included.
"""

from vae_zoo.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vae_zoo.core import VAE, ConfigError, Terms, VAEOutput
from vae_zoo.registry import MODELS, create_model, describe_model, get_model, list_models, register_model

__all__ = [
    "VAE",
    "Terms",
    "VAEOutput",
    "ConfigError",
    "CheckpointError",
    "MODELS",
    "register_model",
    "create_model",
    "get_model",
    "list_models",
    "describe_model",
    "save_checkpoint",
    "load_checkpoint",
]
