"""A run's protocol, diffed against a reference study's full spec.

The reference (``benchmarks/protocols/<name>.toml``) holds every value a study
trained and scored with, each with the disentanglement_lib file it comes from.
``compare_run(spec)`` diffs a run's *full* spec against it -- training, model
(its full config, defaults included), data, evaluation -- and ``compare_runs``
adds what only a set of runs shows (the seeds). A difference is a *deviation*
(the run did something else than the study) or an *addition* (the run also did
something the study did not: an extra metric). "matches" is said only when
there is no deviation; every note, footnote and record block is computed here,
never written by hand.

Where a spec leaves a choice to the machine (``precision = "auto"``,
``dataset_source = "auto"``), a record's provenance says what ran; pass it as
``ran`` and the diff compares that.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from benchmarks.runner.spec import RunSpec, thaw
from metrics import get_metric
from vaebench.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "GROUPS",
    "Several",
    "Difference",
    "ProtocolDiff",
    "Reference",
    "load_reference",
    "compare_run",
    "compare_runs",
    "protocol_of",
    "describe_value",
]

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
DEFAULT_REFERENCE = "unsupervised_study_v1"
#: The groups a difference belongs to, in the order notes list them.
GROUPS = ("training", "model", "data", "evaluation", "seeds")
#: Metric settings that change how a metric runs, not its numbers, so not deviations: the threads of
#: its fits (tested), and how many points the intervention metrics hand the encoder per call (the
#: runner encodes each grid point once, whatever the call).
_NOT_NUMBERS = ("n_jobs", "encode_batch_size")
#: What "auto" means where a spec leaves a choice to the machine.
_AUTO = {
    "precision": "auto (bf16 autocast on CUDA, fp32 elsewhere)",
    "dataset_source": "auto (the official file where present, else the procedural images)",
}


class Several(tuple):
    """The values several runs used for one setting (a set of runs' ``Difference.value``)."""


@dataclass(frozen=True)
class Difference:
    """One setting where a run differs from the reference: its value against the reference's."""

    group: str  # one of GROUPS
    key: str  # e.g. "steps", "annealed_vae.gamma", "mig.n_train", "mig@sampled"
    value: Any  # the run's (for several runs: their values, sorted)
    reference: Any  # the reference's
    source: str = ""  # the reference file the value comes from

    def to_dict(self) -> dict[str, Any]:
        """The difference as a record's JSON (several values as a list)."""
        return {
            "group": self.group,
            "key": self.key,
            "value": list(self.value) if isinstance(self.value, Several) else self.value,
            "reference": self.reference,
            "source": self.source,
        }


@dataclass(frozen=True)
class ProtocolDiff:
    """Every deviation and addition of one run, or of a set of runs, against a reference."""

    reference: str
    title: str
    deviations: tuple[Difference, ...] = ()
    additions: tuple[Difference, ...] = ()

    @property
    def matches(self) -> bool:
        """Whether the runs follow the reference in every setting (additions aside)."""
        return not self.deviations

    def to_dict(self) -> dict[str, Any]:
        """The record's ``protocol`` block."""
        return {
            "reference": self.reference,
            "matches": self.matches,
            "deviations": [d.to_dict() for d in self.deviations],
            "additions": [d.to_dict() for d in self.additions],
        }

    def note(self) -> str:
        """One paragraph for a table or a README: "matches" only when nothing differs."""
        if self.matches:
            text = f"Protocol: matches {self.title}."
        else:
            parts = []
            for group in GROUPS:
                of_group = [d for d in self.deviations if d.group == group]
                # "mig@sampled": not scored on that representation; "mig@sampled.n_train": a setting.
                unscored = [d.key for d in of_group if _unscored_representation(d)]
                items = [_describe(d) for d in of_group if not _unscored_representation(d)]
                if unscored:
                    representation = unscored[0].partition("@")[2]
                    items.append(
                        f"not scored on the {representation} representation: "
                        + ", ".join(k.partition("@")[0] for k in unscored)
                        + " (study: every metric on both)"
                    )
                if items:
                    parts.append(f"{group}: " + "; ".join(items))
            text = f"Protocol: deviates from {self.title} in {len(self.deviations)} setting(s). " + ". ".join(
                parts
            )
            text += "."
        if self.additions:
            text += " Additions: " + "; ".join(_describe(d) for d in self.additions) + "."
        return text


@dataclass(frozen=True)
class Reference:
    """A study's full spec (see the module docstring)."""

    name: str
    title: str
    commit: str
    seeds: tuple[int, ...]
    seeds_source: str
    training: Mapping[str, Mapping[str, Any]]  # key -> {value, source}
    model: Mapping[str, Mapping[str, Any]]
    models: Mapping[str, Mapping[str, Any]]  # model -> {grid, fixed, ratio, training, source}
    data: Mapping[str, Mapping[str, Any]]
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def steps_of(self, model: str) -> int:
        """The reference's number of training steps for ``model``."""
        return self.models.get(model, {}).get("training", {}).get("steps", self.training["steps"]["value"])


@lru_cache(maxsize=8)
def load_reference(name: str = DEFAULT_REFERENCE) -> Reference:
    """The reference spec ``benchmarks/protocols/<name>.toml``."""
    path = PROTOCOLS / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PROTOCOLS.glob("*.toml"))
        raise UserError(f"unknown reference protocol {name!r}; known: {', '.join(known)}")
    raw = tomllib.loads(path.read_text())
    return Reference(
        name=raw["name"],
        title=raw["title"],
        commit=raw["commit"],
        seeds=tuple(raw["seeds"]["value"]),
        seeds_source=raw["seeds"]["source"],
        training=raw["training"],
        model=raw["model"],
        models=raw["models"],
        data=raw["data"],
        evaluation=raw["evaluation"],
    )


def protocol_of(spec: RunSpec) -> dict[str, dict[str, Any]]:
    """The run's settings as the reference names them: per group, key -> value (full model config)."""
    t = spec.training
    return {
        "training": {
            "steps": t.steps,
            "batch_size": t.batch_size,
            "learning_rate": t.learning_rate,
            "optimizer": t.optimizer,
            "precision": t.precision,
        },
        "model": {
            "model": spec.model,
            **spec.full_model_config(),
            **({"pairs": thaw(spec.pairs)} if spec.pairs else {}),
        },
        "data": {"dataset": spec.dataset, "dataset_source": spec.dataset_source},
        "evaluation": {
            "evaluation_seed": spec.evaluation_seed,
            "representation": spec.representation,
            "metrics": thaw(spec.metrics),
        },
    }


def _plain(value: Any) -> Any:
    """Lists and tuples compare equal; numbers compare as numbers."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def compare_run(
    spec: RunSpec, reference: Reference | None = None, *, ran: Mapping[str, Any] | None = None
) -> ProtocolDiff:
    """Every deviation and addition of one run against ``reference`` (default: the study).

    Args:
        spec: the run.
        reference: the study's full spec (``load_reference``); the default study when None.
        ran: what a record's provenance says actually ran, for choices the spec leaves to the
            machine: ``precision`` (resolved) and ``dataset_source`` (the source used).
    """
    ref = reference or load_reference()
    ran = dict(ran or {})
    deviations = [
        *_training_deviations(spec, ref, ran),
        *_model_deviations(spec, ref),
        *_data_deviations(spec, ref, ran),
    ]
    evaluation, additions = _evaluation_differences(spec, ref)
    return ProtocolDiff(ref.name, ref.title, tuple(deviations + evaluation), tuple(additions))


def _training_deviations(spec: RunSpec, ref: Reference, ran: Mapping[str, Any]) -> list[Difference]:
    """The training settings that differ from the study's.

    Steps (the model's own count where the study has one), batch size, learning rate, optimiser,
    precision (what ran, where the record says).
    """
    t, found = spec.training, []
    values = {
        "steps": t.steps,
        "batch_size": t.batch_size,
        "learning_rate": t.learning_rate,
        "optimizer": t.optimizer,
        "precision": ran.get("precision", t.precision),
    }
    for key, value in values.items():
        expected = ref.steps_of(spec.model) if key == "steps" else ref.training[key]["value"]
        if value == expected:
            continue
        own = key in ref.models.get(spec.model, {}).get("training", {})  # FactorVAE's 150,000 updates
        shown = _AUTO.get(key, value) if value == "auto" else value
        name = f"{spec.model}.{key}" if own else key
        found.append(Difference("training", name, shown, expected, ref.training[key]["source"]))
    return found


def _model_deviations(spec: RunSpec, ref: Reference) -> list[Difference]:
    """The model settings that differ from the study's.

    The variant's full config (defaults included) against the study's shared values and its model's
    grid, fixed values and ratios; a model or pairs the study did not have.
    """
    config = spec.full_model_config()
    found = [
        Difference("model", key, config.get(key), entry["value"], entry["source"])
        for key, entry in ref.model.items()
        if config.get(key) != entry["value"]
    ]
    study_model = ref.models.get(spec.model)
    if study_model is None:
        found.append(Difference("model", "model", spec.model, "one of " + ", ".join(ref.models)))
    else:
        source, prefix = study_model.get("source", ""), f"{spec.model}."
        for name, grid in study_model.get("grid", {}).items():
            if config.get(name) not in grid:
                found.append(Difference("model", prefix + name, config.get(name), _one_of(grid), source))
        for name, expected in study_model.get("fixed", {}).items():
            if config.get(name) != expected:
                found.append(Difference("model", prefix + name, config.get(name), expected, source))
        for name, (other, factor) in study_model.get("ratio", {}).items():
            if config.get(name) != factor * config.get(other, float("nan")):
                tied = f"{factor:g} x {other}"
                found.append(Difference("model", prefix + name, config.get(name), tied, source))
    if spec.pairs is not None:
        found.append(
            Difference("model", "pairs", thaw(spec.pairs), "none (single observations, unsupervised)")
        )
    return found


def _data_deviations(spec: RunSpec, ref: Reference, ran: Mapping[str, Any]) -> list[Difference]:
    """The dataset (one of the study's) and its source (what ran, where the record says)."""
    found = []
    dataset = ref.data["dataset"]
    if spec.dataset not in dataset["value"]:
        found.append(
            Difference("data", "dataset", spec.dataset, _one_of(dataset["value"]), dataset["source"])
        )
    source = ran.get("dataset_source", spec.dataset_source)
    expected = ref.data["dataset_source"]
    if source != expected["value"]:
        shown = _AUTO["dataset_source"] if source == "auto" else source
        found.append(Difference("data", "dataset_source", shown, expected["value"], expected["source"]))
    return found


def _evaluation_differences(spec: RunSpec, ref: Reference) -> tuple[list[Difference], list[Difference]]:
    """The scoring's (deviations, additions).

    The evaluation seed, each study metric's presence and settings on each representation, and the
    metrics the study did not score.
    """
    ev, found = ref.evaluation, []
    if spec.evaluation_seed != ev["evaluation_seed"]["value"]:
        seed = ev["evaluation_seed"]
        found.append(
            Difference("evaluation", "evaluation_seed", spec.evaluation_seed, seed["value"], seed["source"])
        )
    scored = thaw(spec.metrics)
    representations = ev["representations"]
    for metric, entry in ev["metrics"].items():
        if metric not in scored:
            found.append(Difference("evaluation", metric, "not scored", "scored", entry["source"]))
            continue
        for scored_entry in [e for e in scored if e.partition("@")[0] == metric]:
            found += _setting_deviations(scored_entry, scored[scored_entry], entry)
        for representation in representations["value"]:
            if representation != "mean" and f"{metric}@{representation}" not in scored:
                expected = f"scored on the {representation} representation"
                found.append(
                    Difference(
                        "evaluation",
                        f"{metric}@{representation}",
                        "not scored",
                        expected,
                        representations["source"],
                    )
                )
    additions = [
        Difference("evaluation", entry, "scored", "not in the study")
        for entry in scored
        if entry.partition("@")[0] not in ev["metrics"]
    ]
    return found, additions


@cache
def _defaults(function: Any) -> Mapping[str, Any]:
    """A metric function's keyword defaults (those it has), read once: a suite's runs share them."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _setting_deviations(
    scored_entry: str, settings: Mapping[str, Any], entry: Mapping[str, Any]
) -> list[Difference]:
    """One scored entry's settings against the study's.

    Its listed ones, and any other setting the run gives that differs from the metric function's
    default (the study left it at the default).
    """
    found = []
    for key, expected in entry["settings"].items():
        value = settings.get(key)
        if _plain(value) != _plain(expected):
            found.append(Difference("evaluation", f"{scored_entry}.{key}", value, expected, entry["source"]))
    defaults = _defaults(get_metric(scored_entry.partition("@")[0]).function)
    for key, value in settings.items():
        if key in entry["settings"] or key in _NOT_NUMBERS or key not in defaults:
            continue
        default = defaults[key]
        if _plain(value) != _plain(default):
            study = f"{describe_value(default)} (the default)"
            found.append(Difference("evaluation", f"{scored_entry}.{key}", value, study, entry["source"]))
    return found


def compare_runs(
    specs: Iterable[RunSpec],
    reference: Reference | None = None,
    *,
    ran: Mapping[str, Mapping[str, Any]] | None = None,
) -> ProtocolDiff:
    """The deviations and additions of a set of runs, merged per setting, plus the seeds.

    For a suite or a table: each run's differences, merged into one entry per setting that lists the
    values the runs used.

    Args:
        specs: the runs (a suite, a table).
        reference: the study to compare with (None: ``unsupervised_study_v1``).
        ran: run id -> what its record says ran (see ``compare_run``).
    """
    ref = reference or load_reference()
    ran = ran or {}
    specs = list(specs)
    merged: dict[tuple, dict[str, Any]] = {}
    for spec in specs:
        diff = compare_run(spec, ref, ran=ran.get(spec.run_id))
        for kind, items in (("deviation", diff.deviations), ("addition", diff.additions)):
            for d in items:
                slot = merged.setdefault((kind, d.group, d.key, repr(d.reference)), {"d": d, "values": []})
                if d.value not in slot["values"]:
                    slot["values"].append(d.value)
    seeds = sorted({s.seed for s in specs})
    if specs and seeds != sorted(ref.seeds):
        merged[("deviation", "seeds", "seeds", "")] = {
            "d": Difference("seeds", "seeds", None, _span(ref.seeds), ref.seeds_source),
            "values": [_span(seeds)],
        }
    deviations, additions = [], []
    for (kind, *_), slot in sorted(merged.items(), key=lambda item: (GROUPS.index(item[0][1]), item[0][2])):
        d, values = slot["d"], slot["values"]
        value = values[0] if len(values) == 1 else Several(_sorted(values))
        (deviations if kind == "deviation" else additions).append(
            Difference(d.group, d.key, value, d.reference, d.source)
        )
    return ProtocolDiff(ref.name, ref.title, tuple(deviations), tuple(additions))


def _sorted(values: list) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _one_of(values: Iterable) -> str:
    return "one of " + ", ".join(describe_value(v) for v in values)


def _span(seeds: Iterable[int]) -> str:
    """0, 1, 2 -> "0-2 (3 seeds)"; gaps listed."""
    seeds = sorted(seeds)
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]} ({len(seeds)} seeds)"
    return ", ".join(map(str, seeds)) + f" ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"


def describe_value(value: Any) -> str:
    """A setting's value as notes and tables print it (thousands separated, lists bracketed)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={describe_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _unscored_representation(d: Difference) -> bool:
    """Whether ``d`` says a study metric went unscored on a representation (key ``metric@representation``)."""
    metric, at, rest = d.key.partition("@")
    return bool(at) and "." not in rest


def _describe(d: Difference) -> str:
    value = (
        " or ".join(describe_value(v) for v in d.value)
        if isinstance(d.value, Several)
        else describe_value(d.value)
    )
    if d.reference == "not in the study":
        return f"{d.key} (not in the study)"
    return f"{d.key} = {value} (study: {describe_value(d.reference)})"
