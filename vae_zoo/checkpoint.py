"""Checkpoints that store ``{model, config, state_dict}`` and reload through the registry."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from vae_zoo.core import VAE
from vae_zoo.registry import MODELS
from vaebench.atomic import atomic_write

FORMAT = "vaebench.checkpoint/1"

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint", "model_from_payload"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not describe a registered model."""


def save_checkpoint(model: VAE, path: str | os.PathLike, **extra: Any) -> Path:
    """Write the model's registered name, config and weights (plus ``extra``) atomically.

    Through ``vaebench.atomic``, so an interrupted save never leaves a
    half-written checkpoint under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": MODELS.name_of(type(model)),
        "config": dataclasses.asdict(model.config),
        "state_dict": model.state_dict(),
        **extra,
    }
    atomic_write(path, lambda f: torch.save(payload, f))
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw payload; raises CheckpointError naming the path if it is unreadable or not ours."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a vaebench checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path}: expected format {FORMAT!r}, found {found!r}")
    return payload


def model_from_payload(payload: dict[str, Any]) -> VAE:
    model = MODELS.get(payload["model"])(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> VAE:
    """Rebuild the model through the registry and load its weights (in eval mode)."""
    return model_from_payload(read_checkpoint(path, map_location)).eval()
