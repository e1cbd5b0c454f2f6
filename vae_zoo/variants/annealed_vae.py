"""AnnealedVAE (Burgess et al. 2018): the KL pushed towards a capacity that grows with the step."""

from dataclasses import dataclass

from vae_zoo.core import VAE, ConfigError, Terms, non_negative
from vae_zoo.registry import register_model


def capacity(step: int, c_max: float, ramp_steps: int) -> float:
    """C(step): rises linearly from 0 to c_max over ramp_steps, then stays (Burgess et al. 2018, Sec. 4)."""
    return min(c_max, c_max * step / ramp_steps)


@register_model("annealed_vae")
class AnnealedVAE(VAE):
    """AnnealedVAE (Burgess et al. 2018, eq. 8): reconstruction + gamma * |KL - C(step)|."""

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        c_max: float = 25.0  # nats
        gamma: float = 1000.0
        ramp_steps: int = 100_000

        def __post_init__(self):
            super().__post_init__()
            non_negative(self, "c_max", "gamma")
            if (
                isinstance(self.ramp_steps, bool)
                or not isinstance(self.ramp_steps, int)
                or self.ramp_steps < 1
            ):
                raise ConfigError(
                    f"AnnealedVAE.Config.ramp_steps must be a positive integer; got {self.ramp_steps!r}"
                )

    study_grid = tuple({"c_max": c} for c in (5.0, 10.0, 25.0, 50.0, 75.0, 100.0))
    strength_field = "c_max"

    def regularizer(self, terms: Terms):
        """gamma * |KL - C(step)|; logs the KL and the capacity."""
        kl = terms.kl.mean()
        c = capacity(terms.step, self.config.c_max, self.config.ramp_steps)
        return self.config.gamma * (kl - c).abs(), {"kl": kl, "capacity": kl.new_tensor(c)}
