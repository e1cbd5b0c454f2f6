"""A damaged checkpoint is never trained on.

The previous one is used, or the run restarts; a run that fails right after resuming sets the
checkpoint aside so that a retry does not reuse it.
"""

from __future__ import annotations

import struct
import zipfile

import pytest
import torch

from benchmarks.datasets import TrainingImages
from benchmarks.runner.spec import RunSpec
from benchmarks.runner.train import Diverged, Interrupted, train_runs
from vae_zoo.checkpoint import previous_path, read_checkpoint, save_checkpoint

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    out = torch.zeros(32, 1, 64, 64, dtype=torch.uint8)
    for i in range(32):
        side = int(torch.randint(6, 30, (), generator=g))
        top, left = torch.randint(0, 64 - side, (2,), generator=g).tolist()
        out[i, 0, top : top + side, left : left + side] = 255
    return TrainingImages(out)


def spec(steps=12, checkpoint_every=4, log_every=4):
    return RunSpec.from_dict(
        {
            "suite": "recovery",
            "dataset": "toy",
            "model": "beta_vae",
            "model_config": {
                "architecture": "burgess",
                "latent_dim": 4,
                "likelihood": "bernoulli",
                "beta": 4.0,
            },
            "seed": 0,
            "training": {
                "steps": steps,
                "batch_size": 8,
                "optimizer": "adam",
                "learning_rate": 1e-3,
                "precision": "fp32",
                "log_every": log_every,
                "checkpoint_every": checkpoint_every,
            },
            "metrics": {},
        }
    )


def stop_at(step):
    state = {"n": 0}

    def should_stop():
        state["n"] += 1
        return state["n"] > step

    return should_stop


def flat(model):
    return torch.cat([t.detach().flatten() for t in model.state_dict().values()])


def zero_weights_in_place(path):
    """Same size, same structure: 1,024 float32 weights overwritten inside the file."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_length + extra_length)
        f.write(struct.pack("<1024f", *([0.0] * 1024)))


@pytest.fixture(scope="module")
def uninterrupted(images, tmp_path_factory):
    (result,) = train_runs([spec()], images, CPU, [tmp_path_factory.mktemp("ref") / "run.pt"])
    return result


def interrupted_at_10(images, path):
    with pytest.raises(Interrupted):
        train_runs([spec()], images, CPU, [path], should_stop=stop_at(10))
    assert read_checkpoint(path)["step"] == 10 and read_checkpoint(previous_path(path))["step"] == 8


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(images, tmp_path, uninterrupted):
    path = tmp_path / "run.pt"
    interrupted_at_10(images, path)
    zero_weights_in_place(path)
    with pytest.warns(
        UserWarning, match=r"fails its content hash.*resumes from the previous checkpoint.*step 8"
    ):
        (result,) = train_runs([spec()], images, CPU, [path])
    assert result.resumed_from_step == 8
    assert torch.equal(flat(result.model), flat(uninterrupted.model)) and result.curve == uninterrupted.curve


def test_when_no_checkpoint_verifies_the_run_restarts_from_step_0(images, tmp_path, uninterrupted):
    path = tmp_path / "run.pt"
    interrupted_at_10(images, path)
    zero_weights_in_place(path)
    zero_weights_in_place(previous_path(path))
    with pytest.warns(UserWarning, match="no checkpoint of .* verifies.*restarts from step 0"):
        (result,) = train_runs([spec()], images, CPU, [path])
    assert result.resumed_from_step == 0 and path.with_name("run.pt.damaged").exists()
    assert torch.equal(flat(result.model), flat(uninterrupted.model))


def test_a_run_that_diverges_right_after_resuming_sets_its_checkpoint_aside(images, tmp_path, uninterrupted):
    path = tmp_path / "run.pt"
    interrupted_at_10(images, path)
    payload = read_checkpoint(path)  # a checkpoint that verifies but holds absurd weights
    model = __import__("vae_zoo").create_model("beta_vae", **spec().model_config)
    state = {
        k: torch.full_like(v, 1e30) if v.is_floating_point() else v for k, v in payload["state_dict"].items()
    }
    model.load_state_dict(state)
    extra = {
        k: v
        for k, v in payload.items()
        if k not in ("format", "model", "config", "state_dict", "content_sha256")
    }
    save_checkpoint(model, path, **extra)
    (outcome,) = train_runs([spec()], images, CPU, [path])
    assert isinstance(outcome, Diverged)
    assert "after resuming from run.pt at step 10: that checkpoint is suspect" in outcome.reason
    assert path.with_name("run.pt.suspect").exists()  # set aside; the checkpoint before it takes its place
    assert read_checkpoint(path)["step"] == 8 and not previous_path(path).exists()
    (retried,) = train_runs([spec()], images, CPU, [path])  # --retry-failed: the previous checkpoint
    assert retried.resumed_from_step == 8
    assert torch.equal(flat(retried.model), flat(uninterrupted.model))
