"""Checksums: the official files' known digests, chunked content hashes and verification stamps.

Official files are checked in full once against ``KNOWN_CHECKSUMS`` (md5 or
sha256, as their publishers give them); a stamp
``<root>/cache/<official file>.verified.json`` then records their size, mtime
and the sha256 of every ``HASH_CHUNK`` bytes, so a later check re-hashes the
chunks (0.03-0.25 s) instead of the whole digest, and still finds a same-size
corruption with its mtime put back.

The same chunk digests name a cache's content (``content_hash``, recorded in
its manifest and in every run's provenance; see ``cache``). sha256 is the
fastest hashlib digest here thanks to SHA-NI: 1.2 GB/s per core (blake2b 0.56,
md5 0.53), and chunks hash on up to 4 threads (hashlib releases the GIL).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaebench.atomic import atomic_write_text

from .errors import DatasetFileError
from .progress import progress_bar

__all__ = [
    "HASH_ALGORITHM",
    "HASH_CHUNK",
    "KNOWN_CHECKSUMS",
    "Checksum",
    "ContentMismatch",
    "chunk_count",
    "chunk_digests",
    "compare_chunks",
    "content_hash",
    "file_digest",
    "file_digests",
    "sample_chunks",
    "verify_checksum",
    "write_json_atomic",
    "write_stamp",
]

HASH_ALGORITHM = "sha256"
HASH_CHUNK = 4 << 20  # bytes per hashed chunk: a sampled check reads a few of these
HASH_THREADS = 4  # hashlib releases the GIL, so chunks hash in parallel


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
    """The number of ``HASH_CHUNK``-byte chunks of a file of ``size`` bytes (at least 1)."""
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
    write_json_atomic(_stamp_path(path, cache_dir), record)


def write_json_atomic(path: Path, record: dict) -> None:
    """Write ``record`` as sorted, indented JSON, atomically."""
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
