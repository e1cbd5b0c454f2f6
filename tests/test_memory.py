"""release_freed_memory: freed heap pages go back to the OS (the evaluation's peak RSS depends on it)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS from /proc, trimming is glibc's")
def test_freed_blocks_held_by_the_heap_are_returned_to_the_os():
    # 4,000 blocks of 64 KB (under glibc's mmap threshold, so they live in the heap); the last one stays
    # alive, so the freed ones sit below the top of the heap, where free() itself never trims
    script = textwrap.dedent(
        """
        import numpy as np
        from vaebench.memory import release_freed_memory

        def rss_mb():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

        blocks = [np.ones(8000) for _ in range(4000)]
        keep = blocks[-1]
        del blocks
        before = rss_mb()
        asked = release_freed_memory()
        print(asked, before, rss_mb())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    asked, before, after = out[0] == "True", float(out[1]), float(out[2])
    assert asked
    assert before - after > 200, (before, after)  # 250 MB were freed
