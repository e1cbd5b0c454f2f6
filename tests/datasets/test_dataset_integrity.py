"""Cache integrity: content hashes checked on load, corrupt caches rebuilt saying why, one builder at once.

Also: batches read from the cache file equal those of the materialised
uint8 tensor bit for bit, the CLI's errors go to stderr, and an official file
corrupted without changing its size is refused.
"""

import json
import multiprocessing
import os

import numpy as np
import pytest
import torch
from dataset_fakes import DSPRITES_NPZ
from typer.testing import CliRunner

from benchmarks.datasets import DatasetFileError, checksums, load_dataset, sample_batch
from benchmarks.datasets.cli import data_app
from benchmarks.datasets.dsprites import DSprites
from benchmarks.datasets.errors import CacheRebuildWarning
from benchmarks.datasets.shapes3d import Shapes3D

runner = CliRunner()


def _corrupt_same_size(path, start_fraction=0.25, length=4096, seed=0):
    """Overwrite ``length`` bytes in place with random ones: same size, so only the content can tell."""
    size = path.stat().st_size
    offset = int(size * start_fraction)
    with path.open("r+b") as f:
        f.seek(offset)
        original = f.read(length)
        replacement = np.random.default_rng(seed).integers(0, 256, len(original), dtype=np.uint8).tobytes()
        if replacement == original:
            replacement = bytes(b ^ 0xFF for b in original)
        f.seek(offset)
        f.write(replacement)
    assert path.stat().st_size == size


def _manifest(ds) -> dict:
    return json.loads(ds.procedural_cache().manifest_path.read_text())


def test_a_same_size_corruption_is_detected_and_rebuilt_saying_why(tiny_dsprites, data_root):
    ds = DSprites(progress=False).prepare()
    cache = ds.procedural_cache()
    good_hash = ds.provenance()["cache_content_hash"]
    _corrupt_same_size(cache.array_path)
    assert cache.is_valid()  # the size still matches: only the content hash can tell
    with pytest.warns(CacheRebuildWarning, match=r"dsprites-procedural-v1\.npy.*differ from the cache"):
        again = load_dataset("dsprites", "procedural", progress=False)  # the run path
    assert again.provenance()["cache_content_hash"] == good_hash
    factors = again.grid.all_factors()
    assert np.array_equal(again.images(factors), again.render(factors))
    assert again.procedural_cache().check_content() is None


def test_data_prepare_says_why_it_rebuilds(tiny_dsprites, data_root):
    assert runner.invoke(data_app, ["prepare", "dsprites", "--source", "procedural"]).exit_code == 0
    _corrupt_same_size(DSprites(progress=False).procedural_cache().array_path)
    result = runner.invoke(data_app, ["prepare", "dsprites", "--source", "procedural"])
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert "rebuilding the dsprites cache" in err and "chunk 0" in err and "expected sha256" in err
    assert "procedural images ready" in result.stdout


def test_data_verify_marks_a_corrupt_cache_invalid_and_the_next_prepare_rebuilds(tiny_dsprites, data_root):
    ds = DSprites(source="procedural", progress=False).prepare()
    _corrupt_same_size(ds.procedural_cache().array_path)
    result = runner.invoke(data_app, ["verify", "dsprites", "--source", "procedural"])
    assert result.exit_code == 1
    assert "marked invalid" in result.stderr and "differ from the cache" in " ".join(result.stderr.split())
    cache = DSprites(progress=False).procedural_cache()
    assert not cache.is_valid() and cache.problem().startswith("marked invalid")
    info = " ".join(runner.invoke(data_app, ["info", "dsprites"]).stdout.split())
    assert "not valid, rebuilt on the next prepare: marked invalid" in info
    with pytest.warns(CacheRebuildWarning, match="marked invalid"):
        rebuilt = DSprites(source="procedural", progress=False).prepare()
    assert rebuilt.procedural_cache().check_content() is None


def test_info_samples_the_content_and_reports_a_corruption(tiny_dsprites, data_root):
    ds = DSprites(source="procedural", progress=False).prepare()
    info = " ".join(runner.invoke(data_app, ["info", "dsprites"]).stdout.split())
    assert "ready" in info and "bit-packed" in info and "checked against its content hash" in info
    _corrupt_same_size(ds.procedural_cache().array_path)
    info = " ".join(runner.invoke(data_app, ["info", "dsprites"]).stdout.split())
    assert "CORRUPT" in info  # a tiny cache is one chunk, so the sample is all of it


def test_the_content_hash_is_in_the_provenance(tiny_dsprites, tiny_shapes3d, data_root):
    for cls in (DSprites, Shapes3D):
        ds = cls(source="procedural", progress=False).prepare()
        manifest = _manifest(ds)
        provenance = ds.provenance()
        assert provenance["cache_content_hash"] == manifest["content_hash"]
        assert provenance["cache_content_hash"].startswith("sha256/4MiB-chunks:")
        assert manifest["content_hash"] == checksums.content_hash(
            checksums.chunk_digests(ds.procedural_cache().array_path)
        )
    assert _manifest(DSprites(progress=False))["packed"] is True  # 0/255 pixels: one bit each
    assert _manifest(Shapes3D(progress=False))["packed"] is False


@pytest.mark.parametrize("cls", [DSprites, Shapes3D])
def test_batches_read_from_the_cache_file_equal_the_materialised_ones_bit_for_bit(
    cls, tiny_dsprites, tiny_shapes3d
):
    ds = cls(source="procedural", progress=False)
    images = ds.as_tensor("cpu")  # the old path: the whole dataset as one uint8 tensor
    assert images.shape == (len(ds), *ds.observation_shape) and images.dtype == torch.uint8
    assert np.array_equal(images.numpy(), ds.images_at(np.arange(len(ds))))
    training = ds.training_images("cpu")
    assert training.images_u8 is None and training.num_images == len(ds)  # nothing materialised
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        index = torch.randint(len(ds), (33,), generator=g)  # unsorted, with repeats
        new, old = training.batch(index), sample_batch(images, index)
        assert new.dtype == torch.float32 and new.shape == old.shape
        assert torch.equal(new.view(torch.int32), old.view(torch.int32))  # bit for bit
    every = torch.arange(len(ds))
    assert torch.equal(training.batch(every).view(torch.int32), sample_batch(images, every).view(torch.int32))


def test_the_reader_refuses_indices_outside_the_grid(tiny_dsprites):
    ds = DSprites(progress=False).prepare()
    with pytest.raises(IndexError):
        ds.training_images("cpu").batch(torch.tensor([0, len(ds)]))


def _prepare_in_child(data_root, counter, sizes):
    os.environ["VAEBENCH_DATA"] = str(data_root)
    DSprites.factor_sizes = sizes
    real_generate = DSprites.generate

    def counted(self, out, progress=True):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        import time

        time.sleep(1.0)  # long enough that the other process reaches the lock meanwhile
        real_generate(self, out, progress)

    DSprites.generate = counted
    ds = DSprites(source="procedural", progress=False).prepare()
    assert ds.procedural_cache().check_content() is None


def test_two_processes_prepare_the_cache_once(tiny_dsprites, data_root, tmp_path):
    counter = tmp_path / "generated.txt"
    ctx = multiprocessing.get_context("fork")
    children = [
        ctx.Process(target=_prepare_in_child, args=(data_root, counter, DSprites.factor_sizes))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0, 0]
    assert len(counter.read_text().split()) == 1  # one generated, the other waited and found it valid
    assert DSprites(progress=False).procedural_cache().is_valid()


def test_data_errors_go_to_stderr_and_bad_input_exits_2():
    result = runner.invoke(data_app, ["info", "dsprite"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "'dsprite'" in result.stderr and "dsprites" in result.stderr and "shapes3d" in result.stderr
    result = runner.invoke(data_app, ["prepare", "dsprites", "--source", "internet"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "'internet'" in result.stderr and "auto, official, procedural" in result.stderr


def test_a_missing_official_file_is_an_error_on_stderr(data_root):
    result = runner.invoke(data_app, ["prepare", "dsprites", "--source", "official"])
    assert result.exit_code == 1 and result.stdout == "" and DSPRITES_NPZ in result.stderr.replace("\n", "")


def test_an_official_file_corrupted_at_the_same_size_is_refused(write_dsprites_npz, trust, data_root):
    path, _ = write_dsprites_npz()
    trust(path)
    DSprites(source="official", progress=False).prepare()  # verified in full; stamp written
    _corrupt_same_size(path, start_fraction=0.5, length=64)
    with pytest.raises(DatasetFileError, match="checksum mismatch"):  # mtime changed: hashed in full
        DSprites(source="official", progress=False).prepare()

    path, _ = write_dsprites_npz()  # a good file again, stamped
    DSprites(source="official", progress=False).prepare()
    stat = path.stat()
    _corrupt_same_size(path, start_fraction=0.5, length=64)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the mtime put back: the stamp matches
    with pytest.raises(
        DatasetFileError, match="differ from the chunk hashes recorded when the file was verified"
    ):
        DSprites(source="official", progress=False).prepare()


def test_a_corrupt_official_cache_without_its_file_falls_back_and_says_why(
    write_dsprites_npz, trust, data_root
):
    path, _ = write_dsprites_npz()
    trust(path)
    ds = DSprites(source="official", progress=False).prepare()
    path.unlink()  # the cache alone vouches from now on
    _corrupt_same_size(ds.official_cache(DSprites.official_files[0]).array_path)
    with pytest.warns(CacheRebuildWarning, match="no official file to rebuild it from"):
        with pytest.warns(UserWarning, match="Falling back to the procedural"):
            auto = DSprites(progress=False).prepare()
    assert auto.source == "procedural"
