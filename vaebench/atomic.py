"""The one atomic write: every record, table, figure, checkpoint, stamp and artifact goes through it.

A file is written beside its destination under a unique temporary name
(``mkstemp``, so two processes writing the same path never share one), flushed
and fsynced, given the mode an ordinary ``open`` would give it (0666 less the
umask, not mkstemp's 0600, so a shared results directory stays readable to
colleagues), and renamed into place. Readers see the old file or the new one,
never half of either; a crash leaves at most a ``.<name>.*.tmp`` beside it. A
write that fails on a full disk or a read-only directory says so
(``write_failure``), so the CLI can tell the user instead of printing a traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from vaebench.errors import DiskFullError, UnwritableError

__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_file_mode",
    "write_failure",
]


def default_file_mode() -> int:
    """0666 less the process umask: the mode ``open(path, "w")`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temporary path beside ``path``, renamed onto it on a clean exit.

    To fill by name (a memory map, a download); on a clean exit it is fsynced, given the ordinary mode
    and renamed onto ``path``, on an error removed. A write that fails for want of space raises
    ``DiskFullError``, one refused by a read-only or forbidden directory ``UnwritableError`` (see
    ``write_failure``), each from the original error.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise (write_failure(exc, path) or exc) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        failure = write_failure(exc, path)  # before the unlink, which frees the space it took
        tmp.unlink(missing_ok=True)
        if failure is not None:
            raise failure from exc
        raise
    _fsync_directory(path.parent)


#: Below this many free bytes a write that failed without an errno (torch's "unexpected pos") is
#: taken to have run out of space.
NEARLY_FULL = 1 << 20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)


def write_failure(exc: BaseException, path: Path) -> DiskFullError | UnwritableError | None:
    """What a failed write of ``path`` means to the user.

    ``DiskFullError`` (no space left), ``UnwritableError`` (a directory that refuses writes), or None
    (something else, raised as it is).
    """
    codes = set()
    seen: BaseException | None = exc
    while seen is not None and len(codes) < 16:  # the error and what it was raised from
        if isinstance(seen, (DiskFullError, UnwritableError)):
            return None  # already said
        if isinstance(seen, OSError) and seen.errno is not None:
            codes.add(seen.errno)
        seen = seen.__cause__ or seen.__context__
    if codes & set(_NO_SPACE) or (not codes and isinstance(exc, Exception) and _nearly_full(path)):
        return DiskFullError(_device_of(path), str(path))
    refused = codes & set(_REFUSED)
    if refused:
        return UnwritableError(
            f"cannot write {path}: {os.strerror(refused.pop())}",
            str(path),
        )
    return None


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(_existing(path.parent)).free < NEARLY_FULL
    except OSError:
        return False


def _device_of(path: Path) -> str:
    """The file system holding ``path``: its mount point, and the device mounted there when known."""
    point = _existing(Path(os.path.abspath(path)))
    try:
        device = point.stat().st_dev
        while point != point.parent and point.parent.stat().st_dev == device:
            point = point.parent
    except OSError:
        return str(point)
    try:
        with open("/proc/self/mounts") as mounts:
            sources = {f[1]: f[0] for f in (line.split() for line in mounts) if len(f) > 1}
    except OSError:
        sources = {}
    source = sources.get(str(point))
    return f"{point} ({source})" if source else str(point)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync it, and rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the path written."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, written atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: some filesystems refuse to open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
