"""Run records -> labelled runs, grouped into table cells: what the tables and the figures share.

A *configuration* is a (dataset, model, hyperparameters) cell; its runs differ
only by seed. The hyperparameters shown in a label are the model's
regularisation strength (the record's ``strength``) plus every spec field that
differs between the model's runs on that dataset, so two cells never share a
label and a sweep over, say, ``steps`` is not silently averaged together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report.results import (
    HEADLINE_METRICS,
    fmt_param,
    hyperparameter_pairs,
    param_sort_key,
    record_dict,
    record_row,
)
from benchmarks.runner.records import RecordError, read_record

__all__ = [
    "HEADLINE_METRICS",
    "TRAINING_TERMS",
    "Run",
    "Config",
    "Stats",
    "SkippedRecord",
    "SuiteRuns",
    "list_suites_with_records",
    "suites_to_report",
    "load_suite_runs",
    "configurations",
    "metric_columns",
    "metric_header",
    "metric_label",
    "metric_directions",
    "direction_arrow",
    "summarise",
    "fmt",
    "fmt_param",
]

#: Terms of the record's ``final`` (the last log window's training averages) shown after the metrics.
TRAINING_TERMS = ("reconstruction", "kl")

# Two different quantities go by "MIG": a header must always say which one a number is.
_LABELS = {
    "mig": "MIG (histogram, dlib)",
    "mig_chen": "MIG (Chen et al., log K)",
    "beta_vae_eval_accuracy": "β-VAE score (eval acc.)",
    "factor_vae_eval_accuracy": "FactorVAE score (eval acc.)",
    "dci_disentanglement": "DCI disentanglement",
    "sap": "SAP",
    "modularity": "Modularity",
    "irs": "IRS",
    "reconstruction": "Reconstruction (final)",
    "kl": "KL (final)",
}

# Fallback for "is higher better?" when the metric registry does not declare it for a key
# (the registry is being extended metric by metric; a report must not wait for it). Matched
# in order against the flat record key, so prefixed keys ("dci_completeness") are found too.
# None means neither direction is better (counts, diagnostics).
_FALLBACK_DIRECTIONS: tuple[tuple[str, bool | None], ...] = (
    (r"active_dims$", None),
    (r"(total_correlation|wasserstein_correlation(_norm)?|mutual_info_score)$", False),
    (r"^(reconstruction|kl|loss)$", False),
    (r"(accuracy|informativeness(_train|_test)?|explicitness(_score)?(_train|_test)?)$", True),
    (r"(disentanglement|completeness)$", True),
    (r"(^|_)(mig|mig_chen|sap|sap_score|modularity|modularity_score|irs)$", True),
)


@dataclass(frozen=True)
class SkippedRecord:
    """A record file that could not be read; ``path`` is relative to the output directory."""

    path: str
    reason: str


@dataclass
class Run:
    record: dict[str, Any]
    run_id: str
    dataset: str
    model: str
    seed: int
    ok: bool
    #: (field, value) pairs that tell this run's configuration apart, strength first.
    hparams: tuple[tuple[str, Any], ...] = ()
    strength_field: str | None = None
    strength_value: float | None = None

    @property
    def hparam_text(self) -> str:
        return ", ".join(f"{k}={fmt_param(v)}" for k, v in self.hparams)

    @property
    def label(self) -> str:
        return f"{self.model} ({self.hparam_text})" if self.hparams else self.model

    @property
    def sort_key(self) -> tuple:
        return (self.dataset, self.model, tuple((k, param_sort_key(v)) for k, v in self.hparams))

    def value(self, key: str) -> float | None:
        """A metric, or a training term from ``final``; None where null, missing or not finite."""
        source = self.record.get("final") if key in TRAINING_TERMS else self.record.get("metrics")
        value = (source or {}).get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)


@dataclass
class Config:
    """One table cell's runs: same dataset, model and hyperparameters; ok runs only, by seed."""

    dataset: str
    model: str
    label: str
    hparam_text: str
    sort_key: tuple
    runs: list[Run] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [v for v in (r.value(key) for r in self.runs) if v is not None]


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    std: float | None  # ddof=1; None for a single value
    median: float
    min: float
    max: float


@dataclass
class SuiteRuns:
    suite: str
    runs: list[Run]
    skipped: list[SkippedRecord]

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    @property
    def failed_runs(self) -> list[Run]:
        return [r for r in self.runs if not r.ok]

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.runs})


def list_suites_with_records(out_dir: Path) -> list[str]:
    """Suites that have at least one ``*.json`` file (readable or not) under ``out_dir/runs``."""
    root = Path(out_dir) / "runs"
    return (
        sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.json")))
        if root.is_dir()
        else []
    )


def suites_to_report(out_dir: Path, suite: str | None = None) -> list[str]:
    """The suites a report regenerates: every suite with records, or only ``suite``.

    Raises FileNotFoundError when ``suite`` is named and has no records.
    """
    suites = list_suites_with_records(out_dir)
    if suite is not None:
        if suite not in suites:
            raise FileNotFoundError(
                f"no run records for suite {suite!r} under {Path(out_dir) / 'runs' / suite}"
            )
        suites = [suite]
    return suites


def load_suite_runs(out_dir: Path, suite: str) -> SuiteRuns:
    """Every record of one suite, sorted; an unreadable one is kept aside with its reason, never touched.

    The files are read here rather than through ``records.iter_records`` because the report
    names each skipped file by its path relative to the output directory, and
    ``RecordError`` carries the path only inside its message.
    """
    out_dir = Path(out_dir)
    runs: list[Run] = []
    skipped: list[SkippedRecord] = []
    for path in sorted((out_dir / "runs" / suite).glob("*.json")):
        relative = path.relative_to(out_dir).as_posix()
        try:
            record = record_dict(read_record(path))
        except RecordError as exc:
            skipped.append(SkippedRecord(relative, str(exc).replace(str(path), relative)))
            continue
        try:
            runs.append(_run(record))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Valid JSON with the right schema tag but fields of the wrong type: skip it the same way.
            skipped.append(SkippedRecord(relative, f"run record {relative}: malformed field ({exc})"))
    _assign_hparams(runs)
    runs.sort(key=lambda r: (r.sort_key, r.seed, r.run_id))
    return SuiteRuns(suite, runs, skipped)


def _run(record: dict[str, Any]) -> Run:
    row = record_row(record)  # checks every field's type, as the DataFrame reads it
    return Run(
        record=record,
        run_id=row["run_id"],
        dataset=row["dataset"],
        model=row["model"],
        seed=row["seed"],
        ok=row["status"] == "ok",
        strength_field=row["strength_field"],
        strength_value=(record.get("strength") or {}).get("value"),
    )


def _assign_hparams(runs: list[Run]) -> None:
    """The labels of ``benchmarks.report.results``: strength first, then every varying setting."""
    for run, pairs in zip(runs, hyperparameter_pairs([record_row(r.record) for r in runs])):
        run.hparams = pairs


def configurations(runs: Iterable[Run]) -> list[Config]:
    """The ok runs grouped into cells, sorted by dataset, model and hyperparameter values."""
    cells: dict[tuple, Config] = {}
    for run in runs:
        if not run.ok:
            continue
        key = run.sort_key
        if key not in cells:
            cells[key] = Config(run.dataset, run.model, run.label, run.hparam_text, key)
        cells[key].runs.append(run)
    for cell in cells.values():
        cell.runs.sort(key=lambda r: (r.seed, r.run_id))
    return [cells[k] for k in sorted(cells)]


def metric_columns(runs: Iterable[Run]) -> list[str]:
    """Metric keys found in the ok records, headline first, then by name, then the training terms."""
    found: set[str] = set()
    terms: set[str] = set()
    for run in runs:
        if run.ok:
            found.update(k for k in (run.record.get("metrics") or {}) if k not in TRAINING_TERMS)
            terms.update(k for k in TRAINING_TERMS if run.value(k) is not None)
    headline = [k for k in HEADLINE_METRICS if k in found]
    rest = sorted(found - set(headline))
    return headline + rest + [k for k in TRAINING_TERMS if k in terms]


def metric_label(key: str) -> str:
    return _LABELS.get(key, key)


def metric_directions(metric_names: Iterable[str], keys: Iterable[str]) -> dict[str, bool | None]:
    """Per output key: True if higher is better, False if lower is, None if neither or unknown.

    The metric registry is asked first (``metrics.get_metric(name).higher_is_better`` for
    each metric the records ran); keys it does not declare fall back to the built-in rules
    above. ``reconstruction`` and ``kl`` are training terms, always lower-is-better.
    """
    declared = _registry_directions(metric_names)
    out: dict[str, bool | None] = {}
    for key in keys:
        if key in declared and key not in TRAINING_TERMS:
            out[key] = declared[key]
            continue
        out[key] = None
        for pattern, higher in _FALLBACK_DIRECTIONS:
            if re.search(pattern, key):
                out[key] = higher
                break
    return out


def _registry_directions(metric_names: Iterable[str]) -> dict[str, bool | None]:
    """``MetricSpec.higher_is_better`` ({flat output key: bool | None}) of each metric the records ran.

    Read defensively: tables of past runs must still render when the metrics package cannot
    be imported, a metric has since been renamed or removed, or a plug-in fails to load.
    """
    try:
        from metrics import get_metric
    except ImportError:
        return {}
    found: dict[str, bool | None] = {}
    for name in sorted(set(metric_names)):
        try:
            declared = get_metric(name).higher_is_better
        except Exception:  # unknown name, broken plug-in, or an entry without the attribute
            continue
        if isinstance(declared, Mapping):
            found.update({str(k): v for k, v in declared.items() if v is None or isinstance(v, bool)})
    return found


def direction_arrow(higher_is_better: bool | None) -> str:
    return {True: "↑", False: "↓"}.get(higher_is_better, "—")


def metric_header(key: str, directions: Mapping[str, bool | None]) -> str:
    return f"{metric_label(key)} {direction_arrow(directions.get(key))}"


def summarise(values: list[float]) -> Stats | None:
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    return Stats(
        n=len(a),
        mean=float(a.mean()),
        std=float(a.std(ddof=1)) if len(a) > 1 else None,
        median=float(np.median(a)),
        min=float(a.min()),
        max=float(a.max()),
    )


def fmt(x: float, digits: int = 3) -> str:
    """Fixed formatting for display; never "-0.000"."""
    text = f"{x:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.0*", text) else text


def stats_text(s: Stats | None, digits: int = 3, *, with_n: bool = True) -> str:
    """A cell: "mean ± std (n=N)", "mean (n=1)" for one value, "—" for none; ``with_n=False`` drops the n."""
    if s is None:
        return "—"
    text = fmt(s.mean, digits) if s.std is None else f"{fmt(s.mean, digits)} ± {fmt(s.std, digits)}"
    return f"{text} (n={s.n})" if with_n else text
