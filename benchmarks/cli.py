"""The ``vaebench`` command line: list, data, run, table, plot, export, analyze, eval, score, udr.

Bad input exits with status 2 and a message naming the bad value and what
would be accepted; a sweep with failed runs exits with status 1 and lists them;
an interrupted sweep exits with 130 and resumes when rerun.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks.datasets import get_dataset_class, list_datasets
from benchmarks.datasets.cli import data_app
from benchmarks.runner.backends import BACKENDS, BackendError, BackendOptions, get_backend
from benchmarks.runner.display import print_plan, print_protocol
from benchmarks.runner.evaluator import resolve_evaluation
from benchmarks.runner.execute import rescore
from benchmarks.runner.plan import make_plan, pack_size, parse_shard
from benchmarks.runner.progress import SweepProgress
from benchmarks.runner.records import check_writable
from benchmarks.runner.state import SweepResult, run_states
from benchmarks.runner.status import suite_status
from benchmarks.runner.suite import expand_suite, list_suites, load_suite, override_suite
from benchmarks.runner.train import resolve_device
from benchmarks.runner.udr import CORRELATIONS, score_suite_udr
from benchmarks.score import DEFAULT_SUITE, load_representation, score_representation
from metrics import get_metric, list_metrics
from vae_zoo import describe_model, get_model, list_models
from vaebench.errors import BUG_REPORT, EXIT_DISK_FULL, DiskFullError, UnwritableError, UserError
from vaebench.paths import check_component

# The report (pandas, matplotlib) is imported by the commands that write it, so that training and
# listing do not pay for it.

app = typer.Typer(
    name="vaebench",
    help="Disentanglement benchmarking: train the VAE zoo on ground-truth data, score it, tabulate it.\n\n"
    "Exit status: 0 done; 1 runs failed (or a bug, with its traceback); 2 bad input, before any work "
    "(or a read-only directory); 3 no space left on the device (nothing recorded is lost: free space "
    "and rerun the same command); 130 interrupted (rerun to resume).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich panels print a stray "<bool>" type tag beside every flag.
    rich_markup_mode=None,
)
list_app = typer.Typer(
    help="List registered models, metrics, datasets, and shipped suites.", no_args_is_help=True
)
app.add_typer(list_app, name="list")

#: Rich's console; piped output is not cut at 80 columns (run ids, names and paths stay whole).
console = Console(width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True)

#: Where records go unless --out says otherwise: $VAEBENCH_OUT, else ./vaebench-results. The committed
#: results/ are regenerated with an explicit `--out results`, so ad-hoc runs never mix into them.
DEFAULT_OUT = Path(os.environ.get("VAEBENCH_OUT") or "vaebench-results")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as an error and exit with ``code`` (2: bad input)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


#: The exceptions that mean bad input (exit 2) rather than a bug: ``vaebench.errors.UserError`` (an
#: unknown name, a bad suite or config value, a damaged checkpoint or record, ...) and a directory the
#: user pointed at that cannot be written. Anything else is a bug: ``main`` prints its traceback.
USER_ERRORS = (UserError, PermissionError)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        fail(f"expected a comma-separated list; got {value!r}")
    return items


def _echo_listing(rows) -> None:
    """Format ``name  description`` lines as plain text, descriptions aligned.

    The descriptions start past the longest name; docstrings' reStructuredText ``literals`` lose their
    backticks.
    """
    rows = list(rows)
    width = max((len(name) for name, _ in rows), default=0)
    for name, text in rows:
        typer.echo(f"{name:<{width}}  {' '.join(str(text).replace('``', '').split())}".rstrip())


# -- list ----------------------------------------------------------------------
@list_app.command("models")
def list_models_cmd() -> None:
    """Registered model variants (built-in and plug-ins), one per line with a description."""
    _echo_listing((name, describe_model(name)) for name in list_models())


@list_app.command("suites")
def list_suites_cmd() -> None:
    """Benchmark suites shipped with vaebench (a path to your own TOML works wherever a name does)."""
    _echo_listing((name, load_suite(name).description) for name in list_suites())


@list_app.command("metrics")
def list_metrics_cmd() -> None:
    """Registered disentanglement metrics."""
    _echo_listing((name, get_metric(name).description) for name in list_metrics())


@list_app.command("backends")
def list_backends_cmd() -> None:
    """Registered backends for `vaebench run --backend` (built-in and plug-ins)."""
    _echo_listing(
        (name, ((BACKENDS.get(name).__doc__ or "").strip().splitlines() or [""])[0])
        for name in BACKENDS.names()
    )


@list_app.command("datasets")
def list_datasets_cmd() -> None:
    """Registered ground-truth datasets and their factors."""
    for name in list_datasets():
        cls = get_dataset_class(name)
        factors = ", ".join(f"{n} {k}" for n, k in zip(cls.factor_names, cls.factor_sizes))
        typer.echo(f"{name:<10} {factors}")


# -- run / plan / status ------------------------------------------------------------
class Device(str, Enum):
    """The ``--device`` choices: auto (CUDA when available), cpu or cuda."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


SuiteArg = Annotated[
    str, typer.Option(help="Suite name (see `vaebench list suites`) or path to a TOML file.")
]
ModelsArg = Annotated[
    str | None,
    typer.Option(
        help="'all' (every model that trains on single images) or a comma-separated list of model names."
    ),
]
DatasetsArg = Annotated[str | None, typer.Option(help="Comma-separated dataset names.")]
SeedsArg = Annotated[str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2.")]
StepsArg = Annotated[int | None, typer.Option(help="Override the suite's training steps.")]
MetricsArg = Annotated[str | None, typer.Option(help="Comma-separated metric names (default: the suite's).")]
SourceArg = Annotated[str | None, typer.Option(help="Dataset source: auto, official or procedural.")]
OutArg = Annotated[
    Path,
    typer.Option(
        help="Output directory for records, tables and figures ($VAEBENCH_OUT or ./vaebench-results)."
    ),
]
PackArg = Annotated[
    int | None,
    typer.Option(
        help="Train up to N compatible runs as one batched computation (default: 36 on a GPU, 1 on CPU; "
        "1 for a --shard whose --device is auto)."
    ),
]
DeviceArg = Annotated[Device, typer.Option(help="Training device.")]
FitJobsArg = Annotated[
    int | None,
    typer.Option(
        help="Threads for a metric's independent fits (DCI's and the downstream task's trees, SAP, "
        "modularity); no score depends on it (default: every core, or shared between --eval-workers)."
    ),
]
EncodeBatchArg = Annotated[
    int | None,
    typer.Option(
        help="Encode in whole forward passes of N images (default: the recorded 1,024-image passes' codes, "
        "on a CPU as sub-passes side by side). The codes' last bits, and so possibly the scores, differ "
        "from the default's. Recorded in the evaluation's provenance.",
    ),
]
ChannelsLastArg = Annotated[
    bool,
    typer.Option(
        "--channels-last",
        help="Encode in channels_last (NHWC); the codes' last bits, and so possibly "
        "the scores, differ from the default's. Recorded in the evaluation's provenance.",
    ),
]
ProgressIntervalArg = Annotated[
    float,
    typer.Option(
        help="Seconds between progress lines when stdout is not a terminal (0: a line per step or metric)."
    ),
]


def _select(suite, models, datasets, seeds, steps, metrics, source):
    """The suite with the command line's selection applied, expanded and validated: (suite, specs)."""
    spec_suite = load_suite(suite)
    model_names = _split(models)
    if model_names == ["all"]:
        # every variant that trains on single observations, plug-ins included
        model_names = [name for name in list_models() if get_model(name).views == 1]
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
    return spec_suite, expand_suite(spec_suite)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"--{name} must be a positive integer; got {value}")


def _interval(value: float) -> None:
    if not value >= 0:  # NaN too
        raise UserError(f"--progress-interval must be 0 or more seconds; got {value}")


@app.command()
def run(
    suite: SuiteArg = "quick",
    models: ModelsArg = None,
    datasets: DatasetsArg = None,
    seeds: SeedsArg = None,
    steps: StepsArg = None,
    metrics: MetricsArg = None,
    device: DeviceArg = Device.auto,
    source: SourceArg = None,
    out: OutArg = DEFAULT_OUT,
    force: Annotated[
        bool,
        typer.Option("--force", help="Rerun every run, recorded or not (an interrupted --force resumes)."),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Rerun the runs recorded as failed.")
    ] = False,
    pack: PackArg = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Run only shard I of N of the plan (I/N, 0 <= I < N), e.g. $SLURM_ARRAY_TASK_ID/8."
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Where to run: local, slurm (see `vaebench list backends`).")
    ] = "local",
    partition: Annotated[str | None, typer.Option(help="SLURM partition.")] = None,
    gpus_per_job: Annotated[
        int | None, typer.Option(help="GPUs per SLURM task (the runs train on cuda).")
    ] = None,
    cpus_per_job: Annotated[int | None, typer.Option(help="CPUs per SLURM task.")] = None,
    mem_gb: Annotated[float | None, typer.Option(help="Memory per SLURM task, GB.")] = None,
    timeout_min: Annotated[
        int | None, typer.Option(help="Time limit per SLURM task; a timeout requeues it.")
    ] = None,
    array_parallelism: Annotated[int | None, typer.Option(help="At most K SLURM tasks at once.")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit, print the job ids and return.")] = False,
    progress_interval: ProgressIntervalArg = 30.0,
    fit_jobs: FitJobsArg = None,
    eval_workers: Annotated[
        int | None,
        typer.Option(
            help="Score runs in N worker processes while the next pack trains (default: 2 on a GPU, "
            "0 on a CPU: after each pack, in this process). The records are the same."
        ),
    ] = None,
    channels_last: ChannelsLastArg = False,
    encode_batch: EncodeBatchArg = None,
) -> None:
    """Train and evaluate every run of a suite; skips runs already recorded, resumes interrupted ones."""
    try:
        spec_suite, specs = _select(suite, models, datasets, seeds, steps, metrics, source)
        _positive("pack", pack)
        _positive("fit-jobs", fit_jobs)
        _interval(progress_interval)
        _positive("encode-batch", encode_batch)
        if eval_workers is not None and eval_workers < 0:
            raise UserError(f"--eval-workers must be 0 or more; got {eval_workers}")
        options = BackendOptions(
            device=device.value,
            force=force,
            retry_failed=retry_failed,
            pack=pack,
            shard=parse_shard(shard) if shard is not None else None,
            progress_interval=progress_interval,
            fit_jobs=fit_jobs,
            eval_workers=eval_workers,
            channels_last=channels_last,
            encode_batch=encode_batch,
            partition=partition,
            gpus_per_job=gpus_per_job,
            cpus_per_job=cpus_per_job,
            mem_gb=mem_gb,
            timeout_min=timeout_min,
            array_parallelism=array_parallelism,
            no_wait=no_wait,
        )
        runner = get_backend(backend, options, console)
        check_writable(out)
    except USER_ERRORS as exc:
        fail(str(exc))
    try:
        result = runner.run(specs, out)
    except BackendError as exc:  # e.g. the cluster refused the submission
        fail(str(exc))
    if result.interrupted:
        raise typer.Exit(130)
    if result.submitted:
        raise typer.Exit(0)  # --no-wait: the backend printed the job ids
    _report_sweep(result, out / "runs" / spec_suite.name)
    raise typer.Exit(result.exit_code)


def _report_sweep(result: SweepResult, records_dir: Path) -> None:
    """The sweep's closing lines: failures and what could not be read on stderr, a summary on stdout."""
    problems = result.failed + result.previously_failed
    if problems:
        err_console.print(f"[bold red]{len(problems)} run(s) failed:[/]")
        for run_id, step, reason in problems:
            err_console.print(f"  {run_id}: step {step}: {reason}")
        if result.previously_failed:
            err_console.print("  (recorded earlier; `vaebench run ... --retry-failed` reruns them)")
    if result.unreadable:
        err_console.print(
            f"[bold red]{len(result.unreadable)} unreadable record(s) or checkpoint(s), skipped:[/]"
        )
        for path in result.unreadable:
            err_console.print(f"  {path}")
    if result.blocked:
        err_console.print(f"[bold red]{len(result.blocked)} run(s) blocked on a missing official file:[/]")
        for run_id, why in sorted(result.blocked.items()):
            err_console.print(f"  {run_id}: {why.splitlines()[0]}")
    if result.claimed_elsewhere:
        console.print(f"{len(result.claimed_elsewhere)} run(s) left to the other process(es) training them.")
    console.print(
        f"{len(result.completed)} run(s) completed, {len(result.skipped)} skipped. "
        f"Records in {records_dir}; `vaebench table` and `vaebench plot` summarise them."
    )


@app.command()
def plan(
    suite: SuiteArg = "quick",
    models: ModelsArg = None,
    datasets: DatasetsArg = None,
    seeds: SeedsArg = None,
    steps: StepsArg = None,
    metrics: MetricsArg = None,
    source: SourceArg = None,
    out: OutArg = DEFAULT_OUT,
    pack: PackArg = None,
    shard: Annotated[str | None, typer.Option(help="Show only shard I of N (I/N).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run, nothing else.")] = False,
    protocol: Annotated[
        bool,
        typer.Option(
            "--protocol",
            help="Only every deviation of these runs from disentanglement_lib's study, computed from "
            "their full specs (benchmarks/protocols/unsupervised_study_v1.toml).",
        ),
    ] = False,
    estimate: Annotated[
        bool, typer.Option("--estimate/--no-estimate", help="Time a few steps of each model for the cost.")
    ] = True,
    device: DeviceArg = Device.auto,
) -> None:
    """Show the runs, their packs, what is recorded and the estimated cost, without running anything.

    The packs are those `vaebench run` trains with the same flags on this machine.
    """
    try:
        spec_suite, specs = _select(suite, models, datasets, seeds, steps, metrics, source)
        _positive("pack", pack)
        shard_of = parse_shard(shard) if shard is not None else None
        torch_device = resolve_device(device.value)
        size = pack_size(
            pack, torch_device.type, device_pinned=device != Device.auto, sharded=shard_of is not None
        )
        the_plan = make_plan(specs, size)
        if shard_of is not None:
            the_plan = the_plan.select_shard(*shard_of)
    except USER_ERRORS as exc:
        fail(str(exc))
    if protocol:
        print_protocol(console, the_plan.runs)
        return
    states = run_states(the_plan.runs, out, claims=True)
    if as_json:
        for row in the_plan.to_json_rows():
            row["state"] = states[row["run_id"]].shown
            typer.echo(json.dumps(row, sort_keys=True))
        return
    print_plan(console, spec_suite.name, the_plan, states, out, torch_device, estimate)


@app.command()
def status(
    out: Annotated[Path, typer.Option(help="Output directory holding runs/.")] = DEFAULT_OUT,
    suite: Annotated[str | None, typer.Option(help="Only this suite (a name or TOML path).")] = None,
) -> None:
    """Per suite: runs recorded, failed, claimed (running) and pending, and SLURM job states."""
    try:
        rows = suite_status(out, suite)
    except USER_ERRORS as exc:
        fail(str(exc))
    if not rows:
        fail(f"no suites with records, claims or jobs under {out}; run `vaebench run` first or pass --out")
    table = Table(title=f"status of {out}")
    for col in ("suite", "runs", "recorded ok", "failed", "claimed (running)", "pending", "SLURM jobs"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["suite"],
            "?" if row["runs"] is None else str(row["runs"]),
            str(row["ok"]),
            str(row["failed"]),
            str(row["claimed"]),
            "?" if row["pending"] is None else str(row["pending"]),
            ", ".join(f"{n} {s.lower()}" for s, n in sorted(row["jobs"].items())) or "-",
        )
    console.print(table)
    for row in rows:
        for reason in row["unreadable"]:
            err_console.print(f"[yellow]skipped[/] {escape(reason)}", highlight=False)
        for run_id, holder in row["claims"].items():
            console.print(
                f"  {row['suite']}/{run_id}: claimed by {holder.get('host')} pid {holder.get('pid')}"
                + (f" (SLURM job {holder['slurm_job_id']})" if holder.get("slurm_job_id") else "")
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
    if suite is not None:
        try:
            check_component(suite, "--suite")  # it names directories under --out
        except UserError as exc:
            fail(str(exc))
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


#: What to do when --out is read-only, for the commands that write under it.
COPY_OUT = "copy runs/ and artifacts/ to a writable directory and pass it as --out"


def _regenerate(write, out: Path, suite: str | None, elsewhere: str = COPY_OUT) -> None:
    """Run a report writer on the records, showing its warnings and the files it wrote.

    A read-only --out exits 2 saying how to write ``elsewhere``.
    """
    _check_suite_records(out, suite)
    with _warnings_to_stderr():
        try:
            paths = write(out, suite)
        except FileNotFoundError as exc:
            fail(str(exc))
        except UnwritableError as exc:
            fail(f"{exc}. This command writes under --out {out}; {elsewhere}")
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
    """The ``vaebench export --format`` choices."""

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

    _regenerate(write, out, suite, "pass --to FILE to write the export elsewhere")


@app.command()
def analyze(
    out: Annotated[Path, typer.Option(help="Output directory holding runs/.")] = DEFAULT_OUT,
    suite: SuiteOption = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the pairwise intervals.")] = 2000,
) -> None:
    """Write the study's analyses into OUT/analysis/<suite>/.

    Metric agreement, variance shares, pairwise tests, mean vs sampled representation, unsupervised
    model selection.
    """
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
    fit_jobs: FitJobsArg = None,
    channels_last: ChannelsLastArg = False,
    encode_batch: EncodeBatchArg = None,
    progress_interval: ProgressIntervalArg = 30.0,
) -> None:
    """Recompute metrics from a run's checkpoint and update its record and artifacts."""
    try:
        _positive("fit-jobs", fit_jobs)
        _positive("encode-batch", encode_batch)
        _interval(progress_interval)
        resolved = resolve_device(device.value)
        options = resolve_evaluation(resolved, fit_jobs, 0, channels_last, encode_batch)[0]
        with SweepProgress(console, [], {}, interval=progress_interval) as progress:
            path, updated = rescore(target, out, _split(metrics), resolved, options, progress)
    except UnwritableError as exc:
        fail(f"{exc}. eval updates the run's record and artifacts under --out {out}; {COPY_OUT}")
    except USER_ERRORS as exc:
        fail(str(exc))
    console.print(
        f"updated {path}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(updated.items()) if v is not None)
    )


# -- score -----------------------------------------------------------------------
class Layout(str, Enum):
    """The image layout an external encoder takes."""

    channels_first = "channels_first"
    channels_last = "channels_last"


class Settings(str, Enum):
    """The metrics' settings when no suite gives them."""

    fast = "fast"
    study = "study"


@app.command("score")
def score_cmd(
    encoder: Annotated[
        str,
        typer.Argument(
            help="What to score: a TorchScript file (.pt), codes of every observation (.npy/.npz), "
            "or a Python function as package.module:function or path/to/file.py:function."
        ),
    ],
    dataset: Annotated[str, typer.Option(help="The dataset to score on (see `vaebench list datasets`).")],
    suite: Annotated[
        str | None,
        typer.Option(
            help="Take the metrics, their settings and the evaluation seed from this suite "
            "and record beside its runs (default: quick, unless --metrics is given)."
        ),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="Comma-separated metric entries (mig, dci, mig_chen, factor_vae@sampled)."),
    ] = None,
    settings: Annotated[
        Settings | None, typer.Option(help="Metric settings for --metrics without a suite (default: fast).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The label the tables show (default: the file's or function's name).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Evaluation seed (default: the suite's).")] = None,
    device: Annotated[Device, typer.Option(help="Device for a TorchScript encoder.")] = Device.auto,
    out: OutArg = DEFAULT_OUT,
    force: Annotated[
        bool, typer.Option(help="Rescore even if this encoder is recorded on this data.")
    ] = False,
    layout: Annotated[
        Layout | None,
        typer.Option(help="Image layout the encoder takes: channels_first (default) or channels_last."),
    ] = None,
) -> None:
    """Score a representation trained elsewhere, with the runner's evaluation, into OUT/runs/<suite>/."""
    try:
        chosen_device = resolve_device(device.value)
        representation = load_representation(
            encoder, name=name, layout=layout.value if layout else None, device=chosen_device
        )
        result = score_representation(
            representation,
            dataset,
            suite=suite if suite is not None or metrics is not None else DEFAULT_SUITE,
            metrics=_split(metrics),
            settings=settings.value if settings else None,
            seed=seed,
            device=chosen_device,
            out=out,
            force=force,
            on_progress=lambda message: err_console.print(escape(message), highlight=False),
        )
    except USER_ERRORS as exc:
        fail(str(exc))
    for entry, reason in result.left_out.items():
        err_console.print(f"[yellow]not scored:[/] {entry}: {escape(reason)}", highlight=False)
    for key, value in result.metrics.items():
        console.print(f"{key:<40} {value:.4f}", highlight=False)
    console.print(f"{'already recorded' if result.skipped else 'wrote'} {result.path}", highlight=False)


# -- udr -------------------------------------------------------------------------
@app.command("udr")
def udr_cmd(
    suite: Annotated[str, typer.Option(help="The suite whose recorded runs to score (see runs/<suite>/).")],
    out: Annotated[Path, typer.Option(help="Output directory holding runs/ and artifacts/.")] = DEFAULT_OUT,
    correlation: Annotated[
        str, typer.Option(help="Similarity between latents: lasso or spearman.")
    ] = "lasso",
    device: Annotated[
        Device, typer.Option(help="Device for runs encoded from their checkpoint.")
    ] = Device.auto,
) -> None:
    """UDR (Duan et al. 2020): score each group of runs that differ only in the seed, in their records."""
    if correlation not in CORRELATIONS:
        fail(f"--correlation must be one of {', '.join(CORRELATIONS)}; got {correlation!r}")
    _check_suite_records(out, suite)
    try:
        report = score_suite_udr(out, suite, correlation, device=resolve_device(device.value))
    except USER_ERRORS as exc:
        fail(str(exc))
    for group in report.groups:
        console.print(
            f"group of {len(group)}: "
            + ", ".join(f"{run}={'nan' if s is None or s != s else f'{s:.4f}'}" for run, s in group.items())
        )
    for run_id, reason in sorted(report.missing.items()):
        err_console.print(f"[yellow]not scored:[/] {run_id}: {reason}", highlight=False)
    if not report.groups:
        fail(f"no group of suite {suite!r} has two runs with UDR encodings; nothing scored")
    console.print(
        f"udr_{correlation} written to {len(report.updated)} record(s) under {out / 'runs' / suite}"
    )


app.add_typer(data_app, name="data", help="Prepare, fetch, verify and look at the ground-truth datasets.")


def main() -> None:
    """Run the ``vaebench`` command: bad input exits 2, a full disk 3, a bug prints its traceback, 1.

    Bad input exits 2 with its message (each command's ``fail``); a full disk exits ``EXIT_DISK_FULL``
    (3) saying so; any other exception is a bug, so its traceback is printed with a line asking for a
    report, exit 1.
    """
    try:
        app()
    except DiskFullError as exc:  # not a bug, not bad input: the same command resumes once there is space
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_DISK_FULL)
    except UserError as exc:  # bad input a command did not catch itself (a read-only directory, say)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except Exception:  # typer's own exits are SystemExit, which passes through
        traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {escape(BUG_REPORT)}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
