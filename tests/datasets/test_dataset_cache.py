"""The flat cache: built once, keyed by generator version, never trusted after an interrupted build."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fakes import TINY_DSPRITES

from benchmarks.datasets import sample_batch
from benchmarks.datasets.dsprites import DSprites
from benchmarks.datasets.shapes3d import Shapes3D


def _stems(root: Path) -> list[str]:
    """The cache directory's files, less the lock files preparation leaves behind (empty, harmless)."""
    cache = root / "cache"
    return sorted(p.name for p in cache.glob("*") if not p.name.endswith(".lock")) if cache.exists() else []


def test_procedural_cache_is_built_once_then_reused(tiny_dsprites, data_root, monkeypatch):
    calls = []
    real_generate = DSprites.generate
    monkeypatch.setattr(
        DSprites,
        "generate",
        lambda self, out, progress=True: calls.append(1) or real_generate(self, out, progress),
    )
    first = DSprites(progress=False).prepare()
    assert _stems(data_root) == ["dsprites-procedural-v1.json", "dsprites-procedural-v1.npy"]
    manifest = json.loads((data_root / "cache" / "dsprites-procedural-v1.json").read_text())
    assert manifest["generator_version"] == "1" and manifest["factor_sizes"] == list(TINY_DSPRITES)
    assert manifest["shape"] == [len(first), 1, 64, 64]
    second = DSprites(progress=False).prepare()
    assert len(calls) == 1
    factors = first.grid.all_factors()
    assert np.array_equal(second.images(factors), first.render(factors))
    assert first.provenance() == second.provenance()
    assert first.provenance()["generator_version"] == "1"


def test_a_new_generator_version_builds_a_new_cache(tiny_dsprites, data_root, monkeypatch):
    DSprites(progress=False).prepare()
    monkeypatch.setattr(DSprites, "generator_version", "2")
    ds = DSprites(progress=False).prepare()
    assert ds.provenance()["cache"].endswith("dsprites-procedural-v2.npy")
    assert "dsprites-procedural-v2.json" in _stems(data_root)


def test_an_exception_midway_leaves_nothing_trusted_and_the_next_run_redoes_it(
    tiny_dsprites, data_root, monkeypatch
):
    real_generate = DSprites.generate

    def half_then_fail(self, out, progress=True):
        out[: len(out) // 2] = 255  # something was written...
        raise KeyboardInterrupt  # ...then the user pressed Ctrl-C

    monkeypatch.setattr(DSprites, "generate", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        DSprites(progress=False).prepare()
    assert _stems(data_root) == []  # no temp file, no array, no manifest

    monkeypatch.setattr(DSprites, "generate", real_generate)
    ds = DSprites(progress=False).prepare()
    assert np.array_equal(ds.images(ds.grid.all_factors()), ds.render(ds.grid.all_factors()))


def test_a_cache_whose_manifest_does_not_match_the_file_is_rebuilt(tiny_dsprites, data_root):
    ds = DSprites(progress=False).prepare()
    array = data_root / "cache" / "dsprites-procedural-v1.npy"
    with array.open("r+b") as f:  # cut the data short behind the manifest's back
        f.truncate(array.stat().st_size - 4096)
    again = DSprites(progress=False).prepare()
    assert (
        array.stat().st_size
        == json.loads((data_root / "cache" / "dsprites-procedural-v1.json").read_text())["file_size"]
    )
    assert np.array_equal(again.images(ds.grid.all_factors()), ds.render(ds.grid.all_factors()))


_KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from benchmarks.datasets.dsprites import DSprites

    DSprites.factor_sizes = {sizes!r}

    def slow_generate(self, out, progress=True):
        out[:10] = 255
        out.flush()
        print("halfway", flush=True)
        time.sleep(60)  # killed here

    DSprites.generate = slow_generate
    DSprites(progress=False).prepare()
    """
)


def test_a_generation_killed_midway_is_detected_and_redone(tiny_dsprites, data_root):
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD.format(sizes=TINY_DSPRITES)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "VAEBENCH_DATA": str(data_root)},
    )
    try:
        assert child.stdout.readline().strip() == "halfway"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    leftovers = _stems(data_root)
    assert leftovers and all(name.endswith(".tmp") for name in leftovers), (
        leftovers
    )  # only the dead build's temp

    ds = DSprites(progress=False)
    assert not ds.procedural_cache().is_valid()
    ds.prepare()
    assert _stems(data_root) == [
        "dsprites-procedural-v1.json",
        "dsprites-procedural-v1.npy",
    ]  # temp cleaned up
    factors = ds.grid.all_factors()
    assert np.array_equal(ds.images(factors), ds.render(factors))


def test_as_tensor_holds_the_whole_dataset_and_sample_batch_converts_it(tiny_dsprites):
    ds = DSprites(progress=False)
    images = ds.as_tensor("cpu")
    assert images.dtype == torch.uint8 and images.shape == (len(ds), 1, 64, 64)
    assert np.array_equal(images.numpy(), ds.images_at(np.arange(len(ds))))
    batch = sample_batch(images, torch.tensor([0, 5, len(ds) - 1]))
    assert batch.dtype == torch.float32 and set(batch.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(batch[1], images[5].float() / 255)


def test_a_worker_failing_in_the_pool_fails_the_build_and_leaves_nothing(
    tiny_shapes3d, data_root, monkeypatch
):
    def broken(self, geometry):
        raise RuntimeError("ray tracer broke")

    monkeypatch.setattr(Shapes3D, "geometry_maps", broken)  # forked workers inherit the patch
    with pytest.raises(RuntimeError, match="ray tracer broke"):
        Shapes3D(source="procedural", progress=False).prepare()
    assert _stems(data_root) == []
