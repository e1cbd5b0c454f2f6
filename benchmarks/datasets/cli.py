"""``vaebench data``: inspect, prepare, fetch, verify and look at the ground-truth datasets.

The main ``vaebench`` app mounts ``data_app`` as ``vaebench data``::

    vaebench data info dsprites
    vaebench data prepare shapes3d --source procedural
    vaebench data fetch dsprites
    vaebench data verify dsprites
    vaebench data show shapes3d --out shapes3d.png
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from vaebench.errors import UserError

from .cache import FlatCache
from .checksums import verify_checksum
from .dataset import GroundTruthDataset
from .errors import DatasetFileError, OfficialFileMissingError
from .official import fetch_file
from .registry import get_dataset_class, list_datasets
from .sources import SOURCES

__all__ = ["data_app"]

data_app = typer.Typer(
    help="Ground-truth datasets (dsprites, shapes3d): info, prepare, fetch, verify, show.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)  # errors and warnings: stdout stays the command's output

_SOURCE_HELP = f"where images come from: {', '.join(SOURCES)} (auto: official if present and verified)"
NameArg = Annotated[str, typer.Argument(help="dataset name (see `vaebench data list`)")]
SourceOpt = Annotated[str, typer.Option(help=_SOURCE_HELP)]
RootOpt = Annotated[
    Path | None, typer.Option(help="data directory (default: $VAEBENCH_DATA or ~/.cache/vaebench)")
]


class BadInput(UserError, ValueError):
    """A command-line value that is not one of the valid ones (exit code 2, like an unknown name)."""


@contextmanager
def _friendly_errors():
    """Known failures become a one-line message on stderr and a non-zero exit code, not a traceback.

    Exit 2: bad input (an unknown dataset, a source that does not exist), the
    message naming the bad value and the valid ones. Exit 1: a dataset file or
    cache that is missing or wrong, or no network. Warnings raised meanwhile
    (a cache rebuilt, and why) are printed to stderr too.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except (DatasetFileError, OfficialFileMissingError, ConnectionError) as exc:
            _print_error(exc)
            raise typer.Exit(1) from None
        except UserError as exc:  # an unknown name, a bad value
            _print_error(exc)
            raise typer.Exit(2) from None
        finally:
            for warning in caught:
                err_console.print(
                    f"[yellow]warning:[/yellow] {warning.message}", highlight=False, soft_wrap=True
                )


def _print_error(exc: BaseException) -> None:
    err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)


def _dataset(name: str, source: str, root: Path | None) -> GroundTruthDataset:
    cls = get_dataset_class(name)
    if source not in SOURCES:
        raise BadInput(f"--source {source!r} is not a source; use one of {', '.join(SOURCES)}")
    return cls(source=source, root=root)


@data_app.command("list")
def list_command(pattern: Annotated[str, typer.Argument(help="shell-style wildcard")] = "*") -> None:
    """List the registered datasets."""
    for name in list_datasets(pattern):
        cls = get_dataset_class(name)
        sizes = ", ".join(f"{n} {s}" for n, s in zip(cls.factor_names, cls.factor_sizes))
        console.print(f"{name}: {sizes}")


@data_app.command()
def info(
    name: NameArg,
    source: SourceOpt = "auto",
    root: RootOpt = None,
) -> None:
    """Factors, shapes, files and caches of a dataset (reads nothing big, builds nothing)."""
    with _friendly_errors():
        ds = _dataset(name, source, root)
        lines = [
            f"[bold]{ds.name}[/bold]: {len(ds):,} images {ds.observation_shape}, likelihood {ds.likelihood}",
            "factors: " + ", ".join(f"{n} ({s})" for n, s in zip(ds.factor_names, ds.factor_sizes)),
            f"data root: {ds.root}",
        ]
        for official in ds.official_files:
            lines += [f"official file {_file_state(ds, official, name)}" for name in official.files]
            lines.append(f"  its cache: {_cache_state(ds.official_cache(official))}")
        lines += [f"needed file {_file_state(ds, asset, asset.filename)}" for asset in ds.assets]
        official_ready = ds.find_official_file() is not None or any(
            ds.official_cache(f).is_valid() for f in ds.official_files
        )
        if ds.generator_version is None:
            lines.append(
                f"procedural generator: none. {ds.name} exists only as its official files; "
                "--source procedural is refused and --source auto uses the official files or nothing"
            )
        else:
            lines.append(
                f"procedural generator v{ds.generator_version}: {_cache_state(ds.procedural_cache())}"
            )
            auto = "official (once verified)" if official_ready else "procedural"
            lines.append(f"--source auto uses: {auto}")
        if ds.stochastic_observations:
            lines.append(
                f"observations: drawn per observation from the stored images {ds.grid.names} "
                "(the same factors give a different image each time)"
            )
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)


def _file_state(ds: GroundTruthDataset, official, filename: str) -> str:
    """``name: present|absent (expects <checksum>; <url>)``; an unknown checksum is said, not raised."""
    state = "present" if (ds.root / filename).is_file() else "absent"
    try:
        expects = f"expects {official.checksum_of(filename)}"
    except DatasetFileError:
        expects = "NO KNOWN CHECKSUM, so it cannot be verified and is refused"
    return f"{filename}: {state} ({expects}; {official.url_of(filename)})"


def _cache_state(cache: FlatCache, sample: int = 8) -> str:
    """Built or not, and a content check of ``sample`` chunks (``verify`` checks them all)."""
    problem = cache.problem()
    if problem == "not built":
        return f"not built ({cache.array_path})"
    if problem is not None:
        return f"not valid, rebuilt on the next prepare: {problem} ({cache.array_path})"
    manifest = cache.manifest()
    mismatch = cache.check_content(sample=sample)
    if mismatch is not None:
        return f"CORRUPT, rebuilt on the next prepare: {mismatch}"
    size = manifest["file_size"] / 2**30
    layout = "bit-packed" if manifest.get("packed") else "uint8"
    checked = min(sample, len(manifest["chunks"]))
    return (
        f"ready, {size:.2f} GiB {layout}, built in {manifest.get('build_seconds', '?')} s; "
        f"{checked} of {len(manifest['chunks'])} chunks checked against its content hash "
        f"(all are checked on load and by `vaebench data verify`) ({cache.array_path})"
    )


@data_app.command()
def prepare(
    name: NameArg,
    source: SourceOpt = "auto",
    root: RootOpt = None,
    rebuild: Annotated[bool, typer.Option(help="rebuild the cache even if a valid one exists")] = False,
) -> None:
    """Build the flat image cache (convert the official file or generate procedurally)."""
    with _friendly_errors():
        ds = _dataset(name, source, root)
        started = time.perf_counter()
        ds.prepare(rebuild=rebuild)
        elapsed = time.perf_counter() - started
        console.print(f"{ds.name}: {ds.source} images ready in {elapsed:.1f} s")
        for key, value in ds.provenance().items():
            console.print(f"  {key}: {value}")


@data_app.command()
def fetch(
    name: NameArg,
    root: RootOpt = None,
    timeout: Annotated[float, typer.Option(help="network timeout in seconds")] = 10.0,
) -> None:
    """Download the official file(s) into the data directory (verified, then renamed into place)."""
    with _friendly_errors():
        ds = _dataset(name, "official", root)
        if not ds.official_files and not ds.assets:
            raise UserError(f"{ds.name} has no official file to fetch")
        # the files read when observing first (scream's painting), then the first official set
        wanted = [(asset, asset.filename) for asset in ds.assets]
        wanted += [(ds.official_files[0], f) for f in ds.official_files[0].files] if ds.official_files else []
        for official, filename in wanted:
            destination, checksum = ds.root / filename, official.checksum_of(filename)
            if destination.is_file():
                verify_checksum(destination, checksum, ds.cache_dir)
                console.print(f"{destination} is already here and verified")
                continue
            fetch_file(official.url_of(filename), destination, checksum, ds.cache_dir, timeout=timeout)
            console.print(f"fetched and verified {destination}")


def _verify_cache_content(cache, name: str) -> None:
    """Check every chunk of a built cache against its content hash; a mismatch marks it invalid."""
    mismatch = cache.check_content()  # no lock: a read-only data directory can be verified
    if mismatch is not None:
        with cache.lock():  # rechecked under the lock: a build may have just replaced it
            if cache.is_valid():
                mismatch = cache.check_content()
                if mismatch is not None:
                    cache.invalidate(str(mismatch))
    if mismatch is not None:
        raise DatasetFileError(
            f"{mismatch}. The cache is marked invalid; `vaebench data prepare {name}` (or the next run) "
            "rebuilds it."
        )
    console.print(f"{cache.array_path}: every chunk matches its content hash")


@data_app.command()
def verify(
    name: NameArg,
    source: SourceOpt = "auto",
    root: RootOpt = None,
    samples: Annotated[
        int, typer.Option(help="procedural: images re-rendered and compared with the cache")
    ] = 64,
    seed: Annotated[int, typer.Option(help="which images to compare")] = 0,
) -> None:
    """Re-check a dataset's official file and cache, building nothing.

    The official file's checksum, every chunk of the cache against its content hash, and (procedural)
    re-rendered samples against the cache. A corrupt cache is marked invalid; a cache not yet built is
    not built (``prepare`` does that).
    """
    with _friendly_errors():
        ds = _dataset(name, source, root)
        found = ds.find_official_file()
        if found is not None and source != "procedural":
            official, path = found
            for filename in official.files:  # the file and its companions
                verify_checksum(
                    path.parent / filename, official.checksum_of(filename), ds.cache_dir, force=True
                )
            official.check(path, ds)
            console.print(f"{path}: checksum ({official.checksum}) and layout OK")
        for asset in ds.assets:
            verify_checksum(ds.root / asset.filename, asset.checksum, ds.cache_dir, force=True)
            asset.check(ds.root / asset.filename, ds)
            console.print(f"{ds.root / asset.filename}: checksum ({asset.checksum}) and content OK")
        caches = [ds.official_cache(f) for f in ds.official_files] if source != "procedural" else []
        if source != "official" and ds.generator_version is not None:
            caches.append(ds.procedural_cache())
        built = [cache for cache in caches if cache.is_valid()]
        for cache in built:
            _verify_cache_content(cache, ds.name)
        if not built:  # verify checks what exists; building a cache (GBs for 3D Shapes) is prepare's job
            console.print(
                f"{ds.name}: no {source if source != 'auto' else ''} cache is built under {ds.cache_dir}, so "
                f"there is none to verify; `vaebench data prepare {ds.name}` builds one."
            )
            return
        ds.prepare()  # opens the cache just verified
        console.print(f"{ds.name}: using the {ds.source} cache {ds.provenance()['cache']}")
        if ds.source == "procedural":
            rng = np.random.default_rng(seed)
            factors = ds.sample_factors(samples, rng)
            cached, fresh = ds.images(factors).astype(np.int16), ds.render(factors).astype(np.int16)
            worst = int(np.abs(cached - fresh).max(initial=0))
            if worst > 1:  # float reductions may round a pixel the other way, never more
                ds.procedural_cache().invalidate(f"re-rendered images differ by up to {worst} grey levels")
                raise DatasetFileError(
                    f"{ds.provenance()['cache']}: {samples} re-rendered images differ from the cache "
                    f"by up to {worst} grey levels (the generator changed without a new version?). "
                    f"The cache is marked invalid; `vaebench data prepare {ds.name}` rebuilds it."
                )
            console.print(f"{samples} re-rendered images match the cache (max difference {worst})")


@data_app.command()
def show(
    name: NameArg,
    source: SourceOpt = "auto",
    root: RootOpt = None,
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: <name>-<source>.png here)")] = None,
    seed: Annotated[int, typer.Option(help="random samples and traversal base point")] = 0,
    steps: Annotated[int, typer.Option(help="images per factor traversal (evenly spaced values)")] = 10,
) -> None:
    """Write a PNG: random samples, then one traversal per factor."""
    with _friendly_errors():
        ds = _dataset(name, source, root).prepare()
        path = out or Path(f"{ds.name}-{ds.source}.png")
        write_overview(ds, path, seed=seed, steps=steps)
        console.print(f"wrote {path}")


def _observed(ds: GroundTruthDataset, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``(n, C, H, W)`` as a model sees them: drawn observations where they are random."""
    if not ds.stochastic_observations:
        return ds.images(factors)
    return (np.asarray(ds.sample_observations_from_factors(factors, rng)) * 255).round().astype(np.uint8)


def write_overview(ds: GroundTruthDataset, path: Path, *, seed: int = 0, steps: int = 10) -> None:
    """PNG of 2 x ``steps`` random samples and, per factor, ``steps`` values with the others fixed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    rows: list[tuple[str, np.ndarray]] = []
    samples = _observed(ds, ds.sample_factors(2 * steps, rng), rng)
    rows += [("random", samples[:steps]), ("random", samples[steps:])]
    base = ds.sample_factors(1, rng)[0]
    for j, (factor, size) in enumerate(zip(ds.factor_names, ds.factor_sizes)):
        values = np.unique(np.linspace(0, size - 1, min(steps, size)).round().astype(np.int64))
        factors = np.repeat(base[None], len(values), axis=0)
        factors[:, j] = values
        rows.append((f"{factor} ({size})", _observed(ds, factors, rng)))

    fig, axes = plt.subplots(len(rows), steps, figsize=(steps * 1.1, len(rows) * 1.15), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(steps):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                image = images[c].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{ds.name} ({ds.source})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
