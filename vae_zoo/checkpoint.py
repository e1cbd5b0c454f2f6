"""Checkpoints that store ``{model, config, state_dict}`` and reload through the registry.

Every checkpoint carries a hash of its content (``content_sha256``: every tensor's dtype,
shape and bytes and every other value, in key order), checked when it is read, so a file
damaged after it was written (a flipped or zeroed weight of the same size) is refused
instead of trained on. ``keep_previous`` keeps the checkpoint it replaces beside it
(``previous_path``), for ``read_checkpoint_or_previous`` to fall back to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from vae_zoo.core import VAE
from vae_zoo.registry import MODELS
from vaebench.atomic import atomic_write
from vaebench.errors import UserError

FORMAT = "vaebench.checkpoint/1"

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "read_checkpoint_or_previous",
    "previous_path",
    "content_digest",
    "model_from_payload",
]

#: The payload key of the content hash.
HASH_KEY = "content_sha256"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read or does not describe a registered model."""


def _feed(digest, value: Any) -> None:
    """Add ``value`` to ``digest``: tensors by dtype, shape and bytes, containers in key order."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {value.dtype} {tuple(value.shape)}:".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}:".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def content_digest(payload: dict[str, Any]) -> str:
    """The sha256 of a checkpoint's content, its own hash left out."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != HASH_KEY})
    return digest.hexdigest()


def previous_path(path: str | os.PathLike) -> Path:
    """Where ``save_checkpoint(..., keep_previous=True)`` keeps the checkpoint it replaced."""
    path = Path(path)
    return path.with_name(f"{path.name}.previous")


def save_checkpoint(
    model: VAE, path: str | os.PathLike, *, keep_previous: bool = False, **extra: Any
) -> Path:
    """Write the model's name, config and weights atomically, with its content hash.

    The name is the registered one; ``extra`` is stored beside the weights.

    Through ``vaebench.atomic``, so an interrupted save never leaves a
    half-written checkpoint under ``path``. ``keep_previous``: first move the
    checkpoint at ``path``, if any, to ``previous_path(path)``.
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
    payload[HASH_KEY] = content_digest(payload)
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
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
    if HASH_KEY not in payload:
        warnings.warn(
            f"checkpoint {path} has no content hash (written by an older vaebench): it cannot be verified",
            stacklevel=2,
        )
    elif content_digest(payload) != payload[HASH_KEY]:
        raise CheckpointError(
            f"checkpoint {path} fails its content hash: it was damaged after it was written"
        )
    return payload


def read_checkpoint_or_previous(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], Path, list[str]]:
    """The newest checkpoint that verifies: ``path``, else ``previous_path(path)``.

    Returns the payload, the file it came from, and why each file tried before it was
    refused; raises CheckpointError naming both files when neither verifies.
    """
    refused = []
    for candidate in (Path(path), previous_path(path)):
        if not candidate.exists():
            continue
        try:
            return read_checkpoint(candidate, map_location), candidate, refused
        except CheckpointError as exc:
            refused.append(str(exc))
    raise CheckpointError("; ".join(refused) if refused else f"no checkpoint at {path}")


def model_from_payload(payload: dict[str, Any]) -> VAE:
    """The model a loaded checkpoint payload describes, built through the registry, weights loaded."""
    model = MODELS.get(payload["model"])(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> VAE:
    """Rebuild the model through the registry and load its weights (in eval mode)."""
    return model_from_payload(read_checkpoint(path, map_location)).eval()
