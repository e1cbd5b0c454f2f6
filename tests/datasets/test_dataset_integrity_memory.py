"""Peak memory of a short training run on the full dSprites, in a subprocess (slow: builds the cache)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.perf import memory as perf_memory

REPO = Path(__file__).resolve().parents[2]


def _child(mode: str, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tools.perf.memory", "--child", mode, "--datasets", "dsprites", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_short_dsprites_run_stays_under_1_5_gb(data_root):
    prepared = _child("prepare")  # builds the bit-packed cache under data_root (the autouse fixture's)
    assert prepared["cache_packed"] and prepared["cache_bytes"] < 400e6
    run = _child("memmap", "--steps", "30", "--batch-size", "64")
    assert run["peak_rss_mb"] < 1500, run
    assert run["rss_after_images_mb"] < 1000, run  # nothing of the 2.8 GiB dataset is held


@pytest.mark.slow
def test_the_whole_smoke_suite_stays_under_1_5_gb(data_root):
    """The smoke suite's peak memory, dataset generation included, is in the evaluation.

    Training and evaluation as `vaebench run --suite smoke` does them; the peak comes from the
    encoder's batches of activations and the metrics' samples.
    """
    run = perf_memory.run_suite("smoke")
    assert run["runs"] == 2, run
    assert run["peak_rss_mb"] < 1500, run
