"""Where a dataset's images come from: the data directory, official files, and preparing a source.

Layout under the data root (``$VAEBENCH_DATA``, default ``~/.cache/vaebench``,
or the ``root`` argument)::

    <root>/<official file>                      e.g. 3dshapes.h5, put there by hand or by `fetch`
    <root>/cache/<official file>.verified.json  checksum stamp (see ``checksums``)
    <root>/cache/<stem>.npy, .json, .lock       the flat image caches (see ``cache``)

A dataset's images come from one flat cache, built from whichever source was
chosen (``SOURCES``):

* ``"official"`` - the file published by the dataset's authors, verified by
  checksum and converted once (``OfficialFile`` says how to read it);
* ``"procedural"`` - generated here, deterministically, keyed by a generator
  version so that a change to the generator rebuilds the cache;
* ``"auto"`` (default) - official when present and verified, else procedural.

``PREPARERS[source](dataset, rebuild)`` resolves the source and makes its
cache valid (built, or checked in full); it returns what it used
(``Prepared``), and ``GroundTruthDataset.prepare`` records it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .cache import FlatCache
from .checksums import KNOWN_CHECKSUMS, Checksum, verify_checksum
from .errors import CacheRebuildWarning, DatasetFileError, OfficialFileMissingError

if TYPE_CHECKING:
    from .dataset import GroundTruthDataset

__all__ = [
    "PREPARERS",
    "SOURCES",
    "OfficialFile",
    "Prepared",
    "data_root",
    "ensure_cache",
    "prepare_auto",
    "prepare_official",
    "prepare_procedural",
]

SOURCES = ("auto", "official", "procedural")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data directory: ``root`` if given, else ``$VAEBENCH_DATA``, else ``~/.cache/vaebench``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("VAEBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaebench"


@dataclass(frozen=True)
class OfficialFile:
    """A file the dataset's authors published, and how to read it.

    ``check(path, dataset)`` inspects keys, shapes and dtypes without reading
    the pixels and raises DatasetFileError naming what it expected and found;
    ``convert(path, dataset, out, progress)`` writes every image into ``out``
    ``(N, C, H, W)`` uint8 at its flat index. ``companions`` are further files
    published beside it (same URL directory, own checksums) that ``check`` and
    ``convert`` read too (smallnorb's six matrices).
    """

    filename: str
    url: str
    check: Callable[[Path, GroundTruthDataset], None]
    convert: Callable[[Path, GroundTruthDataset, np.ndarray, bool], None]
    companions: tuple[str, ...] = ()

    @property
    def checksum(self) -> Checksum:
        """The expected checksum of the main file."""
        return self.checksum_of(self.filename)

    @property
    def files(self) -> tuple[str, ...]:
        """The main file and its companions, by name."""
        return (self.filename, *self.companions)

    def url_of(self, filename: str) -> str:
        """Where ``filename`` is downloaded from (companions sit beside the main file's URL)."""
        return self.url if filename == self.filename else f"{self.url.rsplit('/', 1)[0]}/{filename}"

    def checksum_of(self, filename: str) -> Checksum:
        """The expected checksum of ``filename``; DatasetFileError when none is known."""
        try:
            return KNOWN_CHECKSUMS[filename]
        except KeyError:
            raise DatasetFileError(f"no known checksum for {filename!r}; cannot verify it") from None


class Prepared(NamedTuple):
    """What a source's preparation used: the valid cache, the source, and its provenance details."""

    cache: FlatCache
    source: str
    details: dict


def ensure_cache(
    dataset: GroundTruthDataset,
    cache: FlatCache,
    fill: Callable[[np.ndarray], None],
    rebuild: bool,
    *,
    extra: dict | None = None,
    before_build: Callable[[], None] | None = None,
) -> None:
    """Make ``cache`` valid: check its content in full, rebuild it if needed.

    A complete cache whose content matches its manifest is used without a lock
    (so a shared, read-only data directory works); only a build takes the
    lock. One process builds; the others wait on the lock and then find the
    cache valid. A cache that exists but fails a check is rebuilt with a
    ``CacheRebuildWarning`` saying why (which file, which chunk, what differs).
    """
    if not rebuild and cache.is_valid() and cache.check_content() is None:
        return  # complete and verified: read it as it is (a build renames its files in whole)
    with cache.lock():  # rechecked under the lock: another process may have built it meanwhile
        reason = "a rebuild was asked for" if rebuild else cache.problem()
        if reason is None:
            mismatch = cache.check_content()
            if mismatch is None:
                return
            reason = str(mismatch)
            cache.invalidate(reason)
        if not rebuild and (cache.array_path.exists() or cache.manifest_path.exists()):
            warnings.warn(
                CacheRebuildWarning(f"rebuilding the {dataset.name} cache {cache.array_path}: {reason}"),
                stacklevel=5,
            )
        if before_build is not None:
            before_build()
        cache.build(fill, extra=extra)


def prepare_official(dataset: GroundTruthDataset, rebuild: bool) -> Prepared:
    """The official file, verified and converted once; or a cache converted earlier from one."""
    found = dataset.find_official_file()
    if found is None:
        # A valid cache converted earlier from a verified official file is enough.
        for official in dataset.official_files:
            cache = dataset.official_cache(official)
            if cache.is_valid() and not rebuild:
                mismatch = cache.check_content()  # no lock: reading a complete cache needs none
                if mismatch is None:
                    return Prepared(
                        cache,
                        "official",
                        {"official_file": official.filename, "checksum": str(official.checksum)},
                    )
                cache.invalidate(str(mismatch))
                warnings.warn(
                    CacheRebuildWarning(
                        f"the {dataset.name} cache {cache.array_path} is corrupt and there is no official "
                        f"file to rebuild it from: {mismatch}"
                    ),
                    stacklevel=4,
                )
        raise OfficialFileMissingError(dataset.missing_official_message())
    official, path = found
    cache = dataset.official_cache(official)
    verify_checksum(path, official.checksum, dataset.cache_dir, progress=dataset.progress)
    ensure_cache(
        dataset,
        cache,
        lambda out: official.convert(path, dataset, out, dataset.progress),
        rebuild,
        extra={"source_path": str(path)},
        before_build=lambda: official.check(path, dataset),
    )
    return Prepared(cache, "official", {"official_file": str(path), "checksum": str(official.checksum)})


def prepare_procedural(dataset: GroundTruthDataset, rebuild: bool) -> Prepared:
    """The images generated here, cached under the generator's version."""
    if dataset.generator_version is None:  # smallnorb, cars3d, mpi3d: nothing here can make their images
        raise OfficialFileMissingError(
            f"{dataset.name} has no procedural generator; only its official files hold its images. "
            + dataset.missing_official_message()
        )
    cache = dataset.procedural_cache()
    ensure_cache(dataset, cache, lambda out: dataset.generate(out, dataset.progress), rebuild)
    return Prepared(cache, "procedural", {"generator_version": dataset.generator_version})


def prepare_auto(dataset: GroundTruthDataset, rebuild: bool) -> Prepared:
    """Official when present and verified, else procedural (with a warning saying why)."""
    if dataset.generator_version is None:  # no procedural fallback to fall back on
        return prepare_official(dataset, rebuild)
    official_ready = dataset.find_official_file() is not None or any(
        dataset.official_cache(f).is_valid() for f in dataset.official_files
    )
    if official_ready:
        try:
            return prepare_official(dataset, rebuild)
        except (DatasetFileError, OfficialFileMissingError) as exc:
            warnings.warn(f"{exc}\nFalling back to the procedural {dataset.name}.", stacklevel=3)
    return prepare_procedural(dataset, rebuild)


PREPARERS: dict[str, Callable[[GroundTruthDataset, bool], Prepared]] = {
    "auto": prepare_auto,
    "official": prepare_official,
    "procedural": prepare_procedural,
}
