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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vae_zoo.architectures import ARCHITECTURES
from vae_zoo.initialisers import INITIALISERS
from vae_zoo.likelihoods import LIKELIHOODS
from vae_zoo.losses import gaussian_kl

__all__ = ["VAE", "Terms", "VAEOutput", "ConfigError", "non_negative"]


class ConfigError(ValueError):
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
        """Re-initialise ``module``'s layers as ``config.init`` says (a variant calls it on
        networks of its own, e.g. FactorVAE's discriminator)."""
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

    def forward(self, x: torch.Tensor, *, step: int = 0, noise: torch.Tensor | None = None) -> VAEOutput:
        """Encode, reparameterise, decode, and assemble the loss (``assemble_loss``).

        Args:
            x: images (B, C, 64, 64), float in [0, 1].
            step: optimisation step, passed to the regularizer for schedules.
            noise: eps ~ N(0, I) of shape (B, D). The trainer passes it from the
                run's own generator so that runs are reproducible and resumable;
                drawn from torch's global generator when omitted.
        """
        mean, logvar = self.encode(x)
        if noise is None:
            noise = torch.randn_like(mean)
        z = self.reparameterise(mean, logvar, noise)  # (B, D)
        return self.assemble_loss(x, mean, logvar, z, self.decode(z), step=step)

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
            x: (B, C, 64, 64) images in [0, 1]; mean, logvar, z: (B, D); logits: (B, C, 64, 64).
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
        return f"config={self.config}"
