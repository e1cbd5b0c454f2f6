"""Fixtures every test folder may use: file systems the fault tests mount (read-only, small)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


class Mounts:
    """Mounts made for one test and unmounted after it; ``None`` (with ``why``) where mount fails.

    ``mount`` needs root (or CAP_SYS_ADMIN), as in CI; elsewhere the caller skips, saying why.
    """

    def __init__(self) -> None:
        self.made: list[Path] = []
        self.why = ""

    def _mount(self, target: Path, *args: str) -> bool:
        done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            self.why = f"cannot mount ({done.stderr.strip() or done.returncode}); needs root or CAP_SYS_ADMIN"
            return False
        self.made.append(target)
        return True

    def read_only(self, path: Path) -> bool:
        """Bind ``path`` onto itself read-only: writes fail with EROFS even for root (unlike chmod)."""
        if not self._mount(path, "--bind", str(path)):
            return False
        done = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            self.why = f"cannot remount read-only ({done.stderr.strip()})"
            return False
        return True

    def tmpfs(self, path: Path, size: str) -> bool:
        """A tmpfs of ``size`` (e.g. "2m") at ``path``: writes past it fail with ENOSPC."""
        path.mkdir(parents=True, exist_ok=True)
        return self._mount(path, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")

    def release(self) -> None:
        for target in reversed(self.made):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
        self.made.clear()


@pytest.fixture
def mounts():
    made = Mounts()
    yield made
    made.release()
