"""Packing: several runs of one sweep trained as one batched computation, each ending where it would alone.

A locatello model (about 0.7 M parameters) leaves a GPU mostly idle, so runs
that share an architecture are stacked along a new leading dimension and
trained together: stacked parameters (K, ...) as ``torch.func.stack_module_state``
makes them, the encoder and decoder evaluated once for all K runs with
``vmap(functional_call(...))`` (grouped convolutions and batched matmuls
underneath), then each run's own regularizer applied to its slice. The
hyperparameters, and even the variant, may differ between runs of a pack:
only the network is shared, never the loss.

What each run keeps to itself, so that its numbers are those of ``train_run``:

* its weights, initialised exactly as alone (``torch.manual_seed(seed)`` then
  ``create_model``), and its own ``torch.Generator(seed)`` drawing the same
  batch indices and then the same noise, in the same order, every step;
* its Adam state: Adam is elementwise, so one Adam over the stacked
  parameters is K independent Adams (the step count is shared because every
  run of a pack is at the same step);
* its log window, divergence check (a run that diverges leaves the pack with
  its ``Diverged``; the others go on), checkpoints in ``train_run``'s payload
  layout (a packed run resumes alone and vice versa) and ``TrainResult``.

The pack's loss is the sum of the runs' losses; since no parameter is shared,
the gradient each run receives is that of its own loss. Results equal training
alone up to floating-point reassociation (grouped vs. plain convolutions).

Runs pack when ``pack_key`` agrees: same dataset, network structure, latent
size, likelihood, channels, batch size, steps, learning rate, optimiser and
precision. A variant that overrides ``forward``/``encode``/``decode``, owns
parameters outside the encoder and decoder, or has an auxiliary optimiser
(FactorVAE's discriminator) is not packed; it trains alone through
``train_run``.

Limits. "Equal" means equal up to reassociation, and these ReLU networks
trained by Adam amplify such differences: the same run trained alone on one
and on two threads drifts apart just as far as packed and alone do (see
tests/runner/test_packing.py for what is compared, over which horizon). On a
CPU packing does not pay: one model already fills the cores, and oneDNN's
grouped convolutions are slower than its plain ones (results/perf/train_cpu.md),
so the runner should pack on GPUs only. Each step still issues a few small
kernels per run (its draws, regularizer and log row), which bounds what a
large pack gains on a GPU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call, vmap

from benchmarks.datasets import sample_batch
from benchmarks.runner.train import (
    Diverged,
    Interrupted,
    TrainResult,
    _autocast,
    _build,
    _close_window,
    _restore,
    _save,
    _Window,
    resolve_precision,
    train_run,
)
from vae_zoo import VAE, get_model
from vae_zoo.core import Terms, VAEOutput
from vae_zoo.losses import gaussian_kl

__all__ = ["pack_key", "plan_packs", "train_packed", "why_not_packable"]

#: The methods a packable variant leaves to the core: packing re-evaluates the
#: network for all runs at once and calls only the variant's ``regularizer``.
_CORE_METHODS = ("forward", "encode", "decode", "make_auxiliary_optimizer", "auxiliary_loss")


@functools.lru_cache(maxsize=256)
def _skeleton(model: str, config_json: str) -> tuple[str | None, str]:
    """(reason the variant cannot be packed or None, a description of its network's structure)."""
    cls = get_model(model)
    for name in _CORE_METHODS:
        if getattr(cls, name) is not getattr(VAE, name):
            return f"{model} overrides VAE.{name}", ""
    with torch.device("meta"):  # structure only, no memory and no random numbers
        instance = cls(**json.loads(config_json))
    outside = [n for n, _ in instance.named_parameters() if not n.startswith(("encoder.", "decoder."))]
    if outside:
        return f"{model} has parameters outside the encoder and decoder ({', '.join(outside[:3])})", ""
    if any(True for _ in instance.buffers()):
        return f"{model} has buffers, which packing does not stack", ""
    structure = f"{instance.encoder!r}\n{instance.decoder!r}"  # layer types and shapes
    return None, hashlib.sha256(structure.encode()).hexdigest()[:16]


def _structure(spec: dict[str, Any]) -> tuple[str | None, str]:
    return _skeleton(spec["model"], json.dumps(spec["model_config"], sort_keys=True))


def why_not_packable(spec: dict[str, Any]) -> str | None:
    """Why the run of ``spec`` must train alone, or None when it can be packed."""
    return _structure(spec)[0]


def pack_key(spec: dict[str, Any]) -> tuple:
    """Runs with equal keys can train in one pack. A run that cannot be packed gets a key of its own."""
    reason, structure = _structure(spec)
    if reason is not None:
        return ("alone", json.dumps(spec, sort_keys=True, default=str))
    config = get_model(spec["model"]).make_config(**spec["model_config"])
    t = spec["training"]
    return (
        "packed",
        spec["dataset"],
        spec.get("dataset_source", "auto"),
        config.architecture,
        config.latent_dim,
        config.likelihood,
        config.in_channels,
        t["batch_size"],
        t["steps"],
        t["learning_rate"],
        t.get("optimizer", "adam"),
        t["precision"],
        structure,
    )


def plan_packs(specs: Sequence[dict[str, Any]], pack_size: int) -> list[list[dict[str, Any]]]:
    """Split specs into packs of at most ``pack_size`` compatible runs, in the order given.

    Compatible runs are grouped by ``pack_key`` (groups ordered by their first run) and
    cut into consecutive chunks; ``pack_size=1`` gives one run per pack (packing off).
    """
    if isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1:
        raise ValueError(f"pack_size must be a positive integer; got {pack_size!r}")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for spec in specs:
        groups.setdefault(pack_key(spec), []).append(spec)
    return [group[i : i + pack_size] for group in groups.values() for i in range(0, len(group), pack_size)]


@dataclass
class _Member:
    """One run of a pack: everything ``train_run`` would hold for it."""

    index: int  # position in train_packed's arguments
    spec: dict[str, Any]
    checkpoint: Path
    model: VAE  # holds the run's weights whenever they are saved or returned
    # The run's own Adam: its state_dict is the checkpoint's format; it carries the state between packs.
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    start_step: int = 0
    window: _Window | None = None

    def save(self, step: int) -> None:
        _save(self.checkpoint, self.spec, step, self.model, self.optimizer, None, self.generator, self.window)


class _Pack:
    """Stacked weights (K, ...) and one Adam over them, for members that are all at the same step."""

    def __init__(self, members: list[_Member], device: torch.device):
        self.members = members
        base = members[0].model
        self.names = [n for n, _ in base.named_parameters()]
        # (K, *shape) leaves, in the order the members' own optimisers list their parameters.
        self.params = [
            torch.stack([m.model.get_parameter(n).detach() for m in members]).requires_grad_()
            for n in self.names
        ]
        self.optimizer = type(members[0].optimizer)(self.params, **members[0].optimizer.defaults)
        self._stack_optimizer_state()
        named = dict(zip(self.names, self.params))
        self.encoder = {n.removeprefix("encoder."): p for n, p in named.items() if n.startswith("encoder.")}
        self.decoder = {n.removeprefix("decoder."): p for n, p in named.items() if n.startswith("decoder.")}
        base.train()
        # The first member's modules evaluated with every member's weights: (K, B, C, H, W) -> (K, B, 2D)
        # and (K, B, D) -> (K, B, C, H, W). vmap turns the convolutions into grouped ones.
        self._encode = vmap(lambda p, x: functional_call(base.encoder, p, (x,)))
        self._decode = vmap(lambda p, z: functional_call(base.decoder, p, (z,)))
        self.nll = base.nll

    def _stack_optimizer_state(self) -> None:
        """Each stacked parameter's Adam state from the members' own optimisers (empty at step 0)."""
        own = [list(m.model.parameters()) for m in self.members]
        for i, stacked in enumerate(self.params):
            states = [m.optimizer.state.get(params[i], {}) for m, params in zip(self.members, own)]
            if not any(states):
                continue
            if not all(states):
                raise RuntimeError("members of a pack must all have optimiser state or none")
            # "step" is shared (every member is at the same step); moments and the like are stacked.
            self.optimizer.state[stacked] = {
                key: _copy(value) if key == "step" else torch.stack([s[key] for s in states])
                for key, value in states[0].items()
            }

    def write_back(self, k: int) -> None:
        """Copy member k's slice of the weights and of the Adam state into its own model and optimiser."""
        member = self.members[k]
        own = list(member.model.parameters())
        with torch.no_grad():
            for p, stacked in zip(own, self.params):
                p.copy_(stacked[k])
        for p, stacked in zip(own, self.params):
            state = self.optimizer.state.get(stacked)
            if state:
                member.optimizer.state[p] = {
                    key: _copy(value) if key == "step" else value[k].clone() for key, value in state.items()
                }

    def forward(self, x: torch.Tensor, noise: torch.Tensor, step: int) -> list[VAEOutput]:
        """``VAE.forward`` for every member at once.

        Mirrors the core's assembly term by term (encode, reparameterise, decode,
        reconstruction, KL, the member's own regularizer); tests/runner/test_packing.py
        checks it against ``VAE.forward`` for every packable registered variant.

        Args:
            x: (K, B, C, 64, 64) float images in [0, 1], one batch per member.
            noise: (K, B, D) reparameterisation noise from each member's generator.
        """
        k, b = x.shape[:2]
        mean, logvar = self._encode(self.encoder, x).chunk(2, dim=-1)  # each (K, B, D)
        z = mean + torch.exp(0.5 * logvar) * noise  # (K, B, D), Kingma & Welling eq. 10
        logits = self._decode(self.decoder, z)  # (K, B, C, 64, 64)
        reconstruction = self.nll(logits.flatten(0, 1), x.flatten(0, 1)).view(k, b).mean(dim=1)  # (K,)
        kl = gaussian_kl(mean, logvar)  # (K, B)
        outputs = []
        for i, member in enumerate(self.members):
            terms = Terms(kl=kl[i], mean=mean[i], logvar=logvar[i], z=z[i], step=step)
            regularizer, parts = member.model.regularizer(terms)
            outputs.append(
                VAEOutput(
                    loss=reconstruction[i] + regularizer,
                    reconstruction=reconstruction[i],
                    kl=kl[i].mean(),
                    regularizer=regularizer,
                    parts=parts,
                    mean=mean[i],
                    logvar=logvar[i],
                    z=z[i],
                    logits=logits[i],
                )
            )
        return outputs


def train_packed(
    specs: list[dict[str, Any]],
    images_u8: torch.Tensor,
    device: torch.device,
    checkpoints: list[Path],
    *,
    on_step: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[TrainResult | Diverged]:
    """Train compatible runs as one pack; for each, what ``train_run`` would return or raise.

    Args:
        specs: ``RunSpec.to_dict()`` of each run; all must share one ``pack_key``
            (a single run that cannot be packed is handed to ``train_run``).
        images_u8: the whole training set (N, C, 64, 64) uint8, already on ``device``.
        checkpoints: one path per run, in ``train_run``'s payload layout; a run
            resumes from its own, and runs resumed at different steps train in
            consecutive packs, one per start step.
        on_step: progress callback ``(index of the run in specs, steps done, total
            steps)``, called when that run's log window closes.
        should_stop: polled every step; when it turns true every unfinished run is
            saved and ``Interrupted`` is raised (its ``checkpoints`` lists them all).

    Returns:
        per run, its ``TrainResult`` or the ``Diverged`` it would have raised.
        ``train_seconds`` is the wall time of the pack the run trained in, and
        ``images_per_second`` the run's own images over it, so a pack's aggregate
        throughput is the sum over its runs.
    """
    if len(specs) != len(checkpoints):
        raise ValueError(f"{len(specs)} specs but {len(checkpoints)} checkpoints")
    if not specs:
        return []
    if len(specs) == 1 and why_not_packable(specs[0]) is not None:
        try:
            return [train_run(specs[0], images_u8, device, checkpoints[0], on_step=_for(on_step, 0))]
        except Diverged as exc:
            return [exc]
    keys = {pack_key(s) for s in specs}
    if len(keys) > 1:
        reasons = [f"{s['model']}: {why_not_packable(s)}" for s in specs if why_not_packable(s)]
        raise ValueError(
            "runs of one pack must share pack_key (dataset, network, latent size, likelihood, batch "
            "size, steps, learning rate, optimiser, precision)"
            + (f"; cannot pack {'; '.join(reasons)}" if reasons else "")
        )
    t = specs[0]["training"]
    steps = t["steps"]
    results: list[TrainResult | Diverged | None] = [None] * len(specs)

    members = []
    for i, (spec, checkpoint) in enumerate(zip(specs, checkpoints)):
        model, optimizer, _, generator = _build(spec, device)
        start, window = _restore(checkpoint, spec, device, model, optimizer, None, generator)
        member = _Member(i, spec, checkpoint, model, optimizer, generator, start, window)
        if start >= steps:  # already finished: what train_run returns for a run with nothing left to do
            results[i] = _result(
                member, steps, seconds=0.0, precision=resolve_precision(t["precision"], device)
            )
        else:
            members.append(member)

    for start in sorted({m.start_step for m in members}):
        group = [m for m in members if m.start_step == start]
        _train_group(group, start, images_u8, device, results, on_step, should_stop)
    return results  # type: ignore[return-value]


def _copy(value):
    return value.clone() if torch.is_tensor(value) else value


def _for(on_step, index):
    return None if on_step is None else functools.partial(on_step, index)


def _result(member: _Member, steps: int, seconds: float, precision: str) -> TrainResult:
    done = steps - member.start_step
    member.model.eval()
    curve = member.window.curve
    return TrainResult(
        model=member.model,
        curve=curve,
        final={k: v[-1] for k, v in curve.items() if k != "step"},
        train_seconds=seconds,
        images_per_second=done * member.spec["training"]["batch_size"] / seconds if seconds > 0 else math.nan,
        resumed_from_step=member.start_step,
        precision=precision,
    )


def _train_group(members, start_step, images_u8, device, results, on_step, should_stop) -> None:
    """The training loop of ``train_run`` for members that all start at ``start_step``."""
    t = members[0].spec["training"]
    steps, batch_size = t["steps"], t["batch_size"]
    precision = resolve_precision(t["precision"], device)
    n_images = images_u8.shape[0]
    latent_dim = members[0].model.config.latent_dim
    pack = _Pack(members, device)
    started = time.perf_counter()
    for step in range(start_step, steps):
        if should_stop():
            for k, member in enumerate(pack.members):
                pack.write_back(k)
                member.save(step)
            exc = Interrupted(step, pack.members[0].checkpoint)
            exc.checkpoints = [m.checkpoint for m in pack.members]
            raise exc
        # Each member draws exactly what train_run draws: its batch indices, then its noise.
        indices, noise = [], []
        for member in pack.members:
            g = member.generator
            indices.append(torch.randint(n_images, (batch_size,), generator=g, device=device))
            noise.append(torch.randn(batch_size, latent_dim, generator=g, device=device))
        x = sample_batch(images_u8, torch.cat(indices))  # (K * B, C, 64, 64), one gather for the pack
        x = x.view(len(pack.members), batch_size, *x.shape[1:])
        with _autocast(precision, device):
            outputs = pack.forward(x, torch.stack(noise), step)
        pack.optimizer.zero_grad(set_to_none=True)
        torch.stack([out.loss for out in outputs]).sum().backward()  # no shared weight: each its own gradient
        pack.optimizer.step()

        diverged = []
        for member, out in zip(pack.members, outputs):
            scalars = out.scalars()
            if member.window is None:
                log_every = member.spec["training"]["log_every"]
                member.window = _Window(list(scalars), torch.zeros(log_every, len(scalars), device=device))
            window = member.window
            window.values[window.filled] = torch.stack([scalars[k].detach().float() for k in window.names])
            window.filled += 1
            if window.filled == window.values.shape[0] or step + 1 == steps:
                try:
                    _close_window(window, step + 1)
                except Diverged as exc:
                    results[member.index] = exc
                    diverged.append(member)
                    continue
                if on_step is not None:
                    on_step(member.index, step + 1, steps)
        saving = [
            (k, m)
            for k, m in enumerate(pack.members)
            if m not in diverged
            and (step + 1) % m.spec["training"]["checkpoint_every"] == 0
            and step + 1 < steps
        ]
        for k, member in saving:
            pack.write_back(k)
            member.save(step + 1)
        if diverged:  # the others go on in a smaller pack, from their own (written back) states
            survivors = [m for m in pack.members if m not in diverged]
            for k, member in enumerate(pack.members):
                if member in survivors:
                    pack.write_back(k)
            if not survivors:
                return
            pack = _Pack(survivors, device)

    seconds = time.perf_counter() - started
    for k, member in enumerate(pack.members):
        pack.write_back(k)
        if steps > start_step:
            member.save(steps)  # the finished model, as train_run saves it
        results[member.index] = _result(member, steps, seconds, precision)
