"""Conformance checks for VAE variants, the ones the project runs on its own.

A third party calls ``check_model(MyVAE)`` in its own tests (scikit-learn's
``parametrize_with_checks`` idea): finite loss, gradients reach every trainable
parameter, the config round-trips, and a checkpoint reloads to identical outputs.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from vae_zoo.checkpoint import load_checkpoint, save_checkpoint
from vae_zoo.core import VAE, VAEOutput
from vae_zoo.registry import MODELS

__all__ = ["check_model"]


def _inputs(model: VAE, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Binary images, noise and (for pair variants) changed factors for one forward pass."""
    views = () if model.views == 1 else (model.views,)  # a pair variant takes (B, V, C, H, W)
    channels, latent = model.config.in_channels, model.config.latent_dim
    inputs = {
        "x": (torch.rand(batch, *views, channels, 64, 64, generator=generator) > 0.7).float(),
        "noise": torch.randn(batch, *views, latent, generator=generator),
    }
    if model.needs_changed_factor:
        inputs["changed_factor"] = torch.randint(-1, latent, (batch,), generator=generator)
    return inputs


def check_model(cls: type[VAE], *, batch_size: int = 8, **config: Any) -> None:
    """Raise AssertionError describing the first failed check of variant ``cls``.

    ``config`` overrides the variant's defaults; a small ``dataset_size`` is set
    so that estimators of the aggregate posterior can run.
    """
    assert isinstance(cls, type) and issubclass(cls, VAE), f"{cls!r} is not a subclass of vae_zoo.VAE"
    name = MODELS.name_of(cls)  # registered (by decorator or entry point)
    assert VAE in cls.__bases__, f"{cls.__qualname__} must subclass VAE directly, not {cls.__bases__}"
    config = {"dataset_size": 1000, "architecture": "burgess", **config}
    torch.manual_seed(0)
    model = cls(**config)
    assert cls.views >= 1, f"{name}: views must be >= 1, got {cls.views!r}"
    inputs = _inputs(model, batch_size, torch.Generator().manual_seed(0))
    images = batch_size * model.views  # a pair variant's loss covers both images of each pair

    # 1. one record with a finite scalar loss and the shapes metrics need
    out = model(**inputs, step=10)
    assert isinstance(out, VAEOutput), f"{name}: forward must return VAEOutput, got {type(out)}"
    assert out.loss.ndim == 0 and torch.isfinite(out.loss), f"{name}: loss is not a finite scalar: {out.loss}"
    for key, value in out.scalars().items():
        assert value.ndim == 0 and torch.isfinite(value), (
            f"{name}: logged part {key!r} = {value} is not finite"
        )
    d = model.config.latent_dim
    for field in ("mean", "logvar", "z"):
        assert getattr(out, field).shape == (images, d), (
            f"{name}: {field} has shape {getattr(out, field).shape}"
        )
    flat = inputs["x"] if model.views == 1 else inputs["x"].flatten(0, 1)  # (B*V, C, H, W)
    assert out.logits.shape == flat.shape, f"{name}: logits {out.logits.shape} != images {flat.shape}"
    assert model.representation(flat[:2]).shape == (2, d), f"{name}: representation of single images"

    # 2. gradients reach every trainable parameter (ELBO's or the auxiliary network's)
    aux_optimizer = model.make_auxiliary_optimizer()
    aux_ids = {id(p) for g in aux_optimizer.param_groups for p in g["params"]} if aux_optimizer else set()
    model.zero_grad()
    out.loss.backward()
    if aux_optimizer is not None:
        aux_loss = model.auxiliary_loss(out, torch.Generator().manual_seed(1))
        assert aux_loss.ndim == 0 and torch.isfinite(aux_loss), (
            f"{name}: auxiliary loss {aux_loss} not finite"
        )
        for p in model.parameters():
            if id(p) in aux_ids:  # only the auxiliary loss trains these
                p.grad = None
        aux_loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), (
                f"{name}: no finite gradient for {pname}"
            )
            assert p.grad.abs().sum() > 0, f"{name}: gradient of {pname} is identically zero"

    # 3. the config round-trips through a plain dict
    as_dict = dataclasses.asdict(model.config)
    assert cls.make_config(**as_dict) == model.config, f"{name}: config does not round-trip through asdict"
    for key, value in as_dict.items():
        assert value is None or isinstance(value, (int, float, str, bool)), (
            f"{name}: config field {key}={value!r} is not a plain value (checkpoints and run specs store it)"
        )
    rebuilt = MODELS.get(name)(**as_dict)
    assert rebuilt.config == model.config

    # 4. a saved checkpoint reloads to identical outputs
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(model, Path(tmp) / "model.pt")
        reloaded = load_checkpoint(path)
    assert type(reloaded) is cls, f"{name}: reloaded as {type(reloaded)}"
    with torch.no_grad():
        a, b = model(**inputs, step=10), reloaded(**inputs, step=10)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss), f"{name}: reloaded outputs differ"
    assert math.isfinite(float(a.loss))
