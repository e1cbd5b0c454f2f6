"""A complete, verified cache in a read-only (shared) data directory is read without a lock (issue #21)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.datasets.cache import FlatCache
from benchmarks.datasets.dsprites import DSprites


def test_a_verified_cache_in_a_read_only_data_directory_is_read_without_a_lock(
    tiny_dsprites, data_root, mounts, monkeypatch, tmp_path
):
    built = DSprites(progress=False).prepare()
    cache_dir = data_root / "cache"
    for lock in cache_dir.glob("*.lock"):  # what building left behind
        lock.unlink()
    # Read-only for real where the test can mount (root, as in CI: chmod would not stop root's
    # writes); and wherever it runs, taking a lock fails the test, so it proves the reads take none.
    read_only = mounts.read_only(data_root)

    def no_lock(self):
        raise AssertionError(f"a lock was taken on {self.lock_path} to read a complete cache")

    monkeypatch.setattr(FlatCache, "lock", no_lock)
    ds = DSprites(progress=False).prepare()
    factors = built.grid.all_factors()[:5]
    assert (ds.images(factors) == built.images(factors)).all()
    runner = CliRunner()
    verify = runner.invoke(app, ["data", "verify", "dsprites", "--source", "procedural"])
    assert verify.exit_code == 0, verify.output
    assert "every chunk matches" in verify.output
    show = runner.invoke(app, ["data", "show", "dsprites", "--out", str(tmp_path / "overview.png")])
    assert show.exit_code == 0, show.output
    assert not list(cache_dir.glob("*.lock")), "reading created a lock file"
    if read_only:
        with pytest.raises(OSError):  # EROFS: the directory really was read-only
            (data_root / "probe").write_text("x")
    else:
        print(f"the data directory is not read-only in this test ({mounts.why}); the lock check stands")
