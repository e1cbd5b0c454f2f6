"""Where dataset files live, how official files are verified, and the flat image cache.

Layout under the data root (``$VAEBENCH_DATA``, default ``~/.cache/vaebench``,
or the ``root`` argument)::

    <root>/<official file>                         e.g. 3dshapes.h5, put there by hand or by `fetch`
    <root>/cache/<official file>.verified.json     checksum stamp: size, mtime and chunk hashes
    <root>/cache/<dataset>-official.npy                flat images, memory-mappable (see below)
    <root>/cache/<dataset>-procedural-v<version>.npy   the same, generated here
    <root>/cache/<stem>.json                           manifest, written LAST; no manifest, no trust
    <root>/cache/<stem>.lock                           held while a process prepares that cache

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
hashed in chunks of ``HASH_CHUNK`` bytes (sha256, the fastest hashlib digest
here thanks to SHA-NI); the manifest records every chunk's digest and a
``content_hash`` (sha256 of the chunk digests), which goes into every run's
provenance. ``FlatCache.check_content`` re-hashes all chunks (or a sample) and
names the first chunk that differs. ``GroundTruthDataset.prepare`` checks the
cache in full once per process before anything reads it; a mismatch marks the
manifest invalid, warns (``CacheRebuildWarning``, naming the file and chunk)
and rebuilds. ``vaebench data info`` checks a sample of chunks, ``vaebench data
verify`` all of them. Official files are checked the same way against the
chunk digests in their stamp (their full md5/sha256 is computed once).

Measured cost (Intel Xeon, 2 cores shared, 1 thread per core; page cache warm):
sha256 hashes 1.2 GB/s per core (blake2b 0.56, md5 0.53), and the check runs
on up to 4 threads (hashlib releases the GIL). Measured by
``benchmarks/perf/memory.py`` (results/perf/memory_cpu.md): the full check on
load takes 0.22 s (1-min load 2.7) to 0.85 s (load 5.7) for dSprites' 377 MB
bit-packed cache and 5.9 s (load 5.5) for 3D Shapes' 5.9 GB, against minutes
of training; building adds the same hashing once.

Training reads a cache by index with ``CacheReader`` (``os.preadv`` of the
rows, contiguous runs coalesced): nothing of the cache stays resident. A
memory map gathering random rows would be as fast, but the kernel maps the
pages around every fault (fault-around), so after a quick-suite run
(76,800 random images) the map's resident set is the whole file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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

from vaebench.atomic import atomic_path, atomic_write_text

__all__ = [
    "CACHE_FORMAT",
    "CacheReader",
    "CacheRebuildWarning",
    "Checksum",
    "ContentMismatch",
    "DatasetFileError",
    "FlatCache",
    "HASH_CHUNK",
    "chunk_digests",
    "KNOWN_CHECKSUMS",
    "OfficialFileMissingError",
    "data_root",
    "file_digest",
    "progress_bar",
    "verify_checksum",
    "write_stamp",
]

#: Bump when the cache or manifest layout changes; older caches are rebuilt.
#: 2: chunk hashes in the manifest; binary images bit-packed.
CACHE_FORMAT = 2
HASH_ALGORITHM = "sha256"
HASH_CHUNK = 4 << 20  # bytes per hashed chunk: a sampled check reads a few of these
HASH_THREADS = 4  # hashlib releases the GIL, so chunks hash in parallel


class DatasetFileError(ValueError):
    """A dataset file that is not what it should be (checksum, truncation, keys, shapes)."""


class OfficialFileMissingError(FileNotFoundError):
    """The official file is not in the data directory; the message says where to put it."""


class CacheRebuildWarning(UserWarning):
    """A cache failed its content check (or its manifest did not vouch for it) and is rebuilt."""


@dataclass(frozen=True)
class ContentMismatch:
    """The chunks of a file whose bytes differ from the recorded digests."""

    path: Path
    bad_chunks: tuple[int, ...]
    checked: int
    total: int
    expected: str  # the first bad chunk's recorded digest
    found: str
    recorded: str = "the cache's content hashes, recorded when it was built"

    def __str__(self) -> str:
        first = self.bad_chunks[0]
        start, stop = first * HASH_CHUNK, (first + 1) * HASH_CHUNK
        return (
            f"{self.path}: {len(self.bad_chunks)} of {self.checked} checked chunks (of {self.total}) "
            f"differ from {self.recorded}; first chunk {first} "
            f"(bytes {start:,}-{stop:,}): expected {HASH_ALGORITHM} {self.expected[:16]}..., "
            f"found {self.found[:16]}..."
        )


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
    # smallNORB's six matrices as the NYU server publishes them (gzipped), from tensorflow_datasets'
    # url_checksums/smallnorb.txt (sizes 131,896,188 / 348 / 71,052 / 130,799,817 / 347 / 10,428 bytes)
    "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz": Checksum(
        "sha256", "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873"
    ),
    "smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz": Checksum(
        "sha256", "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"
    ),
    "smallnorb-5x46789x9x18x6x2x96x96-training-info.mat.gz": Checksum(
        "sha256", "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32"
    ),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz": Checksum(
        "sha256", "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474"
    ),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz": Checksum(
        "sha256", "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"
    ),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz": Checksum(
        "sha256", "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2"
    ),
    # Cars3D: Reed et al.'s archive; md5 of the whole file from disent (dataset/data/_groundtruth__cars3d.py)
    "nips2015-analogy-data.tar.gz": Checksum("md5", "4e866a7919c1beedf53964e6f7a23686"),
    # MPI3D (Gondal et al. 2019): md5 of the whole files from disent (_groundtruth__mpi3d.py); the toy
    # one is also recorded by a second, independent loader
    "mpi3d_toy.npz": Checksum("md5", "55889cb7c7dfc655d6e0277beee88868"),
    "mpi3d_realistic.npz": Checksum("md5", "59a6225b88b635365f70c91b3e52f70f"),
    "mpi3d_real.npz": Checksum("md5", "0f33f609918fb5c97996692f91129802"),
    # "The_Scream.jpg" (scream_dsprites' painting) is deliberately absent: no checksum is documented
    # anywhere (disentanglement_lib downloads it from Wikimedia unchecked, and Wikimedia may replace the
    # file), so verification refuses it; see benchmarks/datasets/scream.py.
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
    return file_digests(path, algorithm, progress=progress)[0]


def file_digests(path: Path, algorithm: str, *, progress: bool = True) -> tuple[str, list[str]]:
    """``(hex digest of the whole file, sha256 of every HASH_CHUNK)`` in one read of the file."""
    hasher = hashlib.new(algorithm)
    chunks: list[str] = []
    size = path.stat().st_size
    with progress_bar(transfer=True, disable=not progress) as bar, path.open("rb") as f:
        task = bar.add_task(f"{algorithm} {path.name}", total=size)
        while block := f.read(HASH_CHUNK):
            hasher.update(block)
            chunks.append(hashlib.new(HASH_ALGORITHM, block).hexdigest())
            bar.advance(task, len(block))
    return hasher.hexdigest(), chunks


def chunk_count(size: int) -> int:
    return max(1, -(-size // HASH_CHUNK))


def chunk_digests(
    path: Path, chunks: Sequence[int] | None = None, *, threads: int = HASH_THREADS
) -> list[str]:
    """sha256 of the given ``HASH_CHUNK``-byte chunks of ``path`` (all by default), in that order.

    Each worker reads its chunk with ``os.pread`` into its own buffer, so at
    most ``threads`` chunks are in memory at once.
    """
    size = path.stat().st_size
    chunks = range(chunk_count(size)) if chunks is None else chunks
    fd = os.open(path, os.O_RDONLY)
    local = threading.local()

    def digest(i: int) -> str:
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(HASH_CHUNK)
        n = os.preadv(fd, [buf], i * HASH_CHUNK) if hasattr(os, "preadv") else _pread_into(fd, buf, i)
        return hashlib.new(HASH_ALGORITHM, memoryview(buf)[:n]).hexdigest()

    try:
        if threads <= 1 or len(chunks) <= 1:
            return [digest(i) for i in chunks]
        with ThreadPoolExecutor(min(threads, len(chunks))) as pool:
            return list(pool.map(digest, chunks))
    finally:
        os.close(fd)


def _pread_into(fd: int, buf: bytearray, chunk: int) -> int:
    data = os.pread(fd, len(buf), chunk * HASH_CHUNK)
    buf[: len(data)] = data
    return len(data)


def content_hash(digests: Sequence[str]) -> str:
    """One digest naming the whole content: sha256 over the chunk digests, tagged with the chunk size."""
    joined = hashlib.new(HASH_ALGORITHM, "".join(digests).encode()).hexdigest()
    return f"{HASH_ALGORITHM}/{HASH_CHUNK >> 20}MiB-chunks:{joined}"


def sample_chunks(total: int, sample: int | None, rng: np.random.Generator | None = None) -> list[int]:
    """All chunks (``sample`` None), or the first, the last and ``sample - 2`` random others."""
    if sample is None or sample >= total:
        return list(range(total))
    rng = rng or np.random.default_rng()
    middle = rng.choice(np.arange(1, total - 1), size=max(0, sample - 2), replace=False)
    return sorted({0, total - 1, *map(int, middle)})


def compare_chunks(
    path: Path,
    recorded: Sequence[str],
    sample: int | None = None,
    *,
    recorded_when: str = "the cache's content hashes, recorded when it was built",
) -> ContentMismatch | None:
    """Re-hash ``path``'s chunks (all, or a sample) against ``recorded``; None if all match."""
    total = chunk_count(path.stat().st_size)
    if total != len(recorded):
        return ContentMismatch(
            path, (min(total, len(recorded)),), total, total, "(no chunk)", "(size differs)"
        )
    chunks = sample_chunks(total, sample)
    found = chunk_digests(path, chunks)
    bad = [(i, f) for i, f in zip(chunks, found) if f != recorded[i]]
    if not bad:
        return None
    first, first_found = bad[0]
    return ContentMismatch(
        path, tuple(i for i, _ in bad), len(chunks), total, recorded[first], first_found, recorded_when
    )


def _stamp_path(path: Path, cache_dir: Path) -> Path:
    return cache_dir / f"{path.name}.verified.json"


def _file_identity(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verify_checksum(
    path: Path, expected: Checksum, cache_dir: Path, *, force: bool = False, progress: bool = True
) -> bool:
    """Check ``path`` against ``expected`` in full once; later, against the chunk digests of its stamp.

    The stamp is trusted only for a file of the same size and mtime, and even
    then every chunk is re-hashed with sha256 (official files are 28-268 MB:
    0.03-0.25 s), so a same-size corruption with its mtime put back is found
    too. Returns True if the file's full checksum was computed now, False if
    the stamp vouched. Raises DatasetFileError (naming the file, the expected
    and the found digest) on a mismatch, and removes the file's stamp then.
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
            and record.get("chunk_bytes") == HASH_CHUNK
            and isinstance(record.get("chunks"), list)
        ):
            mismatch = compare_chunks(
                path, record["chunks"], recorded_when="the chunk hashes recorded when the file was verified"
            )
            if mismatch is None:
                return False
            stamp.unlink(missing_ok=True)
            raise DatasetFileError(
                f"{mismatch}. The file changed after it was verified against {expected} (same size and "
                f"mtime, different bytes): it is corrupt; delete it and fetch it again."
            )
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


def write_stamp(path: Path, verified: Checksum, cache_dir: Path, chunks: list[str] | None = None) -> None:
    """Record that ``path``, as it is now (size, mtime, chunk digests), has checksum ``verified``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    record = {"file": str(path), "identity": _file_identity(path), **vars(verified)}
    record["chunks"] = chunk_digests(path) if chunks is None else chunks
    record["chunk_bytes"] = HASH_CHUNK
    record["verified_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_json_atomic(_stamp_path(path, cache_dir), record)


def _write_json_atomic(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


# -- the flat cache ------------------------------------------------------------
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

    @property
    def array_path(self) -> Path:
        return self.directory / f"{self.stem}.npy"

    @property
    def manifest_path(self) -> Path:
        return self.directory / f"{self.stem}.json"

    @property
    def lock_path(self) -> Path:
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
        _write_json_atomic(self.manifest_path, record)

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

    def load(self) -> np.ndarray:
        """The whole cache unpacked into memory, uint8 ``(N, C, H, W)`` (2.8 GiB for dSprites)."""
        reader = self.reader()
        out = np.empty(self.shape, dtype=np.uint8)
        for start in range(0, self.shape[0], PACK_ROWS):
            stop = min(start + PACK_ROWS, self.shape[0])
            out[start:stop] = reader.images(np.arange(start, stop))
        return out

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
        _write_json_atomic(self.manifest_path, record)
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
        return self.shape[0]

    def close(self) -> None:
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
