"""`vaebench udr`: groups of seeds scored from the encodings in the artifacts, written to the records."""

import math

import numpy as np
import pytest
from test_runner import invoke

import metrics
from benchmarks.runner import udr as runner_udr
from benchmarks.runner.records import RunRecord, artifact_path, checkpoint_path, read_record, record_path
from benchmarks.runner.records import write_record as write
from vaebench.errors import UserError

SUITE = "udrsynth"


def spec(model: str, seed: int, beta: float | None = None) -> dict:
    config = {"architecture": "burgess", "latent_dim": 4}
    if beta is not None:
        config["beta"] = beta
    return {"suite": SUITE, "dataset": "toy_squares", "model": model, "model_config": config, "seed": seed}


def encodings(seed: int, disentangled: bool, n: int = 300):
    """(mean, logvar) of a made-up model on the shared points: permuted, flipped factors, or noise."""
    points = np.random.RandomState(99).uniform(-1, 1, size=(n, 3))  # the shared points' factors
    rs = np.random.RandomState(seed)
    if disentangled:
        codes = np.concatenate([points, 0.01 * rs.normal(size=(n, 1))], axis=1)[:, rs.permutation(4)]
        codes = codes * rs.choice([-1.0, 1.0], size=4)
        logvar = np.where(np.abs(codes).std(axis=0) > 0.1, np.log(0.01), 0.0) * np.ones((n, 1))
    else:
        codes, logvar = rs.normal(size=(n, 4)), np.full((n, 4), np.log(0.01))
    return codes.astype(np.float32), logvar.astype(np.float32)


def add_run(out, run_id, spec_dict, arrays=None, status="ok", metrics_=None):
    record = RunRecord(
        run_id=run_id, suite=SUITE, status=status, spec=spec_dict, metrics=dict(metrics_ or {})
    )
    write(record_path(out, SUITE, run_id), record)
    if arrays is not None:
        path = artifact_path(out, SUITE, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, traversals=np.zeros((4, 2, 1, 8, 8), np.uint8), **arrays)


@pytest.fixture
def out(tmp_path):
    """beta_vae beta=4: three seeds, disentangled; vae: two seeds, one without encodings; one failed run."""
    for seed in range(3):
        mean, logvar = encodings(seed, disentangled=True)
        add_run(
            tmp_path,
            f"b{seed}",
            spec("beta_vae", seed, 4.0),
            {"udr_mean": mean, "udr_logvar": logvar},
            metrics_={"mig": 0.5},
        )
    add_run(tmp_path, "b3", spec("beta_vae", 3, 4.0), status="failed")
    mean, logvar = encodings(10, disentangled=False)
    add_run(tmp_path, "v0", spec("vae", 0), {"udr_mean": mean, "udr_logvar": logvar})
    add_run(tmp_path, "v1", spec("vae", 1), {})  # an artifact from before the UDR cache, no checkpoint
    return tmp_path


def test_udr_command_writes_the_groups_scores_into_the_records(out):
    code, output = invoke("udr", "--suite", SUITE, "--out", out)
    assert code == 0, output
    assert "v1: no cached UDR encodings" in output and "v0: fewer than 2 encoded runs" in output
    group = [encodings(seed, disentangled=True) for seed in range(3)]
    expected = metrics.udr([m for m, _ in group], [v for _, v in group]).model_scores
    for seed in range(3):
        record = read_record(record_path(out, SUITE, f"b{seed}"))
        assert record.metrics["udr_lasso"] == pytest.approx(expected[seed], abs=1e-12)
        assert record.metrics["mig"] == 0.5  # the other metrics are kept
        assert "scored with the group b0, b1, b2" in record.metric_warnings["udr_lasso"][0]
    assert 0.8 < min(expected)  # permuted, flipped copies of the same factors agree
    for run_id in ("b3", "v0", "v1"):
        assert "udr_lasso" not in read_record(record_path(out, SUITE, run_id)).metrics
    code, output = invoke("udr", "--suite", SUITE, "--out", out, "--correlation", "spearman")
    assert code == 0, output
    record = read_record(record_path(out, SUITE, "b0"))
    assert set(record.metrics) >= {"udr_lasso", "udr_spearman"} and record.metrics["udr_spearman"] > 0.8


def test_udr_command_rejects_bad_input(out):
    code, output = invoke("udr", "--suite", SUITE, "--out", out, "--correlation", "pearson")
    assert code == 2 and "--correlation must be one of lasso, spearman; got 'pearson'" in output
    code, output = invoke("udr", "--suite", "nosuch", "--out", out)
    assert code == 2 and "no records for suite 'nosuch'" in output and SUITE in output
    with pytest.raises(UserError, match="correlation must be one of lasso, spearman"):
        runner_udr.score_suite_udr(out, SUITE, "kendall")


def test_udr_with_no_scorable_group_exits_2(tmp_path):
    add_run(tmp_path, "v0", spec("vae", 0), {})
    code, output = invoke("udr", "--suite", SUITE, "--out", tmp_path)
    assert code == 2 and "nothing scored" in output


def test_a_run_without_cached_encodings_is_encoded_from_its_checkpoint(out, monkeypatch):
    path = checkpoint_path(out, SUITE, "v1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # exists; the encoding itself is stubbed
    calls = []

    def encode(out_dir, record, device):
        calls.append(record.run_id)
        return encodings(11, disentangled=False)

    monkeypatch.setattr(runner_udr, "_encode_from_checkpoint", encode)
    report = runner_udr.score_suite_udr(out, SUITE, "lasso")
    assert calls == ["v1"]
    assert {"v0", "v1"} in [set(g) for g in report.groups] and "v1" not in report.missing
    assert all(math.isfinite(s) for g in report.groups for s in g.values())


TOY = """
name = "udrtoy"
description = "UDR end to end"
datasets = ["toy_squares"]
seeds = [0, 1]

[training]
steps = 6
batch_size = 8
learning_rate = 1e-3
architecture = "burgess"
latent_dim = 3
log_every = 3
checkpoint_every = 6

[models]
vae = [{}]

[metrics]
settings = "fast"
names = ["mig"]
"""


@pytest.mark.slow  # trains two toy models (about 25 s on a busy 2-core machine)
def test_end_to_end_run_caches_encodings_and_udr_scores_them(tmp_path):
    suite = tmp_path / "udrtoy.toml"
    suite.write_text(TOY)
    out = tmp_path / "out"
    code, output = invoke("run", "--suite", suite, "--out", out)
    assert code == 0, output
    paths = sorted((out / "artifacts" / "udrtoy").glob("*.npz"))
    assert len(paths) == 2
    for path in paths:
        with np.load(path) as arrays:
            assert arrays["udr_mean"].shape == arrays["udr_logvar"].shape == (runner_udr.UDR_POINTS, 3)
    # Drop one run's cache: `vaebench udr` encodes it again from the checkpoint, to the same numbers.
    with np.load(paths[0]) as arrays:
        kept = {k: arrays[k] for k in arrays.files}
    np.savez(paths[0], **{k: v for k, v in kept.items() if not k.startswith("udr_")})
    code, output = invoke("udr", "--suite", "udrtoy", "--out", out)
    assert code == 0, output
    with np.load(paths[0]) as arrays:
        np.testing.assert_array_equal(arrays["udr_mean"], kept["udr_mean"])
        np.testing.assert_array_equal(arrays["traversals"], kept["traversals"])
    scores = [read_record(p).metrics["udr_lasso"] for p in sorted((out / "runs" / "udrtoy").glob("*.json"))]
    assert len(scores) == 2 and all(s is None or 0.0 <= s <= 1.0 for s in scores)
