"""The model registry: ``register_model``, ``create_model``, ``list_models``.

Built-in variants live one per file in ``vae_zoo/variants``; third-party ones
register with the decorator when imported, or through the entry-point group
``vaebench.models``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from vae_zoo.core import VAE
from vaebench.registry import Registry

BUILTIN_VARIANTS = (
    "vae",
    "beta_vae",
    "annealed_vae",
    "beta_tcvae",
    "factor_vae",
    "dip_vae_i",
    "dip_vae_ii",
    "group_vae_labels",
    "group_vae_argmax",
    "mlvae_labels",
    "mlvae_argmax",
)

MODELS: Registry[type[VAE]] = Registry(
    "model", "vaebench.models", builtin_modules=tuple(f"vae_zoo.variants.{n}" for n in BUILTIN_VARIANTS)
)


def register_model(name: str) -> Callable[[type[VAE]], type[VAE]]:
    """Class decorator registering a VAE variant under ``name``; refuses names already taken."""

    def decorator(cls: type[VAE]) -> type[VAE]:
        if not (isinstance(cls, type) and issubclass(cls, VAE)):
            raise TypeError(f"register_model({name!r}) decorates subclasses of vae_zoo.VAE; got {cls!r}")
        config = cls.__dict__.get("Config", cls.Config)
        if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
            raise TypeError(f"{cls.__qualname__}.Config must be a frozen dataclass")
        return MODELS.register(name)(cls)

    return decorator


def get_model(name: str) -> type[VAE]:
    """The variant class registered as ``name``."""
    return MODELS.get(name)


def create_model(name: str, **config: Any) -> VAE:
    """Instantiate the registered variant ``name`` with config fields as keywords."""
    return MODELS.get(name)(**config)


def list_models(pattern: str = "*") -> list[str]:
    """Registered variant names matching a wildcard pattern, sorted."""
    return MODELS.names(pattern)


def describe_model(name: str) -> str:
    """The first paragraph of the variant's docstring, on one line."""
    doc = (MODELS.get(name).__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""
