"""Reading official files and downloading them.

Shared by the dataset modules: streaming an array out of an ``.npz`` without
loading it whole (and without unpickling anything), checking an array's
shape and dtype against what the grid expects, mapping float factor labels to
indices, placing rows at their flat indices, and ``fetch`` (urllib + rich,
short timeout, verified, atomic rename).
"""

from __future__ import annotations

import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from vaebench.atomic import atomic_path

from .checksums import Checksum, file_digest, write_stamp
from .errors import DatasetFileError
from .grid import FactorGrid
from .progress import progress_bar

__all__ = [
    "NpzMember",
    "check_array",
    "fetch_file",
    "h5_member",
    "labels_to_indices",
    "rows_to_flat_indices",
    "write_rows",
]

CHUNK_IMAGES = 8192  # images read per step while converting (~100 MB of RGB 64x64)


def check_array(path: Path, key: str, shape: tuple, dtype_kind: str, found_shape: tuple, found_dtype) -> None:
    """Refuse ``path`` unless ``key`` has ``shape`` and a dtype of kind ``dtype_kind`` ("u", "i", "f")."""
    kinds = {"u": "unsigned integer", "i": "integer", "f": "float"}
    dtype = np.dtype(found_dtype)
    dtype_ok = dtype.kind == dtype_kind or (dtype_kind == "i" and dtype.kind in "iu")
    if tuple(found_shape) != tuple(shape) or not dtype_ok:
        raise DatasetFileError(
            f"{path}: {key!r} should be {kinds[dtype_kind]} shaped {tuple(shape)}; "
            f"found {dtype} shaped {tuple(found_shape)}"
        )


def check_keys(path: Path, found: Sequence[str], required: Sequence[str]) -> None:
    missing = [k for k in required if k not in found]
    if missing:
        raise DatasetFileError(
            f"{path}: missing key(s) {', '.join(map(repr, missing))}; "
            f"expected {', '.join(map(repr, required))}; "
            f"found {', '.join(map(repr, sorted(found))) or 'none'}"
        )


class NpzMember:
    """One ``.npy`` array inside an ``.npz``, read sequentially in row chunks.

    ``np.load`` would decompress the whole (3 GB) dSprites ``imgs`` at once;
    this reads the header, then rows on demand. Object arrays (the pickled
    ``metadata``) are never touched, so nothing is unpickled.
    """

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        try:
            self._zip = zipfile.ZipFile(path)
            self._file = self._zip.open(f"{key}.npy")
            version = np.lib.format.read_magic(self._file)
            header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }
            self.shape, fortran, self.dtype = header[version](self._file)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise DatasetFileError(f"{path}: cannot read array {key!r}: {type(exc).__name__}: {exc}") from exc
        if fortran or self.dtype.hasobject:
            raise DatasetFileError(
                f"{path}: {key!r} is stored {'Fortran-ordered' if fortran else 'as objects'}"
            )
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    @staticmethod
    def keys(path: Path) -> list[str]:
        """The arrays a ``.npz`` file holds, by name; DatasetFileError when it is not a readable zip."""
        try:
            with zipfile.ZipFile(path) as zf:
                return [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetFileError(f"{path}: not a readable .npz (zip) file: {exc}") from exc

    def iter_rows(self, chunk: int = CHUNK_IMAGES) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, rows)`` in file order, ``rows`` shaped ``(n, *shape[1:])``."""
        for start in range(0, self.shape[0], chunk):
            n = min(chunk, self.shape[0] - start)
            try:
                raw = self._file.read(n * self._row_bytes)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DatasetFileError(f"{self.path}: {self.key!r} is corrupt at row {start}: {exc}") from exc
            if len(raw) != n * self._row_bytes:
                raise DatasetFileError(
                    f"{self.path}: {self.key!r} is truncated: expected {self.shape[0]} rows, "
                    f"the data end within row {start + len(raw) // self._row_bytes}"
                )
            yield start, np.frombuffer(raw, dtype=self.dtype).reshape(n, *self.shape[1:])

    def read(self) -> np.ndarray:
        """The whole member as one array of its stored shape and dtype."""
        return (
            np.concatenate([rows for _, rows in self.iter_rows()]) if self.shape[0] else np.empty(self.shape)
        )

    def close(self) -> None:
        """Close the member and its zip file."""
        self._file.close()
        self._zip.close()

    def __enter__(self) -> NpzMember:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def h5_member(path: Path, handle: h5py.File, key: str) -> h5py.Dataset:
    """``handle[key]`` or a DatasetFileError naming the keys the file does have."""
    if key not in handle or not isinstance(handle[key], h5py.Dataset):
        found = []
        handle.visit(lambda name: found.append(name) if isinstance(handle[name], h5py.Dataset) else None)
        raise DatasetFileError(
            f"{path}: missing dataset {key!r}; found {', '.join(map(repr, found)) or 'none'}"
        )
    return handle[key]


def open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetFileError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc


def iter_h5_rows(
    path: Path, dataset: h5py.Dataset, chunk: int = CHUNK_IMAGES
) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, dataset.shape[0], chunk):
        try:
            yield start, dataset[start : start + chunk]
        except (OSError, ValueError) as exc:
            raise DatasetFileError(f"{path}: {dataset.name!r} is corrupt near row {start}: {exc}") from exc


def labels_to_indices(
    path: Path, labels: np.ndarray, values: Sequence[np.ndarray], names: Sequence[str]
) -> np.ndarray:
    """Factor value labels ``(N, F)`` float -> indices ``(N, F)`` int64 of the nearest official value.

    Labels are floats written by someone else's code (0.1 * k, linspace ...),
    so equality would be fragile: each label goes to its nearest value, and a
    label farther than a quarter of the spacing from every value is refused.
    """
    indices = np.empty(labels.shape, dtype=np.int64)
    for j, (name, vals) in enumerate(zip(names, values)):
        vals = np.asarray(vals, dtype=np.float64)
        column = labels[:, j].astype(np.float64)
        nearest = np.argmin(
            np.abs(column[:, None] - vals[None, :]), axis=1
        )  # (N,); a factor has <= 40 values
        spacing = np.min(np.diff(vals)) if len(vals) > 1 else 1.0
        bad = np.flatnonzero(~(np.abs(column - vals[nearest]) <= 0.25 * spacing))
        if bad.size:
            raise DatasetFileError(
                f"{path}: label of factor {name!r} in row {int(bad[0])} is {float(column[bad[0]])!r}, "
                f"not one of its {len(vals)} values {np.round(vals, 4).tolist()}"
            )
        indices[:, j] = nearest
    return indices


def rows_to_flat_indices(path: Path, grid: FactorGrid, factors: np.ndarray) -> np.ndarray:
    """Flat grid index of every row of a file, checked to cover each grid point exactly once."""
    try:
        flat = grid.factors_to_indices(factors)
    except ValueError as exc:
        raise DatasetFileError(f"{path}: {exc}") from exc
    counts = np.bincount(flat, minlength=grid.num_total)
    if not np.all(counts == 1):
        missing, repeated = int(np.sum(counts == 0)), int(np.sum(counts > 1))
        raise DatasetFileError(
            f"{path}: rows should cover each of the {grid.num_total:,} factor combinations once; "
            f"found {missing:,} missing and {repeated:,} repeated"
        )
    return flat


def write_rows(out: np.ndarray, flat: np.ndarray, start: int, images: np.ndarray) -> None:
    """Store file rows ``start ...`` (images already (n, C, H, W) uint8) at their flat indices."""
    targets = flat[start : start + len(images)]
    if targets.size and targets[-1] - targets[0] == len(images) - 1 and np.all(np.diff(targets) == 1):
        out[targets[0] : targets[-1] + 1] = images  # the official files are already in grid order
    else:
        out[targets] = images


def fetch_file(
    url: str,
    destination: Path,
    checksum: Checksum,
    cache_dir: Path,
    *,
    timeout: float = 10.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``destination``: progress bar, verify, then rename atomically.

    The bytes go to a temp file beside ``destination``, which is hashed and only
    then renamed onto it, so a failed or interrupted download leaves nothing
    under the official name. Fails within about ``timeout`` seconds when there
    is no network, with a message saying where to put the file by hand.
    """
    with atomic_path(destination) as tmp:  # renamed onto the official name only once verified
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as f:
                total = int(response.headers.get("Content-Length") or 0) or None
                with progress_bar(transfer=True, disable=not progress) as bar:
                    task = bar.add_task(f"downloading {destination.name}", total=total)
                    while block := response.read(1 << 20):
                        f.write(block)
                        bar.advance(task, len(block))
        except OSError as exc:  # URLError, timeouts and connection errors are all OSErrors
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(
                f"could not download {url}: {reason}. Put the file there by hand as {destination} "
                f"(expected {checksum}), or, for a dataset with a generator (dSprites, 3D Shapes), "
                "use --source procedural."
            ) from exc
        found = file_digest(tmp, checksum.algorithm, progress=progress)
        if found != checksum.hexdigest:
            raise DatasetFileError(
                f"{url}: the download does not match: expected {checksum}, found {checksum.algorithm} {found}"
            )
    write_stamp(destination, checksum, cache_dir)
    return destination
