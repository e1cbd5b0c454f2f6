"""The ELBO core: one VAE whose variants differ only in their regularizer.

``VAE.assemble_loss`` is the only place a loss is assembled (disentanglement_lib's
shape, Locatello et al. 2019, Section 3):

    loss = E_batch[-log p(x|z)] + regularizer(terms)

with z ~ q(z|x) = N(mean, diag(exp(logvar))) drawn by reparameterisation
(Kingma & Welling 2014, eq. 10). The plain VAE's regularizer is the analytic
KL(q(z|x) || N(0, I)) averaged over the batch. A variant subclasses ``VAE``,
declares a frozen keyword-only ``Config`` nested in the class, and overrides
``regularizer``. One optional hook, ``auxiliary_loss`` with
``make_auxiliary_optimizer``, serves a variant that trains a second network
against the ELBO's (FactorVAE's discriminator).

Weak supervision (Locatello et al. 2020): a variant with ``views = 2`` trains on
pairs of observations that differ in a few factors. The core encodes both, lets
the variant replace the dimensions the pair shares by one aggregate posterior
(``shared_dimensions`` and ``average_posteriors``, applied by ``pool_views``)
before sampling, and assembles the loss over the 2B images in the same
``assemble_loss``: the per-pair average of the two images' ELBOs (Locatello et al.
2020, eq. 4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vae_zoo.architectures import ARCHITECTURES
from vae_zoo.initialisers import INITIALISERS
from vae_zoo.likelihoods import LIKELIHOODS
from vae_zoo.losses import gaussian_kl
from vaebench.errors import UserError

__all__ = ["VAE", "Terms", "VAEOutput", "ConfigError", "non_negative", "one_of"]


class ConfigError(UserError, ValueError):
    """An invalid model configuration; the message names the field, the value and what is accepted."""


@dataclass(frozen=True)
class Terms:
    """What a regularizer sees. Shapes: B batch, D latent dims."""

    kl: torch.Tensor  # (B,) analytic KL(q(z|x) || N(0, I)), summed over latent dims
    mean: torch.Tensor  # (B, D) posterior means
    logvar: torch.Tensor  # (B, D) posterior log-variances
    z: torch.Tensor  # (B, D) reparameterised samples
    step: int  # optimisation step, for schedules (AnnealedVAE's capacity)


@dataclass
class VAEOutput:
    """One record per forward pass: the loss, its logged parts, and what metrics need."""

    loss: torch.Tensor  # () reconstruction + regularizer
    reconstruction: torch.Tensor  # () mean over the batch of -log p(x|z), summed over pixels
    kl: torch.Tensor  # () mean over the batch of the analytic KL
    regularizer: torch.Tensor  # () the variant's term
    parts: dict[str, torch.Tensor]  # the regularizer's logged pieces, each ()
    mean: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    z: torch.Tensor  # (B, D)
    logits: torch.Tensor  # (B, C, H, W) decoder output

    def scalars(self) -> dict[str, torch.Tensor]:
        """The loss and its parts as 0-d tensors (still on the device; read back when logging)."""
        out = {"loss": self.loss, "reconstruction": self.reconstruction, "kl": self.kl}
        out["regularizer"] = self.regularizer
        out.update({k: v for k, v in self.parts.items() if k not in out})
        return out


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def non_negative(config: Any, *names: str) -> None:
    """Refuse negative or non-finite float hyperparameters, naming the field."""
    for name in names:
        value = getattr(config, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not value >= 0
            or value == float("inf")
        ):
            raise ConfigError(
                f"{type(config).__qualname__}.{name} must be a finite number >= 0; got {value!r}"
            )


def one_of(config: Any, name: str, choices: Collection[str]) -> None:
    """Refuse a string hyperparameter that is not one of ``choices`` (a registry's keys), naming both."""
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(
            f"{type(config).__qualname__}.{name} must be one of {', '.join(choices)}; got {value!r}"
        )


class VAE(nn.Module):
    """Variational autoencoder with a diagonal Gaussian posterior and an N(0, I) prior."""

    @dataclass(frozen=True, kw_only=True)
    class Config:
        latent_dim: int = 10
        architecture: str = "locatello"
        in_channels: int = 1
        likelihood: str = "bernoulli"
        #: Weight initialisation (vae_zoo.initialisers): "torch" keeps PyTorch's layer
        #: defaults; "tf" is disentanglement_lib's (Glorot-uniform kernels, zero biases).
        init: str = "torch"
        #: Number of training images. Unused by the ELBO itself; estimators of the
        #: aggregate posterior (beta-TCVAE) need it. The runner fills it in.
        dataset_size: int | None = None

        def __post_init__(self) -> None:
            _positive_int("latent_dim", self.latent_dim)
            if self.in_channels not in (1, 3):
                raise ConfigError(f"in_channels must be 1 or 3; got {self.in_channels!r}")
            if self.architecture not in ARCHITECTURES:
                raise ConfigError(
                    f"architecture {self.architecture!r} is unknown; "
                    f"known: {', '.join(ARCHITECTURES.names())}"
                )
            if self.likelihood not in LIKELIHOODS:
                raise ConfigError(
                    f"likelihood {self.likelihood!r} is unknown; known: {', '.join(LIKELIHOODS.names())}"
                )
            if self.init not in INITIALISERS:
                raise ConfigError(f"init {self.init!r} is unknown; known: {', '.join(INITIALISERS.names())}")
            if self.dataset_size is not None:
                _positive_int("dataset_size", self.dataset_size)

    #: The study's hyperparameter grid (Locatello et al. 2019, Table 2): a tuple of
    #: config overrides, one per grid point.
    study_grid: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    #: The config field that sets the regularisation strength (x-axis of sweeps).
    strength_field: ClassVar[str | None] = None
    #: Observations per training example: 1, or 2 for a weakly-supervised variant trained
    #: on pairs (Locatello et al. 2020); the runner then draws pairs for it.
    views: ClassVar[int] = 1
    #: Whether the variant is told which factor changed between a pair's observations
    #: (the "labels" variants); ``forward`` then needs ``changed_factor``.
    needs_changed_factor: ClassVar[bool] = False

    def __init__(self, config: VAE.Config | None = None, **overrides: Any):
        super().__init__()
        if config is None:
            config = self.make_config(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, self.Config):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.Config.__qualname__}; got {type(config).__qualname__}"
            )
        self.config = config
        self.encoder, self.decoder = ARCHITECTURES.get(config.architecture)(
            config.in_channels, config.latent_dim
        )
        self.initialise(self.encoder)
        self.initialise(self.decoder)
        self.nll = LIKELIHOODS.get(config.likelihood)

    def initialise(self, module: nn.Module) -> None:
        """Re-initialise ``module``'s layers as ``config.init`` says.

        A variant calls it on networks of its own, e.g. FactorVAE's discriminator.
        """
        INITIALISERS.get(self.config.init)(module)

    @classmethod
    def make_config(cls, **values: Any) -> VAE.Config:
        """Build this variant's Config, refusing unknown fields by name."""
        known = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no config field(s) {', '.join(unknown)}; "
                f"valid fields: {', '.join(sorted(known))}"
            )
        return cls.Config(**values)

    # -- the ELBO --------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, 64, 64) in [0, 1] -> posterior mean and logvar, each (B, D)."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> logits (B, C, 64, 64)."""
        return self.decoder(z)

    @staticmethod
    def reparameterise(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """z = mean + sigma * eps, each (..., D) (Kingma & Welling 2014, eq. 10)."""
        return mean + torch.exp(0.5 * logvar) * noise

    def forward(
        self,
        x: torch.Tensor,
        *,
        step: int = 0,
        noise: torch.Tensor | None = None,
        changed_factor: torch.Tensor | None = None,
    ) -> VAEOutput:
        """Encode, reparameterise, decode, and assemble the loss (``assemble_loss``).

        Args:
            x: images (B, C, 64, 64), float in [0, 1]; for a variant with ``views`` V > 1,
                examples of V observations each, (B, V, C, 64, 64).
            step: optimisation step, passed to the regularizer for schedules.
            noise: eps ~ N(0, I) of shape (B, D), or (B, V, D) for V views. The trainer
                passes it from the run's own generator so that runs are reproducible and
                resumable; drawn from torch's global generator when omitted.
            changed_factor: (B,) int, the index of the factor that changed within each
                pair (-1: none); needed by variants with ``needs_changed_factor``.
        """
        if self.views == 1:
            mean, logvar = self.encode(x)  # (B, D) each
        else:
            self.check_views(x, changed_factor)
            mean, logvar = self.encode(x.flatten(0, 1))  # (B*V, D): every view through one encoder
            mean, logvar = self.pool_views(
                mean.unflatten(0, x.shape[:2]), logvar.unflatten(0, x.shape[:2]), changed_factor
            )
            x = x.flatten(0, 1)  # (B*V, C, H, W): the loss averages over every image
        if noise is None:
            noise = torch.randn_like(mean)
        z = self.reparameterise(mean, logvar, noise.reshape(mean.shape))  # (B*V, D)
        return self.assemble_loss(x, mean, logvar, z, self.decode(z), step=step)

    # -- weak supervision: the two hooks of a pair variant -------------------------
    def check_views(self, x: torch.Tensor, changed_factor: torch.Tensor | None) -> None:
        """Refuse input that is not (B, views, C, H, W), or lacks a needed changed factor."""
        if x.ndim != 5 or x.shape[1] != self.views:
            raise ValueError(
                f"{type(self).__name__} trains on examples of {self.views} observations, "
                f"(B, {self.views}, C, H, W); got a tensor of shape {tuple(x.shape)}"
            )
        if self.needs_changed_factor and changed_factor is None:
            raise ValueError(
                f"{type(self).__name__} needs the index of the changed factor of each pair "
                "(changed_factor); the pair sampler gave none"
            )

    def shared_dimensions(
        self, mean: torch.Tensor, logvar: torch.Tensor, changed_factor: torch.Tensor | None
    ) -> torch.Tensor:
        """Which latent dimensions the views of an example share: (B, V, D) -> (B, D) bool.

        Default: none (each view keeps its own posterior).
        """
        return torch.zeros(mean.shape[0], mean.shape[2], dtype=torch.bool, device=mean.device)

    def average_posteriors(
        self, mean: torch.Tensor, logvar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The one posterior the views share on shared dimensions: (B, V, D) -> mean, logvar (B, D).

        Default: the first view's (unused, since by default no dimension is shared).
        """
        return mean[:, 0], logvar[:, 0]

    def pool_views(
        self, mean: torch.Tensor, logvar: torch.Tensor, changed_factor: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace the shared dimensions of every view by the aggregate posterior.

        (B, V, D) -> (B*V, D) each, in the order of ``x.flatten(0, 1)``. Locatello et al.
        2020, eq. 4: q~(z_j|x_v) = q(z_j|x_v) where j is not shared, the aggregate
        a(q(z_j|x_1), ..., q(z_j|x_V)) where it is; the same mask for every view.
        """
        shared = self.shared_dimensions(mean, logvar, changed_factor).unsqueeze(1)  # (B, 1, D)
        shared_mean, shared_logvar = self.average_posteriors(mean, logvar)  # (B, D) each
        mean = torch.where(shared, shared_mean.unsqueeze(1), mean)
        logvar = torch.where(shared, shared_logvar.unsqueeze(1), logvar)
        return mean.flatten(0, 1), logvar.flatten(0, 1)

    def assemble_loss(
        self,
        x: torch.Tensor,
        mean: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor,
        logits: torch.Tensor,
        *,
        step: int = 0,
    ) -> VAEOutput:
        """The one place the loss is assembled: E_batch[-log p(x|z)] + regularizer(terms).

        ``forward`` calls it after its own encode/decode; the packed trainer calls it
        per run on that run's slice of a batched encode/decode.

        Args:
            x: (B, C, 64, 64) images in [0, 1].
            mean: (B, D) posterior means.
            logvar: (B, D) posterior log-variances.
            z: (B, D) the reparameterised samples.
            logits: (B, C, 64, 64) the decoder's output.
            step: the training step (for annealed terms).
        """
        reconstruction = self.nll(logits, x).mean()
        kl = gaussian_kl(mean, logvar)  # (B,)
        regularizer, parts = self.regularizer(Terms(kl=kl, mean=mean, logvar=logvar, z=z, step=step))
        return VAEOutput(
            loss=reconstruction + regularizer,
            reconstruction=reconstruction,
            kl=kl.mean(),
            regularizer=regularizer,
            parts=parts,
            mean=mean,
            logvar=logvar,
            z=z,
            logits=logits,
        )

    def regularizer(self, terms: Terms) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The variant's term of the loss and its logged pieces. VAE: mean analytic KL."""
        kl = terms.kl.mean()
        return kl, {"kl": kl}

    # -- the one hook for a second optimisation step (FactorVAE) ----------------
    def make_auxiliary_optimizer(self) -> torch.optim.Optimizer | None:
        """An optimiser for parameters trained by ``auxiliary_loss`` rather than the ELBO.

        Those parameters are excluded from the ELBO's optimiser. Default: none.
        """
        return None

    def auxiliary_loss(self, output: VAEOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        """Loss of the auxiliary network, computed after the ELBO step from ``output``."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary network")

    # -- conveniences ----------------------------------------------------------
    @torch.no_grad()
    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean, the representation scored in Locatello et al. 2019: (B, D)."""
        return self.encode(x)[0]

    def extra_repr(self) -> str:
        """The config, in the module's printed form."""
        return f"config={self.config}"
