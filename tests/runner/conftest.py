import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import toy  # noqa: E402,F401  (registers the toy_squares dataset)

TOY_SUITE = """
name = "toy"
description = "runner tests"
datasets = ["toy_squares"]
seeds = [0]

[training]
steps = {steps}
batch_size = 8
learning_rate = 1e-3
architecture = "burgess"
latent_dim = 4
log_every = 5
checkpoint_every = 10

[models]
vae = [{{}}]
beta_vae = [{{ beta = 2.0 }}]

[metrics]
settings = "fast"
names = ["mig", "sap", "unsupervised"]
"""


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "vaebench-data"
    monkeypatch.setenv("VAEBENCH_DATA", str(root))
    return root


@pytest.fixture
def toy_suite(tmp_path):
    def make(steps=30, extra=""):
        path = tmp_path / f"toy_{steps}.toml"
        path.write_text(TOY_SUITE.format(steps=steps) + extra)
        return path

    return make
