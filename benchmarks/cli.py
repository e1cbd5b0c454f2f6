"""The ``vaebench`` command line: list, data, run, table, plot, export, analyze, eval.

Bad input exits with status 2 and a message naming the bad value and what
would be accepted; a sweep with failed runs exits with status 1 and lists them;
an interrupted sweep exits with 130 and resumes when rerun.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="vaebench",
    help="Disentanglement benchmarking: train the VAE zoo on ground-truth data, score it, tabulate it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
list_app = typer.Typer(
    help="List registered models, metrics, datasets, and shipped suites.", no_args_is_help=True
)
app.add_typer(list_app, name="list")

console = Console()
err_console = Console(stderr=True)

DEFAULT_OUT = Path("results")


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _user_errors():
    """The exceptions that mean bad input (exit 2) rather than a bug."""
    from benchmarks.runner.records import RecordError
    from benchmarks.runner.suite import SuiteError
    from vae_zoo import CheckpointError, ConfigError
    from vaebench.registry import UnknownNameError

    return (
        UnknownNameError,
        SuiteError,
        ConfigError,
        CheckpointError,
        RecordError,
        PermissionError,
        ValueError,
    )


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        fail(f"expected a comma-separated list; got {value!r}")
    return items


# -- list ----------------------------------------------------------------------
@list_app.command("models")
def list_models_cmd() -> None:
    """Registered model variants (built-in and plug-ins), one per line with a description."""
    from vae_zoo import describe_model, list_models

    for name in list_models():
        typer.echo(f"{name:<14} {describe_model(name)}")


@list_app.command("suites")
def list_suites_cmd() -> None:
    """Benchmark suites shipped with vaebench (a path to your own TOML works wherever a name does)."""
    from benchmarks.runner.suite import list_suites, load_suite

    for name in list_suites():
        typer.echo(f"{name:<8} {load_suite(name).description}")


@list_app.command("metrics")
def list_metrics_cmd() -> None:
    """Registered disentanglement metrics."""
    from metrics import get_metric, list_metrics

    for name in list_metrics():
        doc = (get_metric(name).function.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:<24} {doc[0] if doc else ''}")


@list_app.command("datasets")
def list_datasets_cmd() -> None:
    """Registered ground-truth datasets and their factors."""
    from benchmarks.datasets import get_dataset_class, list_datasets

    for name in list_datasets():
        cls = get_dataset_class(name)
        factors = ", ".join(f"{n} {k}" for n, k in zip(cls.factor_names, cls.factor_sizes))
        typer.echo(f"{name:<10} {factors}")


# -- run -----------------------------------------------------------------------
class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.command()
def run(
    suite: Annotated[
        str, typer.Option(help="Suite name (see `vaebench list suites`) or path to a TOML file.")
    ] = "quick",
    models: Annotated[
        str | None, typer.Option(help="'all' or a comma-separated list of model names.")
    ] = None,
    datasets: Annotated[str | None, typer.Option(help="Comma-separated dataset names.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2.")] = None,
    steps: Annotated[int | None, typer.Option(help="Override the suite's training steps.")] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Comma-separated metric names (default: the suite's).")
    ] = None,
    device: Annotated[Device, typer.Option(help="Training device.")] = Device.auto,
    source: Annotated[str | None, typer.Option(help="Dataset source: auto, official or procedural.")] = None,
    out: Annotated[
        Path, typer.Option(help="Output directory for records, tables and figures.")
    ] = DEFAULT_OUT,
    force: Annotated[bool, typer.Option(help="Rerun runs that already have a record.")] = False,
    pack: Annotated[
        int | None,
        typer.Option(
            help="Train up to N compatible runs as one batched computation (default: 36 on a GPU, 1 on CPU)."
        ),
    ] = None,
) -> None:
    """Train and evaluate every run of a suite; skips runs already recorded, resumes interrupted ones."""
    from benchmarks.runner.suite import expand_suite, load_suite, override_suite
    from benchmarks.runner.sweep import check_writable, run_sweep
    from benchmarks.runner.train import resolve_device
    from vae_zoo import list_models

    try:
        spec_suite = load_suite(suite)
        model_names = _split(models)
        if model_names == ["all"]:
            model_names = list_models()
        seed_list = None
        if seeds is not None:
            try:
                seed_list = [int(s) for s in _split(seeds)]
            except ValueError:
                fail(f"--seeds must be comma-separated integers; got {seeds!r}")
        spec_suite = override_suite(
            spec_suite,
            models=model_names,
            datasets=_split(datasets),
            seeds=seed_list,
            steps=steps,
            metrics=_split(metrics),
            dataset_source=source,
        )
        specs = expand_suite(spec_suite)
        torch_device = resolve_device(device.value)
        if pack is not None and pack < 1:
            raise ValueError(f"--pack must be a positive integer; got {pack}")
        check_writable(out)
    except _user_errors() as exc:
        fail(str(exc))
    result = run_sweep(specs, out, torch_device, force=force, pack=pack, console=console)
    if result.interrupted:
        raise typer.Exit(130)
    if result.failed or result.unreadable:
        err_console.print(f"[bold red]{len(result.failed)} run(s) failed:[/]")
        for run_id, step, reason in result.failed:
            err_console.print(f"  {run_id}: step {step}: {reason}")
        for path in result.unreadable:
            err_console.print(f"  unreadable, skipped: {path}")
        raise typer.Exit(1)
    console.print(
        f"{len(result.completed)} run(s) completed, {len(result.skipped)} skipped. "
        f"Records in {out / 'runs' / spec_suite.name}; `vaebench table` and `vaebench plot` summarise them."
    )


# -- table / plot ----------------------------------------------------------------
@contextmanager
def _warnings_to_stderr():
    """Show the report's warnings (unreadable records, figures it cannot draw) to the user."""
    handler = logging.StreamHandler(sys.stderr)  # bound now: the test runner swaps sys.stderr per call
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("benchmarks")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _check_suite_records(out: Path, suite: str | None) -> None:
    runs = out / "runs"
    if not runs.is_dir():
        fail(f"no run records under {runs}; run `vaebench run` first or pass --out")
    if suite is not None and not (runs / suite).is_dir():
        known = sorted(p.name for p in runs.iterdir() if p.is_dir())
        fail(
            f"no records for suite {suite!r} under {runs}; "
            f"suites with records: {', '.join(known) or '(none)'}"
        )


SuiteOption = Annotated[str | None, typer.Option(help="Only this suite (default: every suite with records).")]


def _regenerate(write, out: Path, suite: str | None) -> None:
    """Run a report writer on the records, showing its warnings and the files it wrote."""
    _check_suite_records(out, suite)
    with _warnings_to_stderr():
        try:
            paths = write(out, suite)
        except FileNotFoundError as exc:
            fail(str(exc))
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
def table(
    out: Annotated[Path, typer.Option(help="Output directory holding runs/.")] = DEFAULT_OUT,
    suite: SuiteOption = None,
) -> None:
    """Regenerate tables (Markdown, CSV, LaTeX) from the run records alone."""
    from benchmarks.report import write_tables

    _regenerate(write_tables, out, suite)


@app.command()
def plot(
    out: Annotated[Path, typer.Option(help="Output directory holding runs/ and artifacts/.")] = DEFAULT_OUT,
    suite: SuiteOption = None,
) -> None:
    """Regenerate figures from the run records and their artifacts."""
    from benchmarks.report import write_figures

    _regenerate(write_figures, out, suite)


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"
    json = "json"


@app.command()
def export(
    format: Annotated[ExportFormat, typer.Option("--format", help="File format.")] = ExportFormat.csv,
    out: Annotated[Path, typer.Option(help="Output directory holding runs/.")] = DEFAULT_OUT,
    suite: SuiteOption = None,
    to: Annotated[
        Path | None, typer.Option(help="File to write (default: OUT/export/<suite or all>.<format>).")
    ] = None,
) -> None:
    """Write the tidy table of the records (one row per run, `load_results`) as CSV, Parquet or JSON."""
    from benchmarks.report import MissingDependency, export_results

    def write(out_dir: Path, name: str | None) -> list[Path]:
        try:
            return export_results(out_dir, name, format.value, to)
        except MissingDependency as exc:
            fail(str(exc))

    _regenerate(write, out, suite)


@app.command()
def analyze(
    out: Annotated[Path, typer.Option(help="Output directory holding runs/.")] = DEFAULT_OUT,
    suite: SuiteOption = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the pairwise intervals.")] = 2000,
) -> None:
    """The study's analyses (metric agreement, variance shares, pairwise tests, mean vs sampled
    representation, unsupervised model selection) into OUT/analysis/<suite>/."""
    from benchmarks.report import write_analysis

    if n_boot < 100:
        fail(f"--n-boot must be at least 100; got {n_boot}")
    _regenerate(lambda out_dir, name: write_analysis(out_dir, name, n_boot=n_boot), out, suite)


# -- eval ------------------------------------------------------------------------
@app.command("eval")
def eval_cmd(
    target: Annotated[str, typer.Argument(help="A run id (see results/runs/*/) or a checkpoint path.")],
    metrics: Annotated[str | None, typer.Option(help="Comma-separated metrics (default: the run's).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory holding runs/ and checkpoints/.")] = DEFAULT_OUT,
    device: Annotated[Device, typer.Option(help="Device for encoding.")] = Device.auto,
) -> None:
    """Recompute metrics from a run's checkpoint and update its record."""
    from benchmarks.runner.evaluate import reevaluate
    from benchmarks.runner.train import resolve_device

    try:
        path, updated = reevaluate(
            target, out, _split(metrics), resolve_device(device.value), console=console
        )
    except _user_errors() as exc:
        fail(str(exc))
    console.print(
        f"updated {path}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(updated.items()) if v is not None)
    )


def _mount_data_app() -> None:
    from benchmarks.datasets.cli import data_app

    app.add_typer(data_app, name="data", help="Prepare, fetch, verify and look at the ground-truth datasets.")


_mount_data_app()


def main() -> None:  # pragma: no cover - console-script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
