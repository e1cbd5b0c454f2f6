"""Checkpoints are verified by content: a damaged file is refused, and the previous one is kept."""

from __future__ import annotations

import struct
import zipfile

import pytest
import torch

from vae_zoo import create_model
from vae_zoo.checkpoint import (
    HASH_KEY,
    CheckpointError,
    previous_path,
    read_checkpoint,
    read_checkpoint_or_previous,
    save_checkpoint,
)


def _model(seed: int):
    torch.manual_seed(seed)
    return create_model("beta_vae", architecture="burgess", latent_dim=4)


def _damage(path, value: float) -> None:
    """Corrupt 1,024 float32 weights of a checkpoint file in place.

    Same size, same structure, as a bad disk or a stray write would leave it.
    """
    with zipfile.ZipFile(path) as archive:  # torch.save's format: tensors are stored, uncompressed
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_length + extra_length)
        size = path.stat().st_size
        f.write(struct.pack("<1024f", *([value] * 1024)))
    assert path.stat().st_size == size


@pytest.mark.parametrize("value", [0.0, 1e30])
def test_a_same_size_damaged_checkpoint_is_refused(tmp_path, value):
    path = save_checkpoint(_model(0), tmp_path / "m.pt", step=3)
    assert read_checkpoint(path)["step"] == 3
    _damage(path, value)
    with pytest.raises(CheckpointError, match="fails its content hash"):
        read_checkpoint(path)


def test_the_previous_checkpoint_is_kept_and_used_when_the_newest_is_damaged(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(_model(0), path, keep_previous=True, step=1)
    save_checkpoint(_model(1), path, keep_previous=True, step=2)
    assert read_checkpoint(previous_path(path))["step"] == 1
    payload, used, refused = read_checkpoint_or_previous(path)
    assert (payload["step"], used, refused) == (2, path, [])
    _damage(path, 0.0)
    payload, used, refused = read_checkpoint_or_previous(path)
    assert payload["step"] == 1 and used == previous_path(path)
    assert len(refused) == 1 and "fails its content hash" in refused[0]
    _damage(previous_path(path), 0.0)
    with pytest.raises(CheckpointError, match=r"m\.pt fails.*m\.pt\.previous fails"):
        read_checkpoint_or_previous(path)


def test_a_checkpoint_without_a_hash_loads_with_a_warning(tmp_path):
    path = save_checkpoint(_model(0), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    del payload[HASH_KEY]
    torch.save(payload, path)
    with pytest.warns(UserWarning, match="no content hash"):
        read_checkpoint(path)
