"""Packing: several runs of one sweep trained as one batched computation, each ending where it would alone.

A locatello model (about 0.7 M parameters) leaves a GPU mostly idle, so runs
that share an architecture are stacked along a new leading dimension and
trained together by the one loop of ``train.train_runs``: stacked parameters
(K, ...) as ``torch.func.stack_module_state`` makes them, the encoder and
decoder evaluated once for all K runs with
``vmap(functional_call(...))`` (grouped convolutions and batched matmuls
underneath), then each run's own ``VAE.assemble_loss`` applied to its slice, so the ELBO is
assembled in one place for packed and single runs alike. The
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
  its ``Diverged``; the others go on), checkpoints in the layout of a run
  trained alone (a packed run resumes alone and vice versa) and ``TrainResult``.

The pack's loss is the sum of the runs' losses; since no parameter is shared,
the gradient each run receives is that of its own loss. Results equal training
alone up to floating-point reassociation (grouped vs. plain convolutions).

Runs pack when ``pack_key`` agrees: same dataset, network structure, latent
size, likelihood, channels, batch size, steps, learning rate, optimiser and
precision. A variant that overrides ``forward``/``encode``/``decode``, owns
parameters outside the encoder and decoder, or has an auxiliary optimiser
(FactorVAE's discriminator) is not packed; it trains alone, in a pack of one.

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
from collections.abc import Sequence

import torch
from torch.func import functional_call, vmap

from benchmarks.runner.spec import RunSpec, thaw
from benchmarks.runner.train import Member, autocast
from vae_zoo import VAE, get_model

__all__ = ["StackedNetwork", "check_packable", "pack_key", "plan_packs", "why_not_packable"]

#: The methods a packable variant leaves to the core: packing evaluates the network for all
#: runs at once and calls only the variant's ``assemble_loss`` (hence its ``regularizer``).
_CORE_METHODS = (
    "forward",
    "encode",
    "decode",
    "assemble_loss",
    "pool_views",
    "make_auxiliary_optimizer",
    "auxiliary_loss",
)


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


def _structure(spec: RunSpec) -> tuple[str | None, str]:
    return _skeleton(spec.model, json.dumps(thaw(spec.model_config), sort_keys=True))


def why_not_packable(spec: RunSpec) -> str | None:
    """Why the run of ``spec`` must train alone, or None when it can be packed."""
    return _structure(spec)[0]


def pack_key(spec: RunSpec) -> tuple:
    """Runs with equal keys can train in one pack. A run that cannot be packed gets a key of its own."""
    reason, structure = _structure(spec)
    if reason is not None:
        return ("alone", spec.run_id)
    config = get_model(spec.model).make_config(**thaw(spec.model_config))
    t = spec.training
    return (
        "packed",
        get_model(spec.model).views,
        json.dumps(thaw(spec.pairs), sort_keys=True),
        spec.dataset,
        spec.dataset_source,
        config.architecture,
        config.latent_dim,
        config.likelihood,
        config.in_channels,
        t.batch_size,
        t.steps,
        t.learning_rate,
        t.optimizer,
        t.precision,
        structure,
    )


def check_packable(specs: Sequence[RunSpec]) -> None:
    """Refuse a pack whose runs do not share one ``pack_key``, saying why."""
    keys = {pack_key(s) for s in specs}
    if len(keys) > 1 or next(iter(keys))[0] == "alone":
        reasons = [f"{s.model}: {why_not_packable(s)}" for s in specs if why_not_packable(s)]
        raise ValueError(
            "runs of one pack must share pack_key (dataset, network, latent size, likelihood, batch "
            "size, steps, learning rate, optimiser, precision)"
            + (f"; cannot pack {'; '.join(reasons)}" if reasons else "")
        )


def plan_packs(specs: Sequence[RunSpec], pack_size: int) -> list[list[RunSpec]]:
    """Split specs into packs of at most ``pack_size`` compatible runs, in the order given.

    Compatible runs are grouped by ``pack_key`` (groups ordered by their first run) and
    cut into consecutive chunks; ``pack_size=1`` gives one run per pack (packing off).
    """
    if isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1:
        raise ValueError(f"pack_size must be a positive integer; got {pack_size!r}")
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(pack_key(spec), []).append(spec)
    return [group[i : i + pack_size] for group in groups.values() for i in range(0, len(group), pack_size)]


def _copy(value):
    return value.clone() if torch.is_tensor(value) else value


class StackedNetwork:
    """Stacked weights (K, ...) and one Adam over them, for members that are all at the same step."""

    def __init__(self, members: list[Member], device: torch.device):
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

    def forward(self, x: torch.Tensor, noise: torch.Tensor, step: int, changed: torch.Tensor | None = None):
        """``VAE.forward`` for every member at once: one vmapped encode and decode, then each
        member's own ``assemble_loss`` on its slice.

        Args:
            x: (K, B, C, 64, 64) float images in [0, 1], one batch per member; for pair
                variants (K, B, 2, C, 64, 64), pooled by each member's ``pool_views``.
            noise: (K, B, D) reparameterisation noise from each member's generator ((K, B, 2, D)).
            changed: (K, B) the changed factor of each pair, or None.
        """
        views = self.members[0].model.views
        if views > 1:
            pairs = x.shape[1]
            x, noise = x.flatten(1, 2), noise.flatten(1, 2)  # (K, B*2, ...): the images of every pair
        mean, logvar = self._encode(self.encoder, x).chunk(2, dim=-1)  # each (K, B, D)
        if views > 1:
            pooled = [
                m.model.pool_views(
                    mean[k].unflatten(0, (pairs, views)),
                    logvar[k].unflatten(0, (pairs, views)),
                    None if changed is None else changed[k],
                )
                for k, m in enumerate(self.members)
            ]
            mean = torch.stack([p[0] for p in pooled])  # (K, B*2, D)
            logvar = torch.stack([p[1] for p in pooled])
        z = VAE.reparameterise(mean, logvar, noise)  # (K, B, D)
        logits = self._decode(self.decoder, z)  # (K, B, C, 64, 64)
        return [
            m.model.assemble_loss(x[k], mean[k], logvar[k], z[k], logits[k], step=step)
            for k, m in enumerate(self.members)
        ]

    def step(
        self, x: torch.Tensor, noise: torch.Tensor, step: int, precision: str, device, changed=None
    ) -> list[dict]:
        """One optimisation step of every member; their logged scalars."""
        with autocast(precision, device):
            outputs = self.forward(x, noise, step, changed)
        self.optimizer.zero_grad(set_to_none=True)
        torch.stack([out.loss for out in outputs]).sum().backward()  # no shared weight: each its own gradient
        self.optimizer.step()
        return [out.scalars() for out in outputs]
