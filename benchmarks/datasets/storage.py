"""Where dataset files live, how official files are verified, and the flat image cache.

Layout under the data root (``$VAEBENCH_DATA``, default ``~/.cache/vaebench``,
or the ``root`` argument)::

    <root>/<official file>                         e.g. 3dshapes.h5, put there by hand or by `fetch`
    <root>/cache/<official file>.verified.json     checksum stamp, keyed by the file's size and mtime
    <root>/cache/<dataset>-official.npy                flat uint8 images (N, C, 64, 64), memory-mappable
    <root>/cache/<dataset>-procedural-v<version>.npy   the same, generated here
    <root>/cache/<stem>.json                           manifest, written LAST; no manifest, no trust

A cache is built into ``<name>.npy.<pid>.tmp`` and renamed into place only once
complete; its manifest is written after the rename (and removed before a
rebuild starts), so a build killed at any point leaves nothing a later run
would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = [
    "CACHE_FORMAT",
    "Checksum",
    "DatasetFileError",
    "FlatCache",
    "KNOWN_CHECKSUMS",
    "OfficialFileMissingError",
    "data_root",
    "file_digest",
    "progress_bar",
    "verify_checksum",
    "write_stamp",
]

CACHE_FORMAT = 1  # bump when the cache or manifest layout changes; older caches are rebuilt


class DatasetFileError(ValueError):
    """A dataset file that is not what it should be (checksum, truncation, keys, shapes)."""


class OfficialFileMissingError(FileNotFoundError):
    """The official file is not in the data directory; the message says where to put it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data directory: ``root`` if given, else ``$VAEBENCH_DATA``, else ``~/.cache/vaebench``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("VAEBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaebench"


# -- checksums -----------------------------------------------------------------
@dataclass(frozen=True)
class Checksum:
    """An expected digest: ``algorithm`` is a :mod:`hashlib` name ("md5", "sha256")."""

    algorithm: str
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm} {self.hexdigest}"


#: Expected checksums of the official files, by file name (from DATA.md: the official
#: repositories and tensorflow_datasets' checksum files). Tests override entries with
#: ``monkeypatch.setitem`` so that a small fake file in the official format verifies.
KNOWN_CHECKSUMS: dict[str, Checksum] = {
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz": Checksum("md5", "7da33b31b13a06f4b04a70402ce90c2e"),
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5": Checksum(
        "sha256", "729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb"
    ),
    "3dshapes.h5": Checksum("sha256", "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"),
}


def progress_bar(*, transfer: bool = False, disable: bool = False) -> Progress:
    """A rich progress bar; ``transfer`` shows bytes and speed instead of a count."""
    if transfer:
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn())
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=disable, transient=False)


def file_digest(path: Path, algorithm: str, *, progress: bool = True) -> str:
    """Hex digest of a whole file, read in 8 MiB blocks with a progress bar."""
    hasher = hashlib.new(algorithm)
    size = path.stat().st_size
    with progress_bar(transfer=True, disable=not progress) as bar, path.open("rb") as f:
        task = bar.add_task(f"{algorithm} {path.name}", total=size)
        while block := f.read(8 << 20):
            hasher.update(block)
            bar.advance(task, len(block))
    return hasher.hexdigest()


def _stamp_path(path: Path, cache_dir: Path) -> Path:
    return cache_dir / f"{path.name}.verified.json"


def _file_identity(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verify_checksum(
    path: Path, expected: Checksum, cache_dir: Path, *, force: bool = False, progress: bool = True
) -> bool:
    """Check ``path`` against ``expected`` once, then trust a stamp keyed by size and mtime.

    Returns True if the file was hashed now, False if a matching stamp vouched
    for it. Raises DatasetFileError (naming the file, the expected and the
    found digest) on a mismatch, and removes any stamp for the file then.
    """
    stamp = _stamp_path(path, cache_dir)
    identity = _file_identity(path)
    if not force and stamp.exists():
        try:
            record = json.loads(stamp.read_text())
        except (OSError, ValueError):
            record = {}
        if (
            record.get("identity") == identity
            and record.get("algorithm") == expected.algorithm
            and record.get("hexdigest") == expected.hexdigest
        ):
            return False
    found = file_digest(path, expected.algorithm, progress=progress)
    if found != expected.hexdigest:
        stamp.unlink(missing_ok=True)
        raise DatasetFileError(
            f"{path}: checksum mismatch: expected {expected}, found {expected.algorithm} {found} "
            f"({identity['size']:,} bytes). The file is corrupt, truncated or not the official one; "
            f"delete it and fetch it again."
        )
    write_stamp(path, expected, cache_dir)
    return True


def write_stamp(path: Path, verified: Checksum, cache_dir: Path) -> None:
    """Record that ``path``, as it is now (size, mtime), has checksum ``verified``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    record = {"file": str(path), "identity": _file_identity(path), **vars(verified)}
    record["verified_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_json_atomic(_stamp_path(path, cache_dir), record)


def _write_json_atomic(path: Path, record: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# -- the flat cache ------------------------------------------------------------
@dataclass(frozen=True)
class FlatCache:
    """One flat uint8 image cache ``(N, C, H, W)`` plus its manifest.

    ``identity`` is everything the cache's content depends on (dataset, grid,
    source, generator version or source checksum); a manifest whose identity
    differs, or whose recorded file size does not match the ``.npy`` on disk,
    is not trusted and the cache is rebuilt.
    """

    directory: Path
    stem: str
    shape: tuple[int, ...]
    identity: dict

    @property
    def array_path(self) -> Path:
        return self.directory / f"{self.stem}.npy"

    @property
    def manifest_path(self) -> Path:
        return self.directory / f"{self.stem}.json"

    def manifest(self) -> dict | None:
        """The manifest if it vouches for the ``.npy`` on disk, else None."""
        try:
            record = json.loads(self.manifest_path.read_text())
            size = self.array_path.stat().st_size
        except (OSError, ValueError):
            return None
        expected = {"format": CACHE_FORMAT, "shape": list(self.shape), "dtype": "uint8", **self.identity}
        if any(record.get(k) != v for k, v in expected.items()) or record.get("file_size") != size:
            return None
        return record

    def is_valid(self) -> bool:
        return self.manifest() is not None

    def open(self) -> np.memmap:
        """The cache as a read-only memmap ``(N, C, H, W)`` uint8."""
        if not self.is_valid():
            raise DatasetFileError(f"{self.array_path}: no valid cache here (missing or incomplete manifest)")
        array = np.load(self.array_path, mmap_mode="r")
        if array.shape != self.shape or array.dtype != np.uint8:
            raise DatasetFileError(
                f"{self.array_path}: expected uint8 {self.shape}, found {array.dtype} {array.shape}"
            )
        return array

    def load(self) -> np.ndarray:
        """The whole cache read into memory (for training)."""
        self.open()  # validates
        return np.load(self.array_path)

    def build(self, fill: Callable[[np.ndarray], None], extra: dict | None = None) -> dict:
        """Create the cache: ``fill(array)`` writes every image into a writable memmap.

        The old manifest is removed first, the data go to a temp file that is
        renamed into place only after ``fill`` returns, and the manifest is
        written last. If ``fill`` raises, the temp file is deleted.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manifest_path.unlink(missing_ok=True)
        self._remove_stale_temps()
        tmp = self.directory / f"{self.stem}.npy.{os.getpid()}.tmp"
        started = time.perf_counter()
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=self.shape)
            fill(array)
            array.flush()
            del array
            os.replace(tmp, self.array_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        record = {"format": CACHE_FORMAT, "shape": list(self.shape), "dtype": "uint8", **self.identity}
        record.update(extra or {})
        record["file_size"] = self.array_path.stat().st_size
        record["build_seconds"] = round(time.perf_counter() - started, 2)
        record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _write_json_atomic(self.manifest_path, record)
        return record

    def _remove_stale_temps(self) -> None:
        # Temp files of builds whose process is gone (killed midway); a live
        # concurrent build keeps its own.
        prefix = f"{self.stem}.npy."
        for tmp in self.directory.glob(f"{prefix}*.tmp"):
            pid = tmp.name[len(prefix) : -len(".tmp")]
            if not pid.isdigit() or not _process_alive(int(pid)):
                tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier, failed attempt
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
