"""The training loop's settings (``RunTraining``) and the names they choose from.

``RunTraining`` is the one training-settings type: a suite's ``[training]``
loop fields, a model's own ``training`` overrides and the command line's
``--steps`` all build one, and it checks itself, so each passes the same
checks. Its optimiser is a name in ``OPTIMIZERS`` (a registry of builders; a
third party adds one through the entry-point group ``vaebench.optimizers``),
its precision a name ``resolve_precision`` knows (``PRECISIONS``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from vaebench.registry import Registry

__all__ = ["OPTIMIZERS", "PRECISIONS", "RunTraining", "register_optimizer", "resolve_precision"]

#: ``builder(parameters, learning_rate, device) -> torch.optim.Optimizer``, by name.
OptimizerBuilder = Callable[[Iterable[torch.nn.Parameter], float, torch.device], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry(
    "optimizer", "vaebench.optimizers", builtin_modules=("benchmarks.runner.settings",)
)
register_optimizer = OPTIMIZERS.register


@register_optimizer("adam")
def adam(params, learning_rate: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam with default betas (the study's optimiser); fused on CUDA, foreach on the CPU."""
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.Adam(params, lr=learning_rate, **fast)


#: What ``precision`` may say: "auto" (resolved per device by ``resolve_precision``), or a precision.
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is the fastest path measured not to change results on that device (results/perf).

    bf16 autocast on CUDA; fp32 on the CPU (where bf16 needs AMX/AVX512-BF16 to pay).
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


@dataclass(frozen=True)
class RunTraining:
    """The training loop's settings for one run; a ValueError names the first bad field.

    Its fields are hashed into the run id (``RunSpec.to_dict``): a new field needs a default
    that leaves ``to_dict`` of existing specs unchanged.
    """

    steps: int
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-4
    precision: str = "auto"
    log_every: int = 100
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if not _positive_int(value):
                raise ValueError(f"training.{name} must be a positive integer; got {value!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < math.inf):
            raise ValueError(f"training.learning_rate must be a finite number > 0; got {lr!r}")
        if self.optimizer not in OPTIMIZERS.names():
            raise ValueError(
                f"training.optimizer must be one of {', '.join(OPTIMIZERS.names())}; got {self.optimizer!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"training.precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )

    @classmethod
    def fields(cls) -> list[str]:
        """The names of the settings."""
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict."""
        return dataclasses.asdict(self)
