"""The metric registry: ``register_metric``, ``get_metric``, ``list_metrics``.

Each entry is a :class:`MetricSpec` recording the function, what it takes
(``inputs``), which direction is better for each output key, two keyword
settings: ``study`` (disentanglement_lib's unsupervised_study_v1 sample sizes)
and ``fast`` (small sizes for smoke tests), and its :class:`Presentation`: how
a report labels, orders and explains its outputs. :func:`evaluate_metric` turns a
spec, a ground-truth sampler and an encoder into scores, doing the sampling
that the ``inputs`` kind calls for.

Built-in metrics register when their modules are imported; the registry
imports them lazily. Third-party metrics register with the decorator or the
entry-point group ``vaebench.metrics`` (the entry point names a MetricSpec).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from metrics.sampling import Encoder, GroundTruthSampler, RandomGenerator, check_rng, factor_grid
from metrics.sampling import sample_codes_and_factors as _sample
from vaebench.registry import Registry

__all__ = [
    "INPUT_KINDS",
    "PARAMETERS",
    "Parameter",
    "Presentation",
    "FitCost",
    "MetricSpec",
    "METRICS",
    "register_metric",
    "get_metric",
    "list_metrics",
    "evaluate_metric",
]

# What a metric function takes, and what evaluate_metric samples for it:
INPUT_KINDS = {
    "codes_factors": "fn(codes, factors, **kw); sampled: n_train points (batch_size)",
    "train_test": "fn(codes_train, factors_train, codes_test, factors_test, **kw); n_train, then n_test",
    "codes_only": "fn(codes, **kw); n_train points, factors unused",
    "sampler": "fn(sampler, encode, rng, **kw): interventions, the metric samples itself",
    "posterior_grid": "fn(mean, logvar, factors, factor_sizes, rng=..., **kw) on the factor grid "
    "(grid_max_values thins it); needs encode_posterior",
    "model_group": "fn(means, logvars, **kw) -> one flat dict per model: a group of runs (same config, "
    "other seeds) encoded on the same n_points; computed by `vaebench udr`, not per run (evaluate_metric "
    "refuses it)",
}
# Keys of the settings that steer the sampling rather than the metric function.
_SAMPLING_KEYS = {
    "codes_factors": ("n_train", "batch_size"),
    "codes_only": ("n_train", "batch_size"),
    "train_test": ("n_train", "n_test", "batch_size"),
    "sampler": (),
    "posterior_grid": ("grid_max_values", "batch_size"),
    "model_group": ("n_points",),
}
# The arguments each kind passes positionally (not settings).
_POSITIONAL = {
    "codes_factors": ("codes", "factors"),
    "codes_only": ("codes",),
    "train_test": ("codes_train", "factors_train", "codes_test", "factors_test"),
    "sampler": ("sampler", "encode", "rng"),
    "posterior_grid": ("mean", "logvar", "factors", "factor_sizes"),
    "model_group": ("means", "logvars"),
}
BUILTIN_MODULES = (
    "metrics.mutual_info_gap",
    "metrics.chen_mig",
    "metrics.sap_score",
    "metrics.dci_score",
    "metrics.modularity",
    "metrics.unsupervised_scores",
    "metrics.irs_score",
    "metrics.interventions",
    "metrics.downstream_task",
    "metrics.fairness",
    "metrics.udr",
)


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A metric setting's declared type and range.

    A bad value fails when a suite is loaded, before any training (``MetricSpec.check_settings``).

    ``kind`` is "int", "number" (int or float), "bool", "str" or "ints" (a list or tuple of ints);
    ``minimum``/``maximum`` bound a number or every int of "ints" (inclusive); ``optional`` accepts None;
    ``choices`` lists the strings a "str" may be (empty: any).
    """

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    choices: tuple[str, ...] = ()

    _KINDS = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string"}

    def __post_init__(self) -> None:
        if self.kind not in (*self._KINDS, "ints"):
            raise ValueError(
                f"Parameter kind must be one of {', '.join(self._KINDS)}, ints; got {self.kind!r}"
            )

    def describe(self) -> str:
        """What the setting accepts, in words ("an integer >= 1 (or none)")."""
        if self.choices:
            return (
                "one of " + ", ".join(repr(c) for c in self.choices) + (" (or none)" if self.optional else "")
            )
        what = "a list of integers" if self.kind == "ints" else self._KINDS[self.kind]
        bounds = [f">= {self.minimum:g}"] if self.minimum is not None else []
        bounds += [f"<= {self.maximum:g}"] if self.maximum is not None else []
        return " ".join(
            [what, *(["each"] if self.kind == "ints" and bounds else []), " and ".join(bounds)]
        ).strip() + (" (or none)" if self.optional else "")

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` has the declared type and lies in the declared range."""
        if value is None:
            return self.optional
        if self.kind == "ints":
            return isinstance(value, (list, tuple)) and all(self._number(v, int) for v in value)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str) and (not self.choices or value in self.choices)
        return self._number(value, int if self.kind == "int" else (int, float))

    def _number(self, value: Any, kind: type | tuple[type, ...]) -> bool:
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            return False
        return (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )


_COUNT = Parameter("int", minimum=1)
#: The settings several metrics share, declared once; a metric's ``parameter_types`` add its own
#: (or override these). A setting declared in neither is passed on unchecked.
PARAMETERS: Mapping[str, Parameter] = types.MappingProxyType(
    {
        **dict.fromkeys(
            ("n_train", "n_test", "n_eval", "batch_size", "n_bins", "n_samples", "n_variance_estimate"),
            _COUNT,
        ),
        "n_test_per_class": _COUNT,
        "n_points": _COUNT,
        "encode_batch_size": Parameter("int", minimum=1, optional=True),
        "grid_max_values": Parameter("int", minimum=1, optional=True),
        "n_jobs": Parameter("int", optional=True),  # joblib: -1 every core, None its default
        "diff_quantile": Parameter("number", minimum=0, maximum=1),
        "threshold": Parameter("number", minimum=0),
        "kl_filter_threshold": Parameter("number", minimum=0),
        **dict.fromkeys(("per_factor", "continuous_factors", "filter_low_kl"), Parameter("bool")),
        **dict.fromkeys(("backend", "implementation", "predictor"), Parameter("str")),
        "tie_order": Parameter("str", choices=("sklearn", "stable")),
        "train_sizes": Parameter("ints", minimum=1),
        "exclude_factors": Parameter("ints", minimum=0),
    }
)


@dataclasses.dataclass(frozen=True)
class Presentation:
    """How a report shows a metric's outputs; the report itself names no metric.

    Attributes:
        labels: per output key, the column header (a key without one is shown by its name).
        headline: per output key, its rank among the headline scores: the disentanglement scores
            the report shows first (lowest rank first), compares between models in its notes and
            analyses, and draws distributions of. A key without a rank follows them, by name.
        note: one sentence on what the metric computes, printed with the protocol of the runs
            that used it, under the heading ``note_topic`` (the notes of one topic are joined,
            by metric name, so that metrics easily confused are explained side by side).
        note_topic: the heading of ``note``.
    """

    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    headline: Mapping[str, int] = dataclasses.field(default_factory=dict)
    note: str = ""
    note_topic: str = ""

    def __post_init__(self) -> None:
        if bool(self.note) != bool(self.note_topic):
            raise ValueError("a metric's note and note_topic go together: give both or neither")
        for field in ("labels", "headline"):
            object.__setattr__(self, field, types.MappingProxyType(dict(getattr(self, field))))


#: dSprites' classes (3 + 6 + 40 + 32 + 32), on which ``FitCost.study_seconds`` were measured.
FIT_COST_CLASSES = 113


def _fitted_points(settings: Mapping[str, Any]) -> int:
    """The training points a metric's fits see: n_train, or the downstream task's train sizes summed."""
    return int(settings.get("n_train", 0)) + sum(int(n) for n in settings.get("train_sizes", ()))


@dataclasses.dataclass(frozen=True)
class FitCost:
    """What a metric costs beyond encoding, for the plan's estimate and the evaluation's ETA.

    ``study_seconds``: its wall seconds at its study settings on dSprites, encoding left out: the
    "fit" column of results/perf/eval_cost_cpu.md (tools/perf/eval_cost.py on a 2-core AMD EPYC with 2
    fit threads; the mean of the two representations). 0 where it was not measured (the metrics
    outside the study's set). ``per_class``: it fits one output per factor class (trees, multinomial
    regressions), so it grows with the dataset's classes. Scaled linearly by the points it fits.
    """

    study_seconds: float = 0.0
    per_class: bool = False

    def seconds(
        self, settings: Mapping[str, Any], study: Mapping[str, Any], factor_sizes: tuple[int, ...]
    ) -> float:
        """Estimated seconds of the fits at ``settings`` on a dataset of ``factor_sizes``."""
        reference = _fitted_points(study)
        if not self.study_seconds or not reference:
            return 0.0
        scale = _fitted_points(settings) / reference
        if self.per_class:
            scale *= sum(factor_sizes) / FIT_COST_CLASSES
        return self.study_seconds * scale


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One registered metric.

    Attributes:
        name: registry name.
        function: the public pure function.
        inputs: one of ``INPUT_KINDS``.
        higher_is_better: per output key, True/False, or None for a count that is no score.
        study: keyword settings of disentanglement_lib's study (sampling sizes and metric kwargs).
        fast: small settings that run in a second or two (plus encoding) for smoke tests.
        description: one line for listings.
        presentation: labels, headline ranks and a note for reports.
    """

    name: str
    function: Callable[..., dict[str, float]]
    inputs: str
    higher_is_better: Mapping[str, bool | None]
    study: Mapping[str, Any]
    fast: Mapping[str, Any]
    description: str = ""
    #: ``(settings, factor_sizes) -> images the evaluation encodes``; None: the inputs kind's count
    #: (``sampler`` metrics sample for themselves and must declare it).
    encodes: Callable[[Mapping[str, Any], tuple[int, ...]], int] | None = None
    #: Settings this metric takes on a named dataset, ``{dataset name: {keyword: value}}`` (Chen et al.
    #: score dSprites without its shape: ``{"dsprites": {"exclude_factors": (0,)}}``). ``evaluate_metric``
    #: applies them between the ``study``/``fast`` settings and the caller's own, which win.
    dataset_settings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    presentation: Presentation = dataclasses.field(default_factory=Presentation)
    #: Per output key, the closed interval its values lie in by definition (MIG in [0, 1]); a record
    #: holding a value outside it is refused as damaged. Keys without bounds are only checked finite.
    bounds: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    #: Types and ranges of this metric's own settings, beyond the shared ``PARAMETERS``.
    parameter_types: Mapping[str, Parameter] = dataclasses.field(default_factory=dict)
    #: What its fits cost, for estimates.
    fit_cost: FitCost = FitCost()

    def __post_init__(self) -> None:
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"inputs must be one of {', '.join(INPUT_KINDS)}; got {self.inputs!r}")
        if not self.higher_is_better:
            raise ValueError(f"metric {self.name!r} must declare its output keys in higher_is_better")
        # Read-only views: a spec is shared by every caller.
        for field in ("higher_is_better", "study", "fast"):
            object.__setattr__(self, field, types.MappingProxyType(dict(getattr(self, field))))
        frozen = {name: types.MappingProxyType(dict(s)) for name, s in self.dataset_settings.items()}
        object.__setattr__(self, "dataset_settings", types.MappingProxyType(frozen))
        if self.inputs == "sampler" and self.encodes is None:
            raise ValueError(f"metric {self.name!r} samples for itself, so it must declare encodes=")
        for which in ("study", "fast"):
            self.check_settings(getattr(self, which), where=f"metric {self.name!r} {which} settings")
        outside = sorted(set(self.bounds) - set(self.higher_is_better))
        if outside:
            raise ValueError(f"metric {self.name!r} bounds key(s) it does not return: {', '.join(outside)}")
        shown = {**self.presentation.labels, **self.presentation.headline}
        unknown = sorted(set(shown) - set(self.higher_is_better))
        if unknown:
            raise ValueError(
                f"metric {self.name!r} presents key(s) it does not return: {', '.join(unknown)}; "
                f"its keys: {', '.join(self.higher_is_better)}"
            )
        for dataset, settings in self.dataset_settings.items():
            self.check_settings(settings, where=f"metric {self.name!r} settings on dataset {dataset!r}")

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every setting this metric accepts: its sampling keys and its function's keyword parameters."""
        positional = (*_POSITIONAL.get(self.inputs, ()), "rng")  # rng comes from evaluate_metric
        signature = inspect.signature(self.function).parameters
        keywords = [
            n
            for n, p in signature.items()
            if n not in positional and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        return tuple(sorted(set(_SAMPLING_KEYS.get(self.inputs, ())) | set(keywords)))

    def check_settings(self, settings: Mapping[str, Any], where: str | None = None) -> None:
        """Refuse a setting the metric does not take, or a value of the wrong type or range.

        An unknown setting is named with the valid ones; a value is checked against its declared type
        and range (``PARAMETERS``, ``parameter_types``).
        """
        where = where or f"metric {self.name!r}"
        unknown = sorted(set(settings) - set(self.parameters))
        if unknown:
            raise ValueError(
                f"{where}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(self.parameters)}"
            )
        declared = {**PARAMETERS, **self.parameter_types}
        for name, value in settings.items():
            rule = declared.get(name)
            if rule is not None and not rule.accepts(value):
                raise ValueError(f"{where}: {name} = {value!r}; it must be {rule.describe()}")

    def images_encoded(self, settings: Mapping[str, Any], factor_sizes: tuple[int, ...]) -> int:
        """How many images evaluating with ``settings`` encodes (before the runner's cache dedupes)."""
        if self.encodes is not None:
            return int(self.encodes(settings, tuple(factor_sizes)))
        if self.inputs == "posterior_grid":
            most = settings.get("grid_max_values")
            return math.prod(size if most is None else min(size, most) for size in factor_sizes)
        if self.inputs == "model_group":
            return 0
        return int(settings.get("n_train", 0)) + int(settings.get("n_test", 0))

    @property
    def keys(self) -> tuple[str, ...]:
        """The output keys, in the order the function returns them."""
        return tuple(self.higher_is_better)

    def settings(self, which: str) -> dict[str, Any]:
        """A copy of the ``"study"`` or ``"fast"`` settings."""
        if which not in ("study", "fast"):
            raise ValueError(f"settings must be 'study' or 'fast'; got {which!r}")
        return dict(getattr(self, which))

    def __repr__(self) -> str:
        # No "<...>" inside: the shared Registry treats equal reprs of re-imported modules as the same entry.
        fn = f"{self.function.__module__}.{self.function.__qualname__}"
        return (
            f"MetricSpec(name={self.name!r}, function={fn}, inputs={self.inputs!r}, keys={list(self.keys)})"
        )


METRICS: Registry[MetricSpec] = Registry("metric", "vaebench.metrics", builtin_modules=BUILTIN_MODULES)


def register_metric(
    name: str,
    *,
    inputs: str,
    higher_is_better: Mapping[str, bool | None],
    study: Mapping[str, Any],
    fast: Mapping[str, Any],
    description: str = "",
    encodes: Callable[[Mapping[str, Any], tuple[int, ...]], int] | None = None,
    dataset_settings: Mapping[str, Mapping[str, Any]] | None = None,
    presentation: Presentation | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    fit_cost: FitCost | None = None,
) -> Callable[[Callable[..., dict[str, float]]], Callable[..., dict[str, float]]]:
    """Function decorator: register ``fn`` as metric ``name``; returns ``fn`` unchanged.

    Refuses a name already taken by a different metric. ``presentation`` says how reports show
    the outputs (labels, headline ranks, a note); without it they are shown by their keys.
    """

    def decorator(fn: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        spec = MetricSpec(
            name,
            fn,
            inputs,
            higher_is_better,
            study,
            fast,
            doc,
            encodes,
            dict(dataset_settings or {}),
            presentation or Presentation(),
            dict(bounds or {}),
            fit_cost=fit_cost or FitCost(),
        )
        METRICS.register(name)(spec)
        return fn

    return decorator


def get_metric(name: str) -> MetricSpec:
    """The spec registered as ``name`` (raises UnknownNameError listing close names)."""
    return METRICS.get(name)


def list_metrics(pattern: str = "*") -> list[str]:
    """Registered metric names matching a shell-style wildcard pattern, sorted."""
    return METRICS.names(pattern)


def evaluate_metric(
    metric: str | MetricSpec,
    sampler: GroundTruthSampler,
    encode: Encoder | None,
    rng: RandomGenerator,
    *,
    settings: str = "study",
    encode_posterior: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    dataset: str | None = None,
    **overrides: Any,
) -> dict[str, float]:
    """Sample what ``metric`` needs from ``sampler`` and score it.

    Args:
        metric: a registered name or a spec.
        sampler: the ground-truth data set.
        encode: observations -> codes ``(n, n_codes)`` (the posterior mean in the studies).
        rng: the only source of randomness; train is drawn before test, as in dlib.
        settings: ``"study"`` or ``"fast"``; ``overrides`` replace single entries.
        encode_posterior: observations -> (mean, logvar), for ``posterior_grid`` metrics.
        dataset: the dataset's registered name, whose ``dataset_settings`` apply (Chen et al.'s
            MIG leaves out dSprites' shape); default: the sampler's ``name``, if it has one.
        **overrides: single settings that replace the metric's and the dataset's.

    The settings are, each overriding the one before: the metric's ``settings``, the
    dataset's ``dataset_settings``, then ``overrides``. This is the one place they meet:
    the runner scores through here too.
    """
    spec = metric if isinstance(metric, MetricSpec) else get_metric(metric)
    if spec.inputs == "model_group":
        raise ValueError(
            f"metric {spec.name!r} scores a group of runs (same config, different seeds) together, not one "
            "model; it is computed by `vaebench udr --suite S` from the runs' recorded encodings"
        )
    rng = check_rng(rng)
    dataset = getattr(sampler, "name", None) if dataset is None else dataset
    kwargs = {**spec.settings(settings), **spec.dataset_settings.get(dataset, {}), **overrides}
    sampling = {k: kwargs.pop(k) for k in _SAMPLING_KEYS[spec.inputs] if k in kwargs}
    batch_size = sampling.get("batch_size", 16)
    # Metrics with their own randomness (DCI's trees, Chen's MIG) continue on the same generator.
    if spec.inputs != "sampler" and "rng" in inspect.signature(spec.function).parameters:
        kwargs.setdefault("rng", rng)
    if spec.inputs == "sampler":
        return spec.function(sampler, encode, rng, **kwargs)
    if spec.inputs == "posterior_grid":
        if encode_posterior is None:
            raise ValueError(f"metric {spec.name!r} needs encode_posterior (observations -> (mean, logvar))")
        factors = factor_grid(sampler.factor_sizes, sampling.get("grid_max_values"))
        means, logvars = [], []
        for start in range(0, len(factors), batch_size):
            chunk = factors[start : start + batch_size]
            mean, logvar = encode_posterior(sampler.sample_observations_from_factors(chunk, rng))
            means.append(np.asarray(mean, dtype=np.float64))
            logvars.append(np.asarray(logvar, dtype=np.float64))
        return spec.function(
            np.concatenate(means), np.concatenate(logvars), factors, tuple(sampler.factor_sizes), **kwargs
        )
    if encode is None:
        raise ValueError(f"metric {spec.name!r} needs encode (observations -> codes)")
    codes, factors = _sample(sampler, encode, sampling["n_train"], rng, batch_size)
    if spec.inputs == "codes_factors":
        return spec.function(codes, factors, **kwargs)
    if spec.inputs == "codes_only":
        return spec.function(codes, **kwargs)
    codes_test, factors_test = _sample(sampler, encode, sampling["n_test"], rng, batch_size)
    return spec.function(codes, factors, codes_test, factors_test, **kwargs)
