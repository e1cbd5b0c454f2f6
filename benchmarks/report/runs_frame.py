"""The run records as one tidy ``pandas.DataFrame`` (one row per run), and its one summary over seeds.

Every report reads the records here and nowhere else: ``read_runs(out_dir, suite)`` reads
``out_dir/runs/<suite>/*.json`` as typed ``RunRecord``s (``benchmarks.runner.records.read_record``)
into ``RunsFrame``: the frame, the records by run id (for what a frame cannot hold: MI
matrices, metric warnings, library versions) and the files it could not read. Tables,
figures, the README sections, exports and analyses are all built on that frame, and
summarise it over seeds with ``summary_stats``. ``load_results(out_dir, suite=None)``
returns the frame alone; ``melt_results(df)`` its long form: one row per (run, metric).

Columns, in this order (each group only where some record has the field):

====================================  =========  =====================================================
column                                dtype      what
====================================  =========  =====================================================
``run_id suite dataset model``        string     the record's names
``seed``                              Int64      the spec's seed; NA for an external representation
``status``                            string     ``"ok"`` or ``"failed"``
``strength_field``                    string     the variant's regularisation strength (``beta``...)
``strength_value``                    float64    its value; NaN for a model without one
``hyperparameters``                   string     ``"beta=4"``: the strength plus every spec field that
                                                 varies between the model's runs on that dataset
``config``                            string     ``"beta_vae (beta=4)"``: one table row; runs in the same
                                                 (dataset, config) differ by seed only
``config.<field>``                    inferred   every model hyperparameter (``config.beta``,
                                                 ``config.latent_dim``, ``config.architecture``)
``training.<field>``                  inferred   every training setting (``training.steps``...)
``protocol.<key>``                    inferred   the record's ``protocol`` block where it has one
                                                 (architecture, init, likelihood, estimator, ...)
``spec.<key>``                        inferred   other spec fields (``spec.representation``,
                                                 ``spec.evaluation_seed``, ``spec.dataset_source``,
                                                 ``spec.metrics``: the metrics run, comma-separated)
``settings.<metric>.<key>``           inferred   each metric's settings (``settings.mig.n_bins``)
``metric.<key>``                      float64    each score on the mean representation, the record's
                                                 flat key (``metric.mig``, ``metric.dci_disentanglement``);
                                                 NaN where null, missing or not finite
``metric_sampled.<key>``              float64    the same on the sampled representation, where recorded
``final.<term>``                      float64    the last log window's training terms (``final.kl``)
``failure_step``                      Int64      the step a failed run stopped at
``failure_reason``                    string     why
``timing.<key>``                      float64    ``train_seconds``, ``eval_seconds``, ``images_per_second``
``provenance.<key>``                  inferred   ``git_commit``, ``git_dirty``, ``device``,
                                                 ``device_name``, ``precision``, ``dataset_source``
====================================  =========  =====================================================

"Inferred" columns hold Int64 when every value is an integer, float64 when every value is a
number, boolean when every value is a bool, and string otherwise (lists and objects as
sorted JSON). Rows are sorted by dataset, model, hyperparameter values (numbers
numerically), seed and run id. A record that cannot be read, or whose fields have the wrong
types, is logged by path and left out.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.report.presentation import (
    SAMPLED_KEY_PREFIX,
    TRAINING_TERMS,
    fmt_param,
    metric_order,
    param_sort_key,
)
from benchmarks.runner.records import RecordError, RunRecord, read_record

__all__ = [
    "METRIC_PREFIX",
    "SAMPLED_PREFIX",
    "FINAL_PREFIX",
    "SETTING_PREFIXES",
    "SkippedRecord",
    "RunsFrame",
    "list_suites_with_records",
    "suites_to_report",
    "read_runs",
    "load_results",
    "results_frame",
    "melt_results",
    "record_row",
    "metric_column",
    "value_column",
    "metric_keys",
    "value_keys",
    "hyperparameter_pairs",
    "SUMMARY_STATS",
    "summary_stats",
]

METRIC_PREFIX = "metric."
SAMPLED_PREFIX = "metric_sampled."
FINAL_PREFIX = "final."
#: Column groups that describe how a run was configured: two runs that differ in any of these
#: are different configurations and never share a table row.
SETTING_PREFIXES = ("config.", "training.", "protocol.", "spec.", "settings.")

_ID_COLUMNS = ("run_id", "suite", "dataset", "model", "seed", "status", "strength_field", "strength_value")
_LABEL_COLUMNS = ("hyperparameters", "config")
_PROVENANCE_KEYS = ("git_commit", "git_dirty", "device", "device_name", "precision")

log = logging.getLogger(__name__)


# -- reading the records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedRecord:
    """A record file that could not be read; ``path`` is relative to the output directory."""

    path: str
    reason: str


@dataclass(frozen=True)
class RunsFrame:
    """The readable records of one suite (or of all, ``suite=None``) and the files left aside.

    Attributes:
        suite: the suite read, or None for every suite.
        frame: ``results_frame`` of the records, failed runs included.
        records: the typed records by run id, for the fields a frame does not hold.
        pairs: per (dataset, configuration label), the (field, value) pairs that label it,
            strength first (``hyperparameter_pairs``).
        skipped: the files that could not be read, never rewritten.
    """

    suite: str | None
    frame: pd.DataFrame
    records: dict[str, RunRecord]
    pairs: dict[tuple[str, str], tuple[tuple[str, Any], ...]]
    skipped: list[SkippedRecord]

    @property
    def ok(self) -> pd.DataFrame:
        """The frame's successful runs."""
        return self.frame[self.frame["status"] == "ok"]

    @property
    def datasets(self) -> list[str]:
        """Every dataset with a record, failed runs included, sorted."""
        return sorted(self.frame["dataset"].astype(str).unique())


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


def read_runs(out_dir: Path | str, suite: str | None = None) -> RunsFrame:
    """Every record of one suite (or of every suite) as typed records and one frame.

    A file that cannot be read, or whose fields have the wrong types, is logged by its path
    relative to ``out_dir``, kept aside in ``skipped`` with its reason, and never touched.
    Raises FileNotFoundError when ``suite`` is named and has no records.
    """
    out_dir = Path(out_dir)
    if suite is not None:
        suites_to_report(out_dir, suite)
    rows: list[dict[str, Any]] = []
    records: dict[str, RunRecord] = {}
    skipped: list[SkippedRecord] = []
    for path in sorted((out_dir / "runs").glob(f"{suite or '*'}/*.json")):
        relative = path.relative_to(out_dir).as_posix()
        try:
            record = read_record(path)
        except RecordError as exc:
            skipped.append(SkippedRecord(relative, str(exc).replace(str(path), relative)))
            continue
        try:
            rows.append(record_row(record))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Valid JSON with the right schema tag but fields of the wrong type: skip it the same way.
            skipped.append(SkippedRecord(relative, f"run record {relative}: malformed field ({exc})"))
            continue
        records[rows[-1]["run_id"]] = record
    for skip in skipped:
        log.warning("skipped unreadable run record %s: %s", skip.path, skip.reason)
    frame, pairs = _frame(rows)
    return RunsFrame(suite, frame, records, pairs, skipped)


# -- one record, one row: the only place that knows the record's field names ---------------------------


def record_row(record: RunRecord) -> dict[str, Any]:
    """One record as a flat {column: Python value}; raises TypeError/ValueError on malformed fields."""
    spec = record.spec
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be an object, not {type(spec).__name__}")
    strength = record.strength or {}
    failure = record.failure or {}
    provenance = record.provenance or {}
    row: dict[str, Any] = {
        "run_id": str(record.run_id),
        "suite": str(record.suite),
        "dataset": str(spec["dataset"]),
        "model": str(spec["model"]),
        "seed": None if spec["seed"] is None else int(spec["seed"]),  # None: external, no training seed
        "status": str(record.status),
        "strength_field": strength.get("field"),
        "strength_value": _number(strength.get("value")),
    }
    for key, value in sorted(_mapping(spec.get("model_config"), "model_config").items()):
        row[f"config.{key}"] = value
    for key, value in sorted(_mapping(spec.get("training"), "training").items()):
        row[f"training.{key}"] = value
    protocol = _mapping(record.protocol, "protocol")
    if "deviations" in protocol:  # the diff against the study: whether it matches, not its list
        row["protocol.matches"] = protocol.get("matches")
    else:  # an older record's block of protocol choices
        for key, value in sorted(protocol.items()):
            row[f"protocol.{key}"] = value
    settings = _mapping(spec.get("metrics"), "metrics")
    for key, value in sorted(spec.items()):
        if key in ("suite", "seed", "dataset", "model", "model_config", "training", "protocol"):
            continue
        row[f"spec.{key}"] = ",".join(sorted(settings)) if key == "metrics" else value
    for name, kw in sorted(settings.items()):
        for key, value in sorted(_mapping(kw, f"metrics.{name}").items()):
            row[f"settings.{name}.{key}"] = value
    plain = "sampled" if spec.get("representation") == "sampled" else "mean"
    for key, value in _mapping(record.metrics, "metrics").items():
        row[metric_column(key, plain)] = _number(value)
    for key, value in sorted(_mapping(record.final, "final").items()):
        row[FINAL_PREFIX + key] = _number(value)
    row["failure_step"] = None if failure.get("step") is None else int(failure["step"])
    row["failure_reason"] = failure.get("reason")
    for key, value in sorted(_mapping(record.timing, "timing").items()):
        row[f"timing.{key}"] = _number(value)
    for key in _PROVENANCE_KEYS:
        row[f"provenance.{key}"] = provenance.get(key)
    row["provenance.dataset_source"] = (provenance.get("dataset") or {}).get("source")
    return row


def _representation(key: str, plain: str) -> tuple[str, str]:
    if key.startswith(SAMPLED_KEY_PREFIX) and len(key) > len(SAMPLED_KEY_PREFIX):
        return "sampled", key[len(SAMPLED_KEY_PREFIX) :]
    return plain, key


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be an object, not {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    """A finite number as float; NaN for null, missing, non-numbers, bools and infinities."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return math.nan
    return float(value)


# -- the frame -------------------------------------------------------------------------------------


def load_results(
    out_dir: Path | str, suite: str | None = None, *, long: bool = False, include_failed: bool = True
) -> pd.DataFrame:
    """The run records under ``out_dir/runs`` (one suite, or all) as a DataFrame, one row per run.

    Args:
        out_dir: the output directory holding ``runs/<suite>/*.json`` (default layout: ``results``).
        suite: only this suite's records; ``None`` reads every suite.
        long: return ``melt_results`` of the table instead (one row per run and metric).
        include_failed: keep failed runs (``status == "failed"``, metrics NaN); True by default.

    Returns:
        The table described in this module's docstring: stable column names (``run_id``,
        ``seed``, ``config.beta``, ``training.steps``, ``metric.mig``, ``final.kl``...),
        strings for names, Int64 for seeds and float64 (NaN where missing) for scores.
        An empty frame (with the identity columns) when there are no records.

    Unreadable or malformed records are logged with their path and skipped, never rewritten.
    Raises FileNotFoundError when ``suite`` is given and has no records.
    """
    df = read_runs(out_dir, suite).frame
    if not include_failed:
        df = df[df["status"] == "ok"].reset_index(drop=True)
    return melt_results(df) if long else df


def results_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """``load_results`` on records already read; raises TypeError/ValueError on a malformed one."""
    return _frame([record_row(record) for record in records])[0]


def _frame(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict[tuple[str, str], tuple]]:
    """The rows of ``record_row`` as the typed, sorted frame, and each configuration's label pairs."""
    labels: dict[tuple[str, str], tuple] = {}
    for row, hp in zip(rows, hyperparameter_pairs(rows)):
        text = ", ".join(f"{k}={fmt_param(v)}" for k, v in hp)
        row["hyperparameters"] = text
        row["config"] = f"{row['model']} ({text})" if text else row["model"]
        row["_sort"] = (row["dataset"], row["model"], tuple((k, param_sort_key(v)) for k, v in hp))
        labels[(row["dataset"], row["config"])] = hp
    rows.sort(key=lambda r: (r["_sort"], r["seed"], r["run_id"]))
    columns = _column_order({k for r in rows for k in r if k != "_sort"})
    data = {c: [r.get(c) for r in rows] for c in columns}
    return pd.DataFrame({c: _typed(c, data[c]) for c in columns}, columns=columns), labels


def _column_order(present: set[str]) -> list[str]:
    fixed = list(_ID_COLUMNS) + list(_LABEL_COLUMNS)

    def group(prefix: str) -> list[str]:
        return sorted(c for c in present if c.startswith(prefix))

    out = fixed + [c for p in SETTING_PREFIXES for c in group(p)]
    for prefix in (METRIC_PREFIX, SAMPLED_PREFIX):
        keys = [c[len(prefix) :] for c in group(prefix)]
        out += [prefix + k for k in metric_order(keys)]
    out += group(FINAL_PREFIX) + ["failure_step", "failure_reason"]
    out += group("timing.") + [f"provenance.{k}" for k in (*_PROVENANCE_KEYS, "dataset_source")]
    return [c for c in out if c in present or c in fixed]


def _typed(column: str, values: list[Any]) -> pd.Series:
    if column == "seed" or column == "failure_step":
        return pd.Series(values, dtype="Int64")
    if column in ("strength_value",) or column.startswith(
        (METRIC_PREFIX, SAMPLED_PREFIX, FINAL_PREFIX, "timing.")
    ):
        return pd.Series(values, dtype="float64")
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else fmt_param(v) for v in values], dtype="string")


def metric_column(key: str, representation: str = "mean") -> str:
    """A record's flat metric key as a column: ``"mig"`` -> ``"metric.mig"``; sampled: ``metric_sampled.``."""
    representation, key = _representation(key, representation)
    return (SAMPLED_PREFIX if representation == "sampled" else METRIC_PREFIX) + key


def metric_keys(df: pd.DataFrame, prefix: str = METRIC_PREFIX) -> list[str]:
    """The metric keys (without prefix) that have a column in ``df``, in table order."""
    return [c[len(prefix) :] for c in df.columns if c.startswith(prefix)]


def value_column(key: str) -> str:
    """The column of a value the tables show: a training term (``final.kl``) or a record's metric key."""
    return FINAL_PREFIX + key if key in TRAINING_TERMS else metric_column(key)


def value_keys(df: pd.DataFrame) -> list[str]:
    """The flat record keys a table shows: metrics in table order, then training terms.

    Every metric key of ``df`` in table order (the sampled representation's as ``sampled_<key>``),
    then the training terms that have a value.
    """
    keys = metric_keys(df) + [SAMPLED_KEY_PREFIX + k for k in metric_keys(df, SAMPLED_PREFIX)]
    terms = [t for t in TRAINING_TERMS if FINAL_PREFIX + t in df and df[FINAL_PREFIX + t].notna().any()]
    return metric_order(keys) + terms


def melt_results(df: pd.DataFrame) -> pd.DataFrame:
    """The long form: one row per (run, metric) with a value, for plotting and grouping.

    Columns: the identity and label columns of ``df`` (``run_id`` ... ``config``), then
    ``representation`` (``"mean"`` or ``"sampled"``), ``metric`` (the record's flat key, or
    ``final.<term>`` for a training term) and ``value`` (float64). Missing values are dropped.
    """
    ids = [c for c in (*_ID_COLUMNS, *_LABEL_COLUMNS) if c in df.columns]
    parts = []
    for prefix, representation in (
        (METRIC_PREFIX, "mean"),
        (SAMPLED_PREFIX, "sampled"),
        (FINAL_PREFIX, None),
    ):
        cols = [c for c in df.columns if c.startswith(prefix)]
        if not cols:
            continue
        part = df[ids + cols].melt(id_vars=ids, var_name="metric", value_name="value")
        if representation is None:
            part["representation"] = pd.NA
        else:
            part["metric"] = part["metric"].str.slice(len(prefix))
            part["representation"] = representation
        parts.append(part)
    if not parts:
        return pd.DataFrame(
            {
                **{c: df[c].iloc[:0] for c in ids},
                "representation": pd.Series([], dtype="string"),
                "metric": pd.Series([], dtype="string"),
                "value": pd.Series([], dtype="float64"),
            }
        )
    long = pd.concat(parts, ignore_index=True)
    long = long[long["value"].notna()].reset_index(drop=True)
    long["metric"] = long["metric"].astype("string")
    long["representation"] = long["representation"].astype("string")
    long["value"] = long["value"].astype("float64")
    return long[ids + ["representation", "metric", "value"]]


# -- which fields tell configurations apart ----------------------------------------------------------


def hyperparameter_pairs(rows: Sequence[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """Per row (from ``record_row``): the (name, value) pairs that tell its configuration apart.

    The strength first, then every setting column (``SETTING_PREFIXES``) whose value differs
    between the runs of the same model on the same dataset, by short name (``steps``,
    ``mig.n_bins``; a model-config field wins a name it shares with a training setting). Runs
    whose pairs are equal differ by seed only, so a sweep over, say, ``steps`` is never
    averaged into one row.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row["dataset"], row["model"]), []).append(i)
    out: list[tuple[tuple[str, Any], ...]] = [()] * len(rows)
    missing = object()
    for members in groups.values():
        columns = sorted(
            {c for i in members for c in rows[i] if c.startswith(SETTING_PREFIXES)},
            key=lambda c: (next(j for j, p in enumerate(SETTING_PREFIXES) if c.startswith(p)), c),
        )
        shorts: dict[str, str] = {}
        for column in columns:
            # A model-config field keeps its bare name; a later group's field of the same name is spelt out.
            shorts[_short(column) if _short(column) not in shorts else column] = column
        varying = []
        for short, column in sorted(shorts.items()):
            if column.startswith("protocol.") and short == column:
                continue  # derived from the spec; its model-config or spec twin already tells runs apart
            have = [i for i in members if column in rows[i]] if column.startswith("protocol.") else members
            # (a record from before the protocol block has none: not a difference by itself)
            seen = {json.dumps(rows[i].get(column, missing), sort_keys=True, default=repr) for i in have}
            if len(seen) > 1:
                varying.append((short, column))
        for i in members:
            row = rows[i]
            field = row.get("strength_field")
            pairs: list[tuple[str, Any]] = []
            if field is not None:
                value = row.get("strength_value")
                pairs.append((field, None if value is None or _isnan(value) else value))
            pairs += [(short, row.get(column)) for short, column in varying if short != field]
            out[i] = tuple(pairs)
    return out


def _short(column: str) -> str:
    prefix = next(p for p in SETTING_PREFIXES if column.startswith(p))
    return column[len(prefix) :]


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


# -- statistics over seeds -----------------------------------------------------------------------------

#: What ``summary_stats`` computes per (dataset, configuration, column), in this order.
SUMMARY_STATS = ("n", "mean", "std", "median", "min", "max", "q25", "q75", "seeds")


def summary_stats(
    df: pd.DataFrame, columns: Sequence[str], by: Sequence[str] = ("dataset", "config")
) -> pd.DataFrame:
    """Per group of ``by`` (default: one table cell) and value column, the statistics over its runs.

    Returns a frame indexed by (*by, ``column``) with ``SUMMARY_STATS``: ``n`` (values present),
    ``mean``, ``std`` (ddof=1; NaN for one value), ``median``, ``min``, ``max``, the quartiles
    ``q25``/``q75`` (linear interpolation) and ``seeds`` (the seeds with a value, space-separated).
    Missing values are left out of every statistic. Groups keep their order of appearance in
    ``df``; a group or column with no value has no row.
    """
    by = list(by)
    long = df[by + ["seed", *columns]].melt(id_vars=by + ["seed"], var_name="column", value_name="value")
    long = long[long["value"].notna()]
    grouped = long.groupby(by + ["column"], sort=False, observed=True)
    stats = grouped["value"].agg(["count", "mean", "std", "median", "min", "max"])
    stats = stats.rename(columns={"count": "n"})
    stats["q25"] = grouped["value"].quantile(0.25)
    stats["q75"] = grouped["value"].quantile(0.75)
    stats["seeds"] = grouped["seed"].agg(lambda s: " ".join(str(v) for v in s))
    return stats[list(SUMMARY_STATS)]
