"""The ``vaebench data`` sub-app, driven through typer's CliRunner."""

import dataclasses
import functools
import http.server
import threading
import time

import matplotlib.image
import numpy as np
import pytest
from dataset_fakes import DSPRITES_NPZ
from typer.testing import CliRunner

from benchmarks.datasets import checksums
from benchmarks.datasets.cli import data_app
from benchmarks.datasets.dsprites import DSprites

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(data_app, list(args))


def _point_official_files_at(monkeypatch, url_prefix: str) -> None:
    files = tuple(dataclasses.replace(f, url=url_prefix + f.filename) for f in DSprites.official_files)
    monkeypatch.setattr(DSprites, "official_files", files)


def test_list_and_info():
    result = invoke("list")
    assert result.exit_code == 0 and "dsprites" in result.output and "shapes3d" in result.output
    result = invoke("info", "shapes3d")
    assert result.exit_code == 0, result.output
    for text in ("floor_hue (10)", "orientation (15)", "gaussian", "3dshapes.h5", "procedural"):
        assert text in result.output


def test_unknown_dataset_and_bad_source_fail_with_a_message():
    result = invoke("info", "dsprite")
    assert result.exit_code == 2 and "Did you mean 'dsprites'" in result.output
    result = invoke("prepare", "dsprites", "--source", "internet")
    assert (
        result.exit_code == 2
        and "'internet'" in result.stderr
        and "auto, official, procedural" in result.stderr
    )


def test_prepare_verify_show_on_a_small_grid(tiny_dsprites, data_root, tmp_path):
    result = invoke("prepare", "dsprites", "--source", "procedural", "--root", str(data_root))
    assert result.exit_code == 0, result.output
    assert "procedural images ready" in result.output and "generator_version: 1" in result.output
    result = invoke("verify", "dsprites", "--source", "procedural", "--samples", "32")
    assert result.exit_code == 0, result.output
    assert "match the cache" in result.output
    png = tmp_path / "overview.png"
    result = invoke("show", "dsprites", "--source", "procedural", "--out", str(png))
    assert result.exit_code == 0, result.output
    picture = matplotlib.image.imread(png)
    assert picture.ndim == 3 and picture.shape[0] > 300 and picture.shape[1] > 600
    assert picture[..., :3].std() > 0.1  # sprites were drawn, not an empty canvas


def test_verify_catches_a_corrupted_procedural_cache(tiny_dsprites, data_root):
    assert invoke("prepare", "dsprites", "--source", "procedural").exit_code == 0
    cache = np.load(data_root / "cache" / "dsprites-procedural-v1.npy", mmap_mode="r+")
    cache[:] = 255 - cache  # same size, so only re-rendering can tell
    cache.flush()
    del cache
    result = invoke("verify", "dsprites", "--source", "procedural")
    assert result.exit_code == 1 and "differ from the cache" in result.output


def test_fetch_without_network_fails_fast_and_says_what_to_do(monkeypatch, data_root):
    _point_official_files_at(monkeypatch, "http://127.0.0.1:9/")  # nothing listens on the discard port
    started = time.perf_counter()
    result = invoke("fetch", "dsprites", "--timeout", "3")
    assert time.perf_counter() - started < 10
    assert result.exit_code == 1
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "could not download" in text and "--source procedural" in text and DSPRITES_NPZ in text
    assert not [p for p in data_root.rglob("*") if p.is_file()]  # no partial download left behind


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_fetch_downloads_verifies_and_renames_into_place(
    monkeypatch, data_root, http_server, write_dsprites_npz, trust, tmp_path
):
    served, url = http_server
    path, arrays = write_dsprites_npz()  # written into data_root: move it to the server
    trust(path)
    path.rename(served / DSPRITES_NPZ)
    _point_official_files_at(monkeypatch, url)
    result = invoke("fetch", "dsprites")
    assert result.exit_code == 0, result.output
    assert (data_root / DSPRITES_NPZ).is_file() and not list(data_root.glob("*.tmp"))
    calls = []
    monkeypatch.setattr(checksums, "file_digest", lambda *a, **k: calls.append(a) or "unused")
    ds = DSprites(source="official", progress=False).prepare()  # the fetch's stamp vouches for it
    assert calls == [] and ds.source == "official"
    assert np.array_equal(ds.images(ds.grid.all_factors())[:, 0], arrays["imgs"] * 255)


def test_fetch_refuses_a_download_with_the_wrong_checksum(
    monkeypatch, data_root, http_server, write_dsprites_npz
):
    served, url = http_server
    path, _ = write_dsprites_npz()
    path.rename(served / DSPRITES_NPZ)  # the real md5 is expected: this fake cannot match it
    _point_official_files_at(monkeypatch, url)
    result = invoke("fetch", "dsprites")
    assert result.exit_code == 1 and "does not match" in " ".join(result.output.split())
    assert not any(p.is_file() and not p.name.endswith(".json") for p in data_root.rglob("*"))


def test_verify_does_not_build_a_cache_that_is_not_there(tiny_dsprites, data_root):
    """Verify must not silently write GBs: with no cache built, it says so and builds none."""
    result = invoke("verify", "dsprites", "--source", "procedural")
    assert result.exit_code == 0, result.output
    assert "there is none to verify" in result.output and "vaebench data prepare dsprites" in result.output
    assert not list(data_root.glob("cache/*.npy"))
