"""The flat image cache: one ``.npy`` of every image in grid order, its manifest, and reading it by index.

Layout under ``<root>/cache`` (``<root>`` is the data directory, see ``sources``)::

    <dataset>-official.npy                  flat images, memory-mappable (see below)
    <dataset>-procedural-v<version>.npy     the same, generated here
    <stem>.json                             manifest, written LAST; no manifest, no trust
    <stem>.lock                             held while a process prepares that cache

A cache holds the images ``(N, C, H, W)`` in grid order, uint8 0-255; a cache
whose pixels are all 0 or 255 (dSprites) is stored bit-packed instead, one bit
per pixel, ``(N, ceil(C*H*W / 8))`` (``np.packbits`` of each flattened image):
377 MB instead of 2.8 GiB for dSprites. A cache is built into
``<name>.npy.<pid>.tmp`` and renamed into place only once complete; its
manifest is written after the rename (and removed before a rebuild starts), so
a build killed at any point leaves nothing a later run would trust. Concurrent
processes take ``<stem>.lock`` (``filelock``): one builds, the others wait and
then find the cache valid.

Content verification: at build, the whole ``.npy`` file (header included) is
hashed in chunks of ``HASH_CHUNK`` bytes (``checksums``); the manifest records
every chunk's digest and a ``content_hash``, which goes into every run's
provenance. ``FlatCache.check_content`` re-hashes all chunks (or a sample) and
names the first chunk that differs. ``GroundTruthDataset.prepare`` checks the
cache in full once per process before anything reads it; a mismatch marks the
manifest invalid, warns (``CacheRebuildWarning``, naming the file and chunk)
and rebuilds. ``vaebench data info`` checks a sample of chunks, ``vaebench data
verify`` all of them.

Measured cost (2-core AMD EPYC, page cache warm), by ``tools/perf/memory.py``
(results/perf/memory_cpu.md): the full check on load takes 0.16 s for dSprites'
377 MB bit-packed cache and 2.0 s for 3D Shapes' 5.9 GB (an earlier file on a
shared 2-core Intel Xeon: 0.22-0.85 s and 5.9 s under loads of 2.7-5.7), against
minutes of training; building adds the same hashing once.

Training reads a cache by index with ``CacheReader`` (``os.preadv`` of the
rows, contiguous runs coalesced): nothing of the cache stays resident. A
memory map gathering random rows would be as fast, but the kernel maps the
pages around every fault (fault-around), so after a quick-suite run
(76,800 random images) the map's resident set is the whole file.
"""

from __future__ import annotations

import json
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaebench.atomic import atomic_path
from vaebench.paths import check_component

from .checksums import (
    HASH_CHUNK,
    ContentMismatch,
    chunk_count,
    chunk_digests,
    compare_chunks,
    content_hash,
    write_json_atomic,
)
from .errors import DatasetFileError

__all__ = ["CACHE_FORMAT", "CacheReader", "FlatCache"]

#: Bump when the cache or manifest layout changes; older caches are rebuilt.
#: 2: chunk hashes in the manifest; binary images bit-packed.
CACHE_FORMAT = 2
PACK_ROWS = 16384  # images per step while packing (64 MiB of dSprites)


@dataclass(frozen=True)
class FlatCache:
    """One flat image cache ``(N, C, H, W)`` (uint8, or bit-packed when binary) plus its manifest.

    ``identity`` is everything the cache's content depends on (dataset, grid,
    source, generator version or source checksum); a manifest whose identity
    differs, whose recorded file size or chunk count does not match the
    ``.npy`` on disk, or that was marked invalid, is not trusted and the cache
    is rebuilt. ``check_content`` compares the bytes with the recorded digests.
    """

    directory: Path
    stem: str
    shape: tuple[int, ...]
    identity: dict

    def __post_init__(self) -> None:
        check_component(self.stem, "dataset cache name")  # its files stay in ``directory``

    @property
    def array_path(self) -> Path:
        """The cache's ``.npy`` array file."""
        return self.directory / f"{self.stem}.npy"

    @property
    def manifest_path(self) -> Path:
        """The cache's JSON manifest (format, shape, identity and content hash)."""
        return self.directory / f"{self.stem}.json"

    @property
    def lock_path(self) -> Path:
        """The lock file that serialises building this cache across processes."""
        return self.directory / f"{self.stem}.lock"

    def _expected(self) -> dict:
        return {"format": CACHE_FORMAT, "shape": list(self.shape), "dtype": "uint8", **self.identity}

    def problem(self) -> str | None:
        """Why the manifest does not vouch for the ``.npy`` on disk (None if it does; content unchecked)."""
        if not self.manifest_path.exists():
            return "not built" if not self.array_path.exists() else "no manifest (an interrupted build?)"
        try:
            record = json.loads(self.manifest_path.read_text())
            size = self.array_path.stat().st_size
        except (OSError, ValueError) as exc:
            return f"unreadable manifest or missing data ({type(exc).__name__}: {exc})"
        if record.get("invalid"):
            return f"marked invalid: {record['invalid']}"
        for key, value in self._expected().items():
            if record.get(key) != value:
                return f"manifest has {key}={record.get(key)!r}, this code expects {value!r}"
        if record.get("file_size") != size:
            return f"file is {size:,} bytes, its manifest says {record.get('file_size')!r}"
        chunks = record.get("chunks")
        if record.get("chunk_bytes") != HASH_CHUNK or not isinstance(chunks, list):
            return "manifest records no content hashes of this chunk size"
        if len(chunks) != chunk_count(size):
            return f"manifest records {len(chunks)} chunk hashes for a file of {chunk_count(size)} chunks"
        return None

    def manifest(self) -> dict | None:
        """The manifest if it vouches for the ``.npy`` on disk (by structure only), else None."""
        if self.problem() is not None:
            return None
        return json.loads(self.manifest_path.read_text())

    def is_valid(self) -> bool:
        """The manifest vouches for the file's structure (cheap: no byte is read; see ``check_content``)."""
        return self.problem() is None

    def check_content(self, sample: int | None = None) -> ContentMismatch | None:
        """Re-hash all chunks (``sample`` None) or ``sample`` of them; the first mismatch, or None."""
        record = self.manifest()
        if record is None:
            raise DatasetFileError(f"{self.array_path}: no valid cache here ({self.problem()})")
        return compare_chunks(self.array_path, record["chunks"], sample)

    def invalidate(self, reason: str) -> None:
        """Mark the manifest invalid, with ``reason`` (shown by ``data info``): the next prepare rebuilds."""
        try:
            record = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            record = {}
        record["invalid"] = reason
        record["invalidated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.manifest_path, record)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``<stem>.lock``; say so on stderr when another process holds it and we wait."""
        import filelock  # here, not at import: the training loop itself needs no filelock

        self.directory.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.lock_path)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            print(
                f"waiting for another process preparing {self.array_path} (lock {self.lock_path})",
                file=sys.stderr,
                flush=True,
            )
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def reader(self) -> CacheReader:
        """Rows by index (see ``CacheReader``); refuses a cache its manifest does not vouch for."""
        record = self.manifest()
        if record is None:
            raise DatasetFileError(f"{self.array_path}: no valid cache here ({self.problem()})")
        return CacheReader(self.array_path, self.shape, packed=bool(record.get("packed")))

    def build(self, fill: Callable[[np.ndarray], None], extra: dict | None = None) -> dict:
        """Create the cache: ``fill(array)`` writes every image into a writable uint8 memmap.

        The old manifest is removed first, the data go to a temp file that is
        renamed into place only after ``fill`` returns (bit-packed first when
        every pixel is 0 or 255) and its chunks are hashed, and the manifest is
        written last. If anything raises, the temp files are deleted.
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
            # The one atomic write (fsync, then rename onto the cache's name): bit-packed into its
            # temporary file when every pixel is 0 or 255, else the scratch file becomes it.
            with atomic_path(self.array_path) as final:
                packed = _pack_if_binary(tmp, final, self.shape)
                if not packed:
                    os.replace(tmp, final)
                digests = chunk_digests(final)
            tmp.unlink(missing_ok=True)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        record = self._expected()
        record.update(extra or {})
        record["packed"] = packed
        record["file_size"] = self.array_path.stat().st_size
        record["chunk_bytes"] = HASH_CHUNK
        record["chunks"] = digests
        record["content_hash"] = content_hash(digests)
        record["build_seconds"] = round(time.perf_counter() - started, 2)
        record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json_atomic(self.manifest_path, record)
        return record

    def _remove_stale_temps(self) -> None:
        # Temp files of builds whose process is gone (killed midway); a live
        # concurrent build keeps its own.
        prefix = f"{self.stem}.npy."
        for tmp in self.directory.glob(f"{prefix}*.tmp"):
            pid = tmp.name[len(prefix) :].split(".")[0]
            if not pid.isdigit() or not _process_alive(int(pid)):
                tmp.unlink(missing_ok=True)


def _npy_layout(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """(data offset, shape, dtype) from an ``.npy`` header, without mapping the data."""
    with path.open("rb") as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, fortran, dtype = read[version](f)
        if fortran:
            raise DatasetFileError(f"{path}: stored Fortran-ordered")
        return f.tell(), tuple(shape), dtype


def _pack_if_binary(src: Path, dst: Path, shape: tuple[int, ...]) -> bool:
    """Write ``src``'s images bit-packed to ``dst`` if every pixel is 0 or 255, else return False."""
    reader = CacheReader(src, shape, packed=False)
    n = shape[0]
    bits = int(np.prod(shape[1:]))
    out = None
    try:
        for start in range(0, n, PACK_ROWS):
            rows = reader.raw(np.arange(start, min(start + PACK_ROWS, n)))  # (n, C*H*W), no mapping kept
            on = rows != 0
            if np.count_nonzero(on) != np.count_nonzero(rows == 255):  # some pixel is neither 0 nor 255
                if out is not None:
                    del out
                    dst.unlink(missing_ok=True)
                return False
            if out is None:
                out = np.lib.format.open_memmap(dst, mode="w+", dtype=np.uint8, shape=(n, -(-bits // 8)))
            out[start : start + len(rows)] = np.packbits(on, axis=1)
        if out is None:  # an empty grid
            return False
        out.flush()
        del out
        return True
    finally:
        reader.close()


class CacheReader:
    """Images of a cache file gathered by flat index, with ``os.preadv`` (nothing stays mapped).

    Indices are sorted and each run of consecutive indices is one read, so a
    random training batch of 64 is at most 64 small reads (about 0.2 ms for
    dSprites) and an evaluation chunk of consecutive images is one. Rows come
    back in the order asked for. ``packed``: rows are ``np.packbits`` of the
    flattened image (pixels 0 or 255).
    """

    def __init__(self, path: Path, shape: tuple[int, ...], *, packed: bool):
        self.path, self.shape, self.packed = Path(path), tuple(shape), packed
        self.pixels = int(np.prod(self.shape[1:]))  # C * H * W
        self.row_bytes = -(-self.pixels // 8) if packed else self.pixels
        offset, stored, dtype = _npy_layout(self.path)
        expected = (self.shape[0], self.row_bytes) if packed else self.shape
        if stored != expected or dtype != np.uint8:
            raise DatasetFileError(
                f"{self.path}: expected uint8 {expected}{' (bit-packed)' if packed else ''}, "
                f"found {dtype} {stored}"
            )
        self.offset = offset
        self._fd = os.open(self.path, os.O_RDONLY)
        self._finalizer = weakref.finalize(self, os.close, self._fd)

    @property
    def num_images(self) -> int:
        """The number of images (rows) in the cache."""
        return self.shape[0]

    def close(self) -> None:
        """Close the memory map now rather than at garbage collection."""
        self._finalizer()

    def raw(self, indices: np.ndarray) -> np.ndarray:
        """The stored rows at ``indices`` ``(n,)``, ``(n, row_bytes)`` uint8, in the order given."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(indices)
        rows = np.empty((n, self.row_bytes), dtype=np.uint8)
        if n == 0:
            return rows
        if indices.min() < 0 or indices.max() >= self.shape[0]:
            raise IndexError(
                f"{self.path}: indices must lie in [0, {self.shape[0]}), got {indices.min()}..{indices.max()}"
            )
        in_order = bool(np.all(indices[1:] >= indices[:-1]))
        order = None if in_order else np.argsort(indices, kind="stable")
        ordered = indices if in_order else indices[order]
        target = rows if in_order else np.empty_like(rows)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        starts, stops = np.r_[0, breaks], np.r_[breaks, n]
        for a, b in zip(starts.tolist(), stops.tolist()):
            want = (b - a) * self.row_bytes
            got = os.preadv(self._fd, [target[a:b]], self.offset + int(ordered[a]) * self.row_bytes)
            if got != want:
                raise DatasetFileError(
                    f"{self.path}: truncated: row {int(ordered[a])} is past the end of the file"
                )
        if not in_order:
            rows[order] = target
        return rows

    def bits(self, indices: np.ndarray) -> np.ndarray:
        """Packed caches only: the pixels at ``indices`` as 0/1, ``(n, C*H*W)`` uint8."""
        count = None if self.pixels % 8 == 0 else self.pixels  # a count makes numpy 3x slower
        return np.unpackbits(self.raw(indices), axis=1, count=count)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 ``(n, C, H, W)`` images 0-255 at ``indices``."""
        rows = self.bits(indices) * np.uint8(255) if self.packed else self.raw(indices)
        return rows.reshape(-1, *self.shape[1:])


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
