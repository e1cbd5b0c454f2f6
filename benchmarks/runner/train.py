"""Training one run: the step a reader can follow in one sitting, resumable to the same numbers.

The hot path has no host round-trip: the dataset sits on the device as uint8
and batches are drawn by index; the reparameterisation noise and batch indices
come from the run's own ``torch.Generator``; the loss and its parts go into a
device buffer of one log window and are read back once per window. Divergence
is found there, at the exact step.

Everything that determines the next step (weights, both optimisers' states, the
generator's state, the log buffer) goes into the checkpoint, so a run resumed
from any checkpoint ends with the numbers of an uninterrupted run (exactly, on
the CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.datasets import sample_batch
from vae_zoo import VAE, create_model, save_checkpoint
from vae_zoo.checkpoint import CheckpointError, read_checkpoint

__all__ = [
    "Diverged",
    "Interrupted",
    "TrainResult",
    "train_run",
    "resolve_device",
    "resolve_precision",
    "make_optimizers",
]


class Diverged(RuntimeError):
    """The loss or one of its parts became NaN or infinite."""

    def __init__(self, step: int, reason: str):
        super().__init__(f"diverged at step {step}: {reason}")
        self.step, self.reason = step, reason


class Interrupted(RuntimeError):
    """Training stopped on request (SIGINT/SIGTERM) after checkpointing."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(f"interrupted at step {step}; state saved to {checkpoint}")
        self.step, self.checkpoint = step, checkpoint


@dataclass
class TrainResult:
    model: VAE
    curve: dict[str, list[float]]
    final: dict[str, float]
    train_seconds: float
    images_per_second: float
    resumed_from_step: int
    precision: str


@dataclass
class _Window:
    """Per-step loss terms of the current log window, kept on the device: (log_every, n_terms)."""

    names: list[str]
    values: torch.Tensor
    filled: int = 0
    curve: dict[str, list[float]] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available; 'cuda' without a GPU is refused with a clear message."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto"
        )
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is the fastest path measured not to change results on that device (issue 6).

    bf16 autocast on CUDA; fp32 on the CPU (where bf16 needs AMX/AVX512-BF16 to pay).
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def make_optimizers(model: VAE, learning_rate: float, device: torch.device):
    """Adam for the ELBO's parameters (the study's optimiser, default betas), and the variant's
    auxiliary optimiser (FactorVAE's discriminator) whose parameters the ELBO does not train."""
    aux = model.make_auxiliary_optimizer()
    aux_ids = {id(p) for g in aux.param_groups for p in g["params"]} if aux is not None else set()
    params = [p for p in model.parameters() if id(p) not in aux_ids]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.Adam(params, lr=learning_rate, **fast), aux


def _autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def train_run(
    spec: dict[str, Any],
    images_u8: torch.Tensor,
    device: torch.device,
    checkpoint: Path,
    *,
    on_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Train the model a run spec describes; resume from ``checkpoint`` if it holds a partial run.

    Args:
        spec: ``RunSpec.to_dict()``.
        images_u8: the whole training set (N, C, 64, 64) uint8, already on ``device``.
        checkpoint: where training state is saved (periodically, and when stopped).
        on_step: progress callback (steps done, total steps), called once per log window.
        should_stop: polled every step; when it turns true the state is saved and
            ``Interrupted`` is raised.
    """
    t = spec["training"]
    steps, batch_size, log_every = t["steps"], t["batch_size"], t["log_every"]
    precision = resolve_precision(t["precision"], device)
    model, optimizer, aux_optimizer, generator = _build(spec, device)
    start_step, window = _restore(checkpoint, spec, device, model, optimizer, aux_optimizer, generator)

    def save(step: int) -> None:
        _save(checkpoint, spec, step, model, optimizer, aux_optimizer, generator, window)

    n_images = images_u8.shape[0]
    latent_dim = model.config.latent_dim
    model.train()
    started = time.perf_counter()
    for step in range(start_step, steps):
        if should_stop():
            save(step)
            raise Interrupted(step, checkpoint)
        index = torch.randint(n_images, (batch_size,), generator=generator, device=device)
        x = sample_batch(images_u8, index)  # (B, C, 64, 64) float in [0, 1], gathered on the device
        noise = torch.randn(batch_size, latent_dim, generator=generator, device=device)
        with _autocast(precision, device):
            out = model(x, step=step, noise=noise)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if aux_optimizer is not None:
            aux_optimizer.zero_grad(set_to_none=True)
            with _autocast(precision, device):
                aux_loss = model.auxiliary_loss(out, generator)
            aux_loss.backward()
            aux_optimizer.step()

        scalars = out.scalars()
        if aux_optimizer is not None:
            scalars["auxiliary_loss"] = aux_loss
        if window is None:
            window = _Window(list(scalars), torch.zeros(log_every, len(scalars), device=device))
        window.values[window.filled] = torch.stack([scalars[k].detach().float() for k in window.names])
        window.filled += 1
        if window.filled == log_every or step + 1 == steps:
            _close_window(window, step + 1)
            if on_step is not None:
                on_step(step + 1, steps)
        if (step + 1) % t["checkpoint_every"] == 0 and step + 1 < steps:
            save(step + 1)

    seconds = time.perf_counter() - started
    done = steps - start_step
    if done:
        save(steps)  # the finished model, for `vaebench eval` and a crash during evaluation
    final = {k: v[-1] for k, v in window.curve.items() if k != "step"}
    model.eval()
    return TrainResult(
        model=model,
        curve=window.curve,
        final=final,
        train_seconds=seconds,
        images_per_second=done * batch_size / seconds if seconds > 0 else math.nan,
        resumed_from_step=start_step,
        precision=precision,
    )


def _build(spec: dict[str, Any], device: torch.device):
    """A run's model, optimisers and generator, initialised from its seed (shared with packing)."""
    torch.manual_seed(spec["seed"])  # weight initialisation
    model = create_model(spec["model"], **spec["model_config"]).to(device)
    optimizer, aux_optimizer = make_optimizers(model, spec["training"]["learning_rate"], device)
    generator = torch.Generator(device=device).manual_seed(spec["seed"])  # batches, noise, permutations
    return model, optimizer, aux_optimizer, generator


def _restore(checkpoint: Path, spec, device, model, optimizer, aux_optimizer, generator):
    """Load a partial run from ``checkpoint`` if there is one: (start step, log window or None)."""
    if not checkpoint.exists():
        return 0, None
    try:
        state = read_checkpoint(checkpoint, map_location=device)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. Delete it to restart this run from scratch.") from None
    if state.get("run_spec") != spec:
        raise CheckpointError(
            f"checkpoint {checkpoint} belongs to a different run spec; delete it to restart"
        )
    model.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    if aux_optimizer is not None:
        aux_optimizer.load_state_dict(state["aux_optimizer"])
    generator.set_state(state["generator"].cpu())
    window = _Window(state["window_names"], state["window_values"].to(device), state["window_filled"])
    window.curve = state["curve"]
    return state["step"], window


def _save(checkpoint: Path, spec, step: int, model, optimizer, aux_optimizer, generator, window) -> None:
    """Everything that determines the next step, in the payload layout ``_restore`` reads."""
    save_checkpoint(
        model,
        checkpoint,
        run_spec=spec,
        step=step,
        optimizer=optimizer.state_dict(),
        aux_optimizer=aux_optimizer.state_dict() if aux_optimizer is not None else None,
        generator=generator.get_state(),
        window_names=window.names if window else [],
        window_values=window.values if window else torch.zeros(0),
        window_filled=window.filled if window else 0,
        curve=window.curve if window else {},
    )


def _close_window(window: _Window, step_after: int) -> None:
    """Read the window back once, check it is finite, and append its averages to the curve."""
    values = window.values[: window.filled].cpu()  # the one host round-trip per window
    finite = torch.isfinite(values)
    if not finite.all():
        row, col = (~finite).nonzero()[0].tolist()
        bad_step = step_after - window.filled + row
        raise Diverged(bad_step, f"{window.names[col]} became {values[row, col].item()} at step {bad_step}")
    means = values.double().mean(0).tolist()
    window.curve.setdefault("step", []).append(step_after)
    for name, value in zip(window.names, means):
        window.curve.setdefault(name, []).append(value)
    window.filled = 0
