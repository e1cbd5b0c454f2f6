"""Suites: TOML files expanded into frozen run specs.

A suite names the datasets, the models with their hyperparameter grids, the
seeds, the training settings and the metrics. ``expand_suite`` turns it into
one ``RunSpec`` per (dataset, model, grid point, seed). A run's id is a hash of
its spec, so a rerun finds what is already done.

Format (see ``benchmarks/suites/*.toml``)::

    name = "quick"
    description = "..."
    datasets = ["dsprites"]
    seeds = [0]
    dataset_source = "auto"          # auto | official | procedural
    evaluation_seed = 0              # disentanglement_lib's evaluation.random_seed

    [training]
    steps = 3000
    batch_size = 64
    optimizer = "adam"
    learning_rate = 5e-4
    architecture = "locatello"
    latent_dim = 10
    precision = "auto"               # auto | fp32 | bf16
    log_every = 100
    checkpoint_every = 1000
    likelihood = { dsprites = "bernoulli", shapes3d = "gaussian" }

    [models]
    vae = [{}]                       # explicit grid points (config overrides)
    beta_vae = [{ beta = 4.0 }]
    factor_vae = "study"             # the variant's study grid

    [metrics]
    settings = "fast"                # the metric registry's "fast" or "study" settings
    names = ["mig", "dci", ...]      # or "all"
    [metrics.overrides.dci]          # optional per-metric keyword overrides
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from benchmarks.datasets import get_dataset_class, list_datasets
from benchmarks.datasets.pairs import check_pair_settings
from benchmarks.runner.settings import RunTraining
from benchmarks.runner.spec import RunSpec
from metrics import get_metric, list_metrics
from vae_zoo import ConfigError, get_model
from vae_zoo.initialisers import INITIALISERS
from vaebench.errors import UserError
from vaebench.memory import physical_memory
from vaebench.paths import UnsafeNameError, check_component
from vaebench.registry import UnknownNameError

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"

__all__ = [
    "SuiteError",
    "Suite",
    "RunSpec",
    "RunTraining",
    "NetworkSettings",
    "load_suite",
    "list_suites",
    "expand_suite",
]


#: Pairs when a suite has no [pairs] table: one factor resampled, disentanglement_lib's semantics.
DEFAULT_PAIRS = {"k": 1, "semantics": "dlib"}


class SuiteError(UserError, ValueError):
    """A suite that cannot be loaded or expanded; the message names the file and the field."""


@dataclass(frozen=True)
class NetworkSettings:
    """The suite's ``[training]`` fields that go into each run's model config.

    They build each run's model; the loop's fields are a ``RunTraining``.
    """

    architecture: str = "locatello"
    latent_dim: int = 10
    #: Per dataset; a dataset not named trains with its class's default likelihood.
    likelihood: dict[str, str] = field(
        default_factory=lambda: {"dsprites": "bernoulli", "shapes3d": "gaussian"}
    )
    #: Weight initialisation (``VAE.Config.init``, a name in ``vae_zoo.initialisers.INITIALISERS``);
    #: None leaves the variant's default (and the run ids of suites that never set it unchanged).
    init: str | None = None

    def __post_init__(self) -> None:
        value = self.latent_dim
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SuiteError(f"training.latent_dim must be a positive integer; got {value!r}")
        if self.init is not None and self.init not in INITIALISERS.names():
            raise SuiteError(
                f"training.init must be one of {', '.join(INITIALISERS.names())}; got {self.init!r}"
            )


def _training(values: dict[str, Any], where: str) -> RunTraining:
    """A ``RunTraining`` from suite or command-line values; its check's error names ``where``."""
    try:
        return RunTraining(**values)
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Suite:
    """A parsed suite: datasets, seeds, model grids, training, network and metric settings."""

    name: str
    description: str
    path: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    models: dict[str, tuple[dict[str, Any], ...]]  # name -> grid points (config overrides)
    training: RunTraining
    network: NetworkSettings
    metrics: dict[str, dict[str, Any]]  # name -> keyword settings
    metric_settings: str = "fast"
    dataset_source: str = "auto"
    evaluation_seed: int = 0
    #: Per model, its own training settings, checked (FactorVAE's 150,000 updates).
    model_training: dict[str, RunTraining] = field(default_factory=dict)
    #: How the pair variants' pairs are drawn (``[pairs]``: k and semantics, see
    #: ``benchmarks.datasets.pairs``); unused by variants that train on single observations.
    pairs: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PAIRS))


def list_suites() -> list[str]:
    """Names of the suites shipped in benchmarks/suites."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def resolve_suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SuiteError(f"suite file {path} does not exist")
        return path
    shipped = SUITES_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise UnknownNameError("suite", name_or_path, list_suites())
    return shipped


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name, or a user's TOML file by path."""
    path = resolve_suite_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"suite {path} is not valid TOML: {exc}") from None
    return parse_suite(raw, str(path))


def _require(raw: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in raw:
        raise SuiteError(f"{where}: missing required field {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        raise SuiteError(f"{where}: field {key!r} must be {kind}; got {value!r}")
    return value


def parse_suite(raw: dict[str, Any], where: str = "<suite>") -> Suite:
    known_top = {"name", "description", "datasets", "seeds", "training", "models", "metrics"}
    known_top |= {"dataset_source", "evaluation_seed", "pairs"}
    unknown = sorted(set(raw) - known_top)
    if unknown:
        raise SuiteError(
            f"{where}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known_top))}"
        )
    name = _require(raw, "name", str, where)
    try:
        check_component(name, "suite name")  # it names directories under --out
    except UnsafeNameError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    datasets = tuple(_require(raw, "datasets", list, where))
    for d in datasets:
        if d not in list_datasets():
            raise UnknownNameError("dataset", d, list_datasets())
    seeds = tuple(_require(raw, "seeds", list, where))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise SuiteError(
            f"{where}: seeds must be a non-empty list of non-negative integers; got {list(seeds)}"
        )
    training_raw = dict(_require(raw, "training", dict, where))
    network_fields = {f.name for f in dataclasses.fields(NetworkSettings)}
    valid_training = network_fields | set(RunTraining.fields())
    bad = sorted(set(training_raw) - valid_training)
    if bad:
        raise SuiteError(
            f"{where}: unknown training field(s) {', '.join(bad)}; valid: {', '.join(sorted(valid_training))}"
        )
    if "steps" not in training_raw:
        raise SuiteError(f"{where}: missing required field 'training.steps'")
    network = NetworkSettings(**{k: v for k, v in training_raw.items() if k in network_fields})
    training = _training({k: v for k, v in training_raw.items() if k not in network_fields}, where)

    models: dict[str, tuple[dict[str, Any], ...]] = {}
    model_training: dict[str, dict[str, Any]] = {}
    for model_name, grid in _require(raw, "models", dict, where).items():
        cls = get_model(model_name)  # UnknownNameError lists valid names
        shared: dict[str, Any] = {}
        if isinstance(grid, dict):  # { grid = "study" | [...], <field> = value, ... }: shared by every point
            shared = dict(grid)
            grid = shared.pop("grid", [{}])
            own_training = shared.pop("training", None)
            if own_training is not None:
                loop_fields = RunTraining.fields()
                if not isinstance(own_training, dict) or set(own_training) - set(loop_fields):
                    raise SuiteError(
                        f"{where}: models.{model_name}.training must be a table of "
                        f"{', '.join(sorted(loop_fields))}; got {own_training!r}"
                    )
                model_training[model_name] = _training(
                    {**training.to_dict(), **own_training}, f"{where}: models.{model_name}"
                )
        if grid == "study":
            points = tuple(cls.study_grid)
        elif isinstance(grid, list) and all(isinstance(p, dict) for p in grid) and grid:
            points = tuple(grid)
        else:
            raise SuiteError(
                f'{where}: models.{model_name} must be "study", a list of tables, or a table with '
                f"grid = ... and shared fields; got {grid!r}"
            )
        models[model_name] = tuple({**point, **shared} for point in points)

    metrics_raw = dict(_require(raw, "metrics", dict, where))
    settings = metrics_raw.pop("settings", "fast")
    if settings not in ("fast", "study"):
        raise SuiteError(f"{where}: metrics.settings must be 'fast' or 'study'; got {settings!r}")
    names = metrics_raw.pop("names", "all")
    names = per_run_metrics() if names == "all" else list(names)
    sampled = metrics_raw.pop("sampled", [])
    sampled = list(names) if sampled == "all" else list(sampled)
    overrides = metrics_raw.pop("overrides", {})
    if metrics_raw:
        raise SuiteError(
            f"{where}: unknown metrics field(s) {', '.join(sorted(metrics_raw))}; "
            "valid: settings, names, sampled, overrides"
        )
    for metric_name in sampled:
        if metric_name not in names:
            raise SuiteError(f"{where}: metrics.sampled names {metric_name!r}, which is not in metrics.names")
    metrics = {}
    for metric_name in names:
        spec = get_metric(metric_name)
        metrics[metric_name] = {**getattr(spec, settings), **overrides.get(metric_name, {})}
        _check_metric_settings(spec, metrics[metric_name], f"{where}: metrics.overrides.{metric_name}")
        if metric_name in sampled:  # the same metric on the sampled representation (postprocess sampled.gin)
            metrics[f"{metric_name}@sampled"] = dict(metrics[metric_name])
    for metric_name in overrides:
        if metric_name not in names:
            raise SuiteError(
                f"{where}: metrics.overrides names {metric_name!r}, which is not in metrics.names"
            )

    source = raw.get("dataset_source", "auto")
    if source not in ("auto", "official", "procedural"):
        raise SuiteError(f"{where}: dataset_source must be auto, official or procedural; got {source!r}")
    pairs = (
        {**DEFAULT_PAIRS, **_require(raw, "pairs", dict, where)} if "pairs" in raw else dict(DEFAULT_PAIRS)
    )
    if set(pairs) != set(DEFAULT_PAIRS):
        raise SuiteError(
            f"{where}: unknown pairs field(s) {', '.join(sorted(set(pairs) - set(DEFAULT_PAIRS)))}; "
            f"valid: {', '.join(DEFAULT_PAIRS)}"
        )
    suite = Suite(
        name=name,
        description=raw.get("description", ""),
        path=where,
        datasets=datasets,
        seeds=seeds,
        models=models,
        training=training,
        network=network,
        metrics=metrics,
        metric_settings=settings,
        dataset_source=source,
        evaluation_seed=int(raw.get("evaluation_seed", 0)),
        model_training=model_training,
        pairs=pairs,
    )
    return _check_batch_sizes(suite)


#: Bytes a training step holds per input pixel of each image of its batch (activations kept for the
#: backward pass, their gradients, the float copy of the batch): about 180 measured for the study's
#: convolutional VAE on 64x64 images in fp32 on the CPU (marginal RSS from batch 64 to 512).
TRAINING_BYTES_PER_PIXEL = 200


def check_batch_size(training: RunTraining, dataset: str, where: str) -> None:
    """Refuse, before any training, a batch the dataset or the machine cannot hold.

    A batch larger than the dataset, or one whose training step alone would need more memory than the
    machine has (``TRAINING_BYTES_PER_PIXEL``), naming both numbers.
    """
    cls = get_dataset_class(dataset)
    images, batch = math.prod(cls.factor_sizes), training.batch_size
    if batch > images:
        raise SuiteError(
            f"{where}: training.batch_size = {batch:,} is larger than {dataset}, which has {images:,} images"
        )
    need = batch * math.prod(cls.observation_shape) * TRAINING_BYTES_PER_PIXEL
    have = physical_memory()
    if have is not None and need > have:
        raise SuiteError(
            f"{where}: training.batch_size = {batch:,} on {dataset} needs about {need / 2**30:,.0f} GiB "
            f"for one training step, more than this machine's {have / 2**30:,.0f} GiB of memory"
        )


def _check_batch_sizes(suite: Suite) -> Suite:
    for dataset in suite.datasets:
        check_batch_size(suite.training, dataset, suite.path)
        for model, training in suite.model_training.items():
            if model in suite.models:
                check_batch_size(training, dataset, f"{suite.path}: models.{model}")
    return suite


def per_run_metrics() -> list[str]:
    """``names = "all"``: every registered metric that scores one run (not UDR's groups of runs)."""
    return [n for n in list_metrics() if get_metric(n).inputs != "model_group"]


def _check_metric_settings(metric, settings: dict[str, Any], where: str) -> None:
    """A misspelt setting fails when the suite is loaded, naming it and the valid ones."""
    try:
        metric.check_settings(settings, where=where)
    except ValueError as exc:
        raise SuiteError(str(exc)) from None


def override_suite(
    suite: Suite,
    *,
    models: list[str] | None = None,
    datasets: list[str] | None = None,
    seeds: list[int] | None = None,
    steps: int | None = None,
    metrics: list[str] | None = None,
    dataset_source: str | None = None,
) -> Suite:
    """The CLI's --models/--datasets/--seeds/--steps/--metrics applied to a suite.

    ``models`` may name variants the suite does not list (a plug-in, say): those
    run with their default config, one grid point.
    """
    changes: dict[str, Any] = {}
    if models is not None:
        chosen: dict[str, tuple[dict[str, Any], ...]] = {}
        for name in models:
            get_model(name)  # validates, listing valid names
            chosen[name] = suite.models.get(name, ({},))
        changes["models"] = chosen
    if datasets is not None:
        for d in datasets:
            if d not in list_datasets():
                raise UnknownNameError("dataset", d, list_datasets())
        changes["datasets"] = tuple(datasets)
    if seeds is not None:
        if not seeds or any(s < 0 for s in seeds):
            raise SuiteError(f"--seeds must be non-negative integers; got {seeds}")
        changes["seeds"] = tuple(seeds)
    if steps is not None:
        # --steps is every model's: a model's own step count gives way to it.
        changes["training"], changes["model_training"] = (
            _with_steps(suite.training, steps),
            {m: _with_steps(t, steps) for m, t in suite.model_training.items()},
        )
    if metrics is not None:
        chosen_metrics = {}
        for entry in metrics:
            name = entry.partition("@")[0]
            metric = get_metric(name)  # validates, listing valid names
            if entry.partition("@")[2] not in ("", "sampled"):
                raise SuiteError(f"--metrics {entry!r}: a representation after @ must be 'sampled'")
            chosen_metrics[entry] = suite.metrics.get(entry, dict(getattr(metric, suite.metric_settings)))
        changes["metrics"] = chosen_metrics
    if dataset_source is not None:
        if dataset_source not in ("auto", "official", "procedural"):
            raise SuiteError(f"--source must be auto, official or procedural; got {dataset_source!r}")
        changes["dataset_source"] = dataset_source
    return _check_batch_sizes(dataclasses.replace(suite, **changes))


def _with_steps(training: RunTraining, steps: int) -> RunTraining:
    """``training`` for ``steps`` steps (--steps), logging and checkpointing at most every ``steps``."""
    if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1:
        changes = {
            "log_every": min(training.log_every, steps),
            "checkpoint_every": min(training.checkpoint_every, steps),
        }
    else:
        changes = {}  # RunTraining refuses the steps, naming them
    try:
        return dataclasses.replace(training, steps=steps, **changes)
    except ValueError as exc:
        raise SuiteError(f"--steps: {exc}") from None


def expand_suite(suite: Suite) -> list[RunSpec]:
    """One spec per dataset x model x grid point x seed, each config validated before any training."""
    specs = []
    t = suite.network
    for dataset in suite.datasets:
        dataset_cls = get_dataset_class(dataset)
        likelihood = t.likelihood.get(dataset, dataset_cls.likelihood)
        base = {
            "architecture": t.architecture,
            "latent_dim": t.latent_dim,
            "likelihood": likelihood,
            "in_channels": dataset_cls.observation_shape[0],
            # the number of training images (beta_tcvae's log q(z) estimator's N): the stored grid's
            # size, which is more than the scored factors' where a dataset stores an unscored factor
            # (smallNORB's ten instances: 48,600 images on 4,860 scored points)
            "dataset_size": len(dataset_cls(progress=False)),
        }
        if t.init is not None:
            base["init"] = t.init
        for model, grid in suite.models.items():
            model_training = suite.model_training.get(model, suite.training)
            pairs = _pairs_of(suite, model, dataset, dataset_cls)
            for point in grid:
                config = {**base, **point}
                try:  # refuse an invalid hyperparameter now, not mid-sweep (config only, no weights)
                    get_model(model).make_config(**config)
                except ConfigError as exc:
                    raise SuiteError(f"{suite.path}: models.{model} grid point {point}: {exc}") from None
                for seed in suite.seeds:
                    specs.append(
                        RunSpec(
                            suite=suite.name,
                            dataset=dataset,
                            model=model,
                            model_config=config,
                            seed=seed,
                            training=model_training,
                            metrics=suite.metrics,
                            dataset_source=suite.dataset_source,
                            evaluation_seed=suite.evaluation_seed,
                            pairs=pairs,
                        )
                    )
    return specs


def _pairs_of(suite: Suite, model: str, dataset: str, dataset_cls) -> dict[str, Any] | None:
    """The pair settings of a pair variant's runs on ``dataset``; None for single-view variants.

    Checked against the dataset's factor grid. A single-view variant trains on single observations.
    """
    if get_model(model).views == 1:
        return None
    sizes = tuple(dataset_cls.factor_sizes)
    try:
        check_pair_settings(sizes, suite.pairs["k"], suite.pairs["semantics"])
    except ValueError as exc:
        raise SuiteError(f"{suite.path}: pairs for {model} on {dataset}: {exc}") from None
    images, grid_points = len(dataset_cls(progress=False)), math.prod(sizes)
    if images != grid_points:
        raise SuiteError(
            f"{suite.path}: {model} trains on pairs of grid points, but {dataset} stores {images:,} "
            f"training images on {grid_points:,} grid points; choose a dataset with one image per "
            "grid point"
        )
    return dict(suite.pairs)
