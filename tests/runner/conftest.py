import pytest

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


# -- a SLURM cluster (tests/runner/test_scaleout.py) ------------------------------------
def _skip_or_fail(reason: str) -> None:
    """Skip with the reason; under CI=true a SLURM test that cannot run is a failure, not a skip."""
    import os

    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the SLURM tests must run, not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A SLURM cluster to submit to: skipped, saying why, only where ``sbatch`` is missing.

    Where sbatch is on PATH but the cluster does not answer, or submitit is missing, the test fails.
    """
    import shutil
    import subprocess

    if shutil.which("sbatch") is None:
        _skip_or_fail("SLURM's sbatch is not on PATH (a local cluster: .ci/local-slurm start)")
    try:
        import submitit  # noqa: F401
    except ImportError:
        pytest.fail('sbatch is on PATH but submitit is not installed: pip install "vaebench[slurm]"')
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"sbatch is on PATH but sinfo does not answer: {exc} (.ci/local-slurm start)")
    if probe.returncode != 0 or not probe.stdout.strip():
        pytest.fail(
            f"sbatch is on PATH but the cluster does not answer: sinfo said {probe.stderr.strip()!r} "
            "(.ci/local-slurm start)"
        )
