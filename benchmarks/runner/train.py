"""The training loop and its two networks: K >= 1 runs trained together.

Each run ends with the numbers it would have alone.

A single run is a pack of one. Per step, every run draws from its own
``torch.Generator``, in this order: its batch indices, the dataset's
per-observation noise (``observation_noise``; none for most datasets), and the
reparameterisation noise. The network is evaluated either by the run's own
module (``SingleNetwork``, a pack of one: ``VAE.forward``) or by one vmapped
evaluation over the stacked weights of all K runs (``StackedNetwork``); either
way the loss is assembled by ``VAE.assemble_loss``, the one assembly of the
ELBO. Both follow the ``Network`` protocol, which is all the loop knows of them.

The hot path has no host round-trip: batches are drawn by index, the loss and
its parts go into a device buffer of one log window and are read back once per
window, where divergence is found at the exact step. Progress is counted on the
host, every step.

Everything that determines the next step (weights, both optimisers' states, the
generator's state, the log buffer) goes into the checkpoint, so a run resumed
from any checkpoint ends with the numbers of an uninterrupted run (exactly, on
the CPU); a packed run's checkpoint has the layout of a run trained alone, so
it resumes in a pack or alone.

Packing. A locatello model (about 0.7 M parameters) leaves a GPU mostly idle, so runs
that share an architecture are stacked along a new leading dimension and
trained together by the one loop of ``train_runs``: stacked parameters
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

Runs pack when ``plan.pack_key`` agrees: same dataset, network structure, latent
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

Which runs may share a pack (``plan.pack_key``) is the plan's policy; this
module only refuses a pack whose runs disagree (``plan.check_packable``).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch.func import functional_call, vmap

from benchmarks.datasets import TrainingImages
from benchmarks.runner.plan import check_packable
from benchmarks.runner.settings import OPTIMIZERS, resolve_precision
from benchmarks.runner.spec import RunSpec
from vae_zoo import VAE, create_model, save_checkpoint
from vae_zoo.checkpoint import CheckpointError, previous_path, read_checkpoint_or_previous
from vae_zoo.core import VAEOutput
from vaebench.errors import UserError

__all__ = [
    "Diverged",
    "Interrupted",
    "TrainResult",
    "ProgressCallback",
    "Network",
    "Member",
    "SingleNetwork",
    "StackedNetwork",
    "draw_inputs",
    "train_runs",
    "train_run",
    "resolve_device",
    "make_optimizers",
]

#: ``on_progress(index of the run in the pack, steps done, total steps)``, called every step.
ProgressCallback = Callable[[int, int, int], None]


#: ``(first images' indices (B,), generator) -> (second images' indices (B,), changed factor (B,))``
PairDraw = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class Diverged(RuntimeError):
    """The loss or one of its parts became NaN or infinite."""

    def __init__(self, step: int, reason: str):
        super().__init__(f"diverged at step {step}: {reason}")
        self.step, self.reason = step, reason


class Interrupted(RuntimeError):
    """Training stopped on request (SIGINT/SIGTERM) after checkpointing every unfinished run."""

    def __init__(self, step: int, checkpoints: Sequence[Path | None]):
        saved = [c for c in checkpoints if c is not None]
        where = f"state saved to {saved[0]}" if len(saved) == 1 else f"state of {len(saved)} runs saved"
        super().__init__(f"interrupted at step {step}; {where}")
        self.step, self.checkpoints = step, list(checkpoints)


@dataclass
class TrainResult:
    """A trained run: the model, its loss curve and final terms, and how long training took."""

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
        raise UserError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}")
    return torch.device(device)


def make_optimizers(model: VAE, learning_rate: float, device: torch.device, optimizer: str = "adam"):
    """The ELBO's optimiser and the variant's auxiliary one (FactorVAE's discriminator), if any.

    The ELBO's is the named optimiser (``settings.OPTIMIZERS``); the auxiliary one trains the
    parameters the ELBO does not train.
    """
    aux = model.make_auxiliary_optimizer()
    aux_ids = {id(p) for g in aux.param_groups for p in g["params"]} if aux is not None else set()
    params = [p for p in model.parameters() if id(p) not in aux_ids]
    return OPTIMIZERS.get(optimizer)(params, learning_rate, device), aux


#: The autocast dtype of each resolved precision that is not fp32 (``settings.PRECISIONS``).
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16}


def _autocast(precision: str, device: torch.device):
    dtype = _AUTOCAST_DTYPES.get(precision)
    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Member:
    """One run of a pack: its spec, weights, optimisers, generator, window and checkpoint."""

    index: int  # position in train_runs' arguments
    spec: RunSpec
    checkpoint: Path | None
    model: VAE
    optimizer: torch.optim.Optimizer
    aux_optimizer: torch.optim.Optimizer | None
    generator: torch.Generator
    start_step: int = 0
    window: _Window | None = None
    resumed_from: Path | None = None  # the checkpoint file this run resumed from

    @classmethod
    def build(cls, index: int, spec: RunSpec, device: torch.device, checkpoint: Path | None) -> Member:
        """Build the run's model, optimisers and generator from its seed and its checkpoint.

        Initialised from the seed, then restored from the checkpoint.
        """
        torch.manual_seed(spec.seed)  # weight initialisation
        model = create_model(spec.model, **spec.model_config).to(device)
        optimizer, aux_optimizer = make_optimizers(
            model, spec.training.learning_rate, device, spec.training.optimizer
        )
        generator = torch.Generator(device=device).manual_seed(spec.seed)  # batches, noise, permutations
        member = cls(index, spec, checkpoint, model, optimizer, aux_optimizer, generator)
        member.restore(device)
        return member

    def restore(self, device: torch.device) -> None:
        """Restore a partial run from the newest checkpoint that verifies, else start from step 0.

        A checkpoint verifies against its own content hash: the run's checkpoint, else the previous
        one kept beside it; when none does, they are set aside. Each fallback is said in a warning;
        nothing trains on a damaged file.
        """
        if self.checkpoint is None or not self.checkpoint.exists():
            return  # no checkpoint (a previous one alone is a leftover, never resumed from)
        try:
            state, used, refused = read_checkpoint_or_previous(self.checkpoint, map_location=device)
        except CheckpointError as exc:
            for damaged in (self.checkpoint, previous_path(self.checkpoint)):
                if damaged.exists():
                    os.replace(damaged, damaged.with_name(f"{damaged.name}.damaged"))
            warnings.warn(
                f"no checkpoint of {self.spec.run_id} verifies ({exc}); they were set aside as *.damaged "
                "and the run restarts from step 0",
                stacklevel=2,
            )
            return
        if refused:
            warnings.warn(
                f"{'; '.join(refused)}; {self.spec.run_id} resumes from the previous checkpoint, "
                f"{used.name}, at step {state.get('step')}",
                stacklevel=2,
            )
        if state.get("run_spec") != self.spec.to_dict():
            raise CheckpointError(
                f"checkpoint {self.checkpoint} belongs to a different run spec; delete it to restart"
            )
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.aux_optimizer is not None:
            self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        try:
            self.generator.set_state(state["generator"].cpu())
        except RuntimeError:  # written on another device type (a CUDA generator's state is not a CPU one's)
            warnings.warn(
                f"{self.checkpoint} was written on another device type; its random stream cannot be "
                "restored here, so the run goes on from a stream reseeded from (seed, step): it finishes, "
                "but not with the numbers of an uninterrupted run",
                stacklevel=2,
            )
            self.generator.manual_seed((self.spec.seed << 32) + int(state["step"]))
        window = _Window(state["window_names"], state["window_values"].to(device), state["window_filled"])
        window.curve = state["curve"]
        self.start_step, self.window, self.resumed_from = state["step"], window, used

    def diverged(self, exc: Diverged) -> Diverged:
        """``exc``, with the resumed checkpoint set aside when it failed right after a resume.

        When ``exc`` came in the first log window after a resume, the checkpoint resumed from is
        suspect: it is set aside (``.suspect``) so that ``--retry-failed`` does not reuse it, and the
        reason says so.
        """
        if self.resumed_from is None or exc.step >= self.start_step + self.spec.training.log_every:
            return exc
        suspect = self.resumed_from.with_name(f"{self.resumed_from.name}.suspect")
        if self.resumed_from.exists():
            os.replace(self.resumed_from, suspect)
        earlier = previous_path(self.checkpoint)
        if not self.checkpoint.exists() and earlier.exists():  # the one before it becomes the run's
            os.replace(earlier, self.checkpoint)
        return Diverged(
            exc.step,
            f"{exc.reason}, {exc.step - self.start_step + 1} step(s) after resuming from "
            f"{self.resumed_from.name} at step {self.start_step}: that checkpoint is suspect and was set "
            f"aside as {suspect.name}, so --retry-failed resumes from an earlier checkpoint or from step 0",
        )

    def save(self, step: int) -> None:
        """Everything that determines the next step, in the layout ``restore`` reads."""
        if self.checkpoint is None:
            return
        w = self.window
        save_checkpoint(
            self.model,
            self.checkpoint,
            keep_previous=True,  # the last good one stays beside it, for a damaged newest
            run_spec=self.spec.to_dict(),
            step=step,
            optimizer=self.optimizer.state_dict(),
            aux_optimizer=self.aux_optimizer.state_dict() if self.aux_optimizer is not None else None,
            generator=self.generator.get_state(),
            window_names=w.names if w else [],
            window_values=w.values if w else torch.zeros(0),
            window_filled=w.filled if w else 0,
            curve=w.curve if w else {},
        )

    def log(self, scalars: dict[str, torch.Tensor], step: int, steps: int, device: torch.device) -> None:
        """Add this step's terms to the window; at its end read it back and check it (Diverged)."""
        if self.window is None:
            log_every = self.spec.training.log_every
            self.window = _Window(list(scalars), torch.zeros(log_every, len(scalars), device=device))
        window = self.window
        window.values[window.filled] = torch.stack([scalars[k].detach().float() for k in window.names])
        window.filled += 1
        if window.filled == window.values.shape[0] or step + 1 == steps:
            _close_window(window, step + 1)

    def result(self, steps: int, seconds: float, precision: str) -> TrainResult:
        """The trained run's result, with its throughput in images per second."""
        done = steps - self.start_step
        self.model.eval()
        curve = self.window.curve if self.window is not None else {}
        return TrainResult(
            model=self.model,
            curve=curve,
            final={k: v[-1] for k, v in curve.items() if k != "step"},
            train_seconds=seconds,
            images_per_second=(
                done * self.spec.training.batch_size * self.model.views / seconds if seconds > 0 else math.nan
            ),
            resumed_from_step=self.start_step,
            precision=precision,
        )


class Network(Protocol):
    """The protocol of a network over the members of one pack (an extension point).

    What the training loop needs of it; ``SingleNetwork`` and ``StackedNetwork`` are the two built in.

    A network is built as ``network_type(members, device)`` and owns the members' weights while it
    trains them; ``write_back(k)`` returns member k's weights and optimiser state to its own model
    and optimiser (before a checkpoint, a divergence or the end).
    """

    members: list[Member]

    def step(
        self,
        x: torch.Tensor,
        noise: torch.Tensor,
        step: int,
        precision: str,
        device: torch.device,
        changed: torch.Tensor | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """One optimisation step of every member; per member, the scalars it logs.

        On x (K, B, C, H, W) and noise (K, B, D); for pair variants x (K, B, 2, C, H, W), noise
        (K, B, 2, D) and the changed factors (K, B).
        """
        ...

    def write_back(self, k: int) -> None:
        """Copy member k's slice of the network's state into its own model and optimiser."""
        ...


class SingleNetwork:
    """A pack of one: the run's own module and optimisers, the auxiliary step included."""

    def __init__(self, members: list[Member], device: torch.device):
        (self.member,) = members
        self.members = members
        self.member.model.train()

    def step(
        self,
        x: torch.Tensor,
        noise: torch.Tensor,
        step: int,
        precision: str,
        device,
        changed: torch.Tensor | None = None,
    ) -> list[dict]:
        """One optimisation step of the single member; the logged scalars.

        On x (1, B, C, H, W) and noise (1, B, D); for pair variants (1, B, 2, ...) and the changed
        factors (1, B).
        """
        m = self.member
        changed_factor = None if changed is None else changed[0]
        with _autocast(precision, device):
            out: VAEOutput = m.model(x[0], step=step, noise=noise[0], changed_factor=changed_factor)
        m.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        m.optimizer.step()
        scalars = out.scalars()
        if m.aux_optimizer is not None:
            m.aux_optimizer.zero_grad(set_to_none=True)
            with _autocast(precision, device):
                aux_loss = m.model.auxiliary_loss(out, m.generator)
            aux_loss.backward()
            m.aux_optimizer.step()
            scalars["auxiliary_loss"] = aux_loss
        return [scalars]

    def write_back(self, k: int) -> None:
        """The member's module is the network itself: nothing to copy."""


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
        """``VAE.forward`` for every member at once, vmapped over the pack.

        One vmapped encode and decode, then each member's own ``assemble_loss`` on its slice.

        Args:
            x: (K, B, C, 64, 64) float images in [0, 1], one batch per member; for pair
                variants (K, B, 2, C, 64, 64), pooled by each member's ``pool_views``.
            noise: (K, B, D) reparameterisation noise from each member's generator ((K, B, 2, D)).
            step: the training step (annealed terms depend on it).
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
        with _autocast(precision, device):
            outputs = self.forward(x, noise, step, changed)
        self.optimizer.zero_grad(set_to_none=True)
        torch.stack([out.loss for out in outputs]).sum().backward()  # no shared weight: each its own gradient
        self.optimizer.step()
        return [out.scalars() for out in outputs]


def train_runs(
    specs: Sequence[RunSpec],
    images: TrainingImages,
    device: torch.device,
    checkpoints: Sequence[Path | None],
    *,
    observation_noise: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    pair_sampler: PairDraw | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[TrainResult | Diverged]:
    """Train K >= 1 compatible runs together; for each, its ``TrainResult`` or its ``Diverged``.

    Args:
        specs: the runs; more than one must share ``plan.pack_key`` (one that cannot be
            packed trains alone).
        images: the training images (``GroundTruthDataset.training_images``).
        device: where the pack trains.
        checkpoints: one path per run (None: do not checkpoint). A run resumes from its own;
            runs resumed at different steps train in consecutive packs, one per start step.
        observation_noise: the dataset's per-observation randomness, ``(batch, generator) -> batch``.
        pair_sampler: for pair variants, the second image of each pair and the changed factor,
            ``(first indices (B,), generator) -> (second indices (B,), changed factor (B,))``
            (``benchmarks.datasets.pairs.PairSampler``).
        on_progress: ``(index of the run in specs, steps done, total steps)``, every step.
        should_stop: polled every step; when it turns true every unfinished run is saved and
            ``Interrupted`` is raised.

    Returns:
        per run, its ``TrainResult`` or the ``Diverged`` that ended it. ``train_seconds`` is
        the wall time of the pack the run trained in, and ``images_per_second`` the run's own
        images over it, so a pack's aggregate throughput is the sum over its runs.
    """
    if len(specs) != len(checkpoints):
        raise ValueError(f"{len(specs)} specs but {len(checkpoints)} checkpoints")
    if len(specs) > 1:
        check_packable(specs)
    results: list[TrainResult | Diverged | None] = [None] * len(specs)
    members = []
    for i, (spec, checkpoint) in enumerate(zip(specs, checkpoints)):
        member = Member.build(i, spec, device, None if checkpoint is None else Path(checkpoint))
        steps = spec.training.steps
        if member.start_step >= steps:  # already finished: nothing left to do
            precision = resolve_precision(spec.training.precision, device)
            results[i] = member.result(steps, seconds=0.0, precision=precision)
        else:
            members.append(member)
    for start in sorted({m.start_step for m in members}):
        group = [m for m in members if m.start_step == start]
        network = SingleNetwork if len(group) == 1 else StackedNetwork
        _train_group(
            network,
            group,
            start,
            images,
            device,
            results,
            (observation_noise, pair_sampler),
            on_progress,
            should_stop,
        )
    return results  # type: ignore[return-value]


def train_run(
    spec: RunSpec,
    images: TrainingImages,
    device: torch.device,
    checkpoint: Path | None,
    *,
    observation_noise=None,
    pair_sampler: PairDraw | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """``train_runs`` for one run; raises its ``Diverged``."""
    (outcome,) = train_runs(
        [spec],
        images,
        device,
        [checkpoint],
        observation_noise=observation_noise,
        pair_sampler=pair_sampler,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    if isinstance(outcome, Diverged):
        raise outcome
    return outcome


def draw_inputs(
    members: Sequence[Member],
    images: TrainingImages,
    batch_size: int,
    device: torch.device,
    observation_noise: Callable | None = None,
    pair_sampler: PairDraw | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One step's random inputs: batches, reparameterisation noise and, for pairs, changed factors.

    The batches are (K, B, C, H, W), the noise (K, B, D), and the changed factors (K, B) (else None).

    A pair variant's batch is (K, B, 2, C, H, W) and its noise (K, B, 2, D): B pairs, the
    first image of each drawn as a single one is, the second by ``pair_sampler``. Each
    member draws from its own generator, in this order: its batch indices, its pairs, its
    observations' noise, its eps -- the stream a checkpoint's generator state resumes.
    """
    indices = [
        torch.randint(images.num_images, (batch_size,), generator=m.generator, device=device) for m in members
    ]
    views, changed = members[0].model.views, None
    if views > 1:
        if pair_sampler is None:
            raise ValueError(f"{members[0].spec.model} trains on pairs, but no pair sampler was given")
        drawn = [pair_sampler(first, m.generator) for first, m in zip(indices, members)]
        # (B,) first and second indices -> (2B,) with each pair adjacent, as x.flatten(0, 1) orders them
        indices = [
            torch.stack([first, second], dim=1).flatten() for first, (second, _) in zip(indices, drawn)
        ]
        changed = torch.stack([factor for _, factor in drawn])  # (K, B)
    x = images.batch(torch.cat(indices) if len(indices) > 1 else indices[0])  # (K * B * V, C, H, W)
    x = x.view(len(members), batch_size * views, *x.shape[1:])
    if observation_noise is not None:  # every image its own draw, both images of a pair included
        x = torch.stack([observation_noise(x[k], m.generator) for k, m in enumerate(members)])
    if views > 1:
        x = x.unflatten(1, (batch_size, views))  # (K, B, V, C, H, W)
    pair_shape = (views,) if views > 1 else ()
    noise = torch.stack(
        [
            torch.randn(
                batch_size, *pair_shape, m.model.config.latent_dim, generator=m.generator, device=device
            )
            for m in members
        ]
    )
    return x, noise, changed


def _train_group(
    network_type: type[Network],
    members,
    start_step,
    images,
    device,
    results,
    randomness,
    on_progress,
    should_stop,
) -> None:
    """The loop, for members that all start at ``start_step``."""
    t = members[0].spec.training
    steps, batch_size = t.steps, t.batch_size
    precision = resolve_precision(t.precision, device)
    network = network_type(members, device)
    started = time.perf_counter()
    for step in range(start_step, steps):
        if should_stop():
            for k, member in enumerate(network.members):
                network.write_back(k)
                member.save(step)
            raise Interrupted(step, [m.checkpoint for m in network.members])
        x, noise, changed = draw_inputs(network.members, images, batch_size, device, *randomness)
        logged = network.step(x, noise, step, precision, device, changed)

        diverged = []
        for member, scalars in zip(network.members, logged):
            try:
                member.log(scalars, step, steps, device)
            except Diverged as exc:
                results[member.index] = member.diverged(exc)
                diverged.append(member)
                continue
            if on_progress is not None:
                on_progress(member.index, step + 1, steps)
        for k, member in enumerate(network.members):
            if member not in diverged and (step + 1) % t.checkpoint_every == 0 and step + 1 < steps:
                network.write_back(k)
                member.save(step + 1)
        if diverged:  # the others go on in a smaller pack, from their own (written back) states
            survivors = [m for m in network.members if m not in diverged]
            for k, member in enumerate(network.members):
                if member in survivors:
                    network.write_back(k)
            if not survivors:
                return
            network = (SingleNetwork if len(survivors) == 1 else network_type)(survivors, device)

    seconds = time.perf_counter() - started
    for k, member in enumerate(network.members):
        network.write_back(k)
        member.save(steps)  # the finished model, for `vaebench eval` and a crash during evaluation
        if member.checkpoint is not None:  # finished: the one before it is no longer needed
            previous_path(member.checkpoint).unlink(missing_ok=True)
        results[member.index] = member.result(steps, seconds, precision)


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
