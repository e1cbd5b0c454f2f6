"""A test variant for the SLURM preemption tests.

In a module of its own so that a CLI process and a SLURM task can import it (tests/runner is on
their PYTHONPATH).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from vae_zoo import VAE, register_model

GATE_STEP = 25  # past the checkpoints of steps 10 and 20


@register_model("scaleout_gated")
class ScaleoutGated(VAE):
    """Test variant: the VAE, whose step 25 waits while ``$VAEBENCH_TEST_GATE`` names a missing file.

    It first creates that path + ".waiting", so a test can preempt a run that is surely mid-training
    (past its checkpoints, far from its end), without racing it, then create the gate to let the
    requeued run through. Without the variable (a local reference run) it is the VAE, step for step.
    """

    @dataclass(frozen=True, kw_only=True)
    class Config(VAE.Config):
        pass

    def regularizer(self, terms):
        gate = os.environ.get("VAEBENCH_TEST_GATE")
        if gate and self.training and int(terms.step) == GATE_STEP and not os.path.exists(gate):
            Path(gate + ".waiting").touch()
            while not os.path.exists(gate):  # a barrier on the test's file, not a timed wait
                time.sleep(0.05)
        return super().regularizer(terms)
