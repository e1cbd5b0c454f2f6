"""Run records: one JSON file per run, written atomically, with full provenance.

Layout under the output directory::

    runs/<suite>/<run_id>.json        the record (``RunRecord``), committed for results/
    artifacts/<suite>/<run_id>.npz    latent traversals and cached encodings, committed for results/
    checkpoints/<suite>/<run_id>.pt   training state for resume and `vaebench eval`, never committed
    claims/<suite>/<run_id>.lock      who is training the run now (see ``claims``)

``RunRecord`` is the only definition of a record: ``execute.record_of`` builds
one (the one mapping from a training outcome and an evaluation), the report and
the tests read them through ``RunRecord.from_json``. Schema ``vaebench.run/2``;
records of ``vaebench.run/1`` are read and migrated
(``metric_seconds.points_encoded`` moved to ``evaluation.points_encoded``), and
records written before ``evaluation_provenance`` existed read with it None.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runner.protocol import compare_run
from benchmarks.runner.spec import RunSpec
from metrics import get_metric
from vaebench.atomic import atomic_write_text, write_failure
from vaebench.errors import DiskFullError, UserError
from vaebench.paths import check_component, path_under
from vaebench.registry import UnknownNameError

SCHEMA = "vaebench.run/2"
READABLE_SCHEMAS = ("vaebench.run/1", SCHEMA)
STATUSES = ("ok", "failed")
#: Fields whose null is a value (not "absent, take the default").
_NULLABLE = ("strength", "mi_matrix", "failure", "evaluation_provenance")
#: What a record describes: a run the runner trained, or a representation trained elsewhere and scored
#: by `vaebench score` (``benchmarks.score``: no training fields, its spec names the encoder).
KINDS = ("trained", "external")

__all__ = [
    "SCHEMA",
    "KINDS",
    "RecordError",
    "RunRecord",
    "atomic_write_text",
    "check_writable",
    "write_record",
    "read_record",
    "iter_records",
    "run_file",
    "record_path",
    "checkpoint_path",
    "artifact_path",
]


class RecordError(UserError, RuntimeError):
    """A record that cannot be read or is not a vaebench run record; names the path."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


def run_file(out_dir: Path, kind: str, suite: str, run_id: str, suffix: str) -> Path:
    """``out_dir/kind/<suite>/<run_id><suffix>``: the one place a run's files are named.

    Each name is checked to be one safe path component (``vaebench.paths``), so no file leaves
    ``out_dir``.
    """
    check_component(suite, "suite name")
    check_component(run_id, "run id")
    return path_under(out_dir, kind, suite, f"{run_id}{suffix}")


def record_path(out_dir: Path, suite: str, run_id: str) -> Path:
    """The record file of a run: ``<out>/runs/<suite>/<run_id>.json``."""
    return run_file(out_dir, "runs", suite, run_id, ".json")


def checkpoint_path(out_dir: Path, suite: str, run_id: str) -> Path:
    """The checkpoint file of a run: ``<out>/checkpoints/<suite>/<run_id>.pt``."""
    return run_file(out_dir, "checkpoints", suite, run_id, ".pt")


def artifact_path(out_dir: Path, suite: str, run_id: str) -> Path:
    """The artifact file of a run: ``<out>/artifacts/<suite>/<run_id>.npz``."""
    return run_file(out_dir, "artifacts", suite, run_id, ".npz")


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null (JSON has no NaN); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class RunRecord:
    """One run's outcome. ``status`` is "ok" or "failed"; a failed run has ``failure`` and no metrics.

    Attributes:
        run_id, suite: the run's identity (``RunSpec.run_id``) and the suite it was listed in.
        spec: ``RunSpec.to_dict()``; ``run_spec`` gives it typed.
        strength: ``{"field": "beta", "value": 4.0}`` or None (the variant's regularisation strength).
        protocol: the run's diff against the study it is compared with (``protocol.compare_run``:
            reference, matches, deviations, additions), with what ``provenance`` says ran where
            the spec says "auto". Records from before it hold the protocol choices instead.
        metrics: flat ``{key: float | None}`` over every metric's outputs (NaN stored as null).
        metric_seconds: ``{metric name: seconds}``.
        metric_warnings: ``{metric name: [messages]}``, what a metric warned about.
        evaluation: counts of the evaluation: ``points_encoded``, the images encoded (e.g. 38001),
            and ``points_encoded_ahead`` where the whole grid was encoded ahead of the metrics'
            lookups (``evaluate.CachedEncoder``), how many of them were.
        mi_matrix: ``{"codes_by_factors": [[...]], "factor_names": [...]}`` (histogram MI, nats).
        curve: ``{"step": [...], "<term>": [...]}``, each term averaged over a log window.
        final: ``{"<term>": float}``, the last window's averages.
        failure: None, or ``{"step": int, "reason": str}``.
        timing: ``{"train_seconds", "eval_seconds", "images_per_second", "resumed_from_step"}``.
        provenance: the training's: code and library versions, machine, device, precision, dataset
            (with its content hash), creation time; see ``provenance.run_provenance``.
        evaluation_provenance: the evaluation's own: code and library versions, device, date (see
            ``provenance.evaluation_provenance``); None in records written before it was kept.
        kind: "trained" (the runner's) or "external" (``benchmarks.score``: a representation
            trained elsewhere; its spec is not a ``RunSpec``, and it has no training fields).
            Written only when not "trained", so a trained run's record reads as before.
    """

    run_id: str
    suite: str
    status: str
    spec: dict[str, Any]
    strength: dict[str, Any] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    metric_seconds: dict[str, float] = field(default_factory=dict)
    metric_warnings: dict[str, list[str]] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    mi_matrix: dict[str, Any] | None = None
    curve: dict[str, list[float]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    evaluation_provenance: dict[str, Any] | None = None
    schema: str = SCHEMA
    kind: str = "trained"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {self.status!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")

    @classmethod
    def for_spec(cls, spec: RunSpec, *, status: str, **fields: Any) -> RunRecord:
        """A record of ``spec``, with identity, spec, strength and protocol filled from it.

        The protocol is the spec's diff against the study, with what the provenance says ran where the
        spec says "auto".
        """
        provenance = fields.get("provenance") or {}
        ran = {
            key: value
            for key, value in (
                ("precision", provenance.get("precision")),
                ("dataset_source", (provenance.get("dataset") or {}).get("source")),
            )
            if value is not None
        }
        strength = spec.strength
        return cls(
            run_id=spec.run_id,
            suite=spec.suite,
            status=status,
            spec=spec.to_dict(),
            strength={"field": strength[0], "value": strength[1]} if strength else None,
            protocol=compare_run(spec, ran=ran).to_dict(),
            **fields,
        )

    @property
    def run_spec(self) -> RunSpec:
        """The run's spec, rebuilt from the record."""
        if self.kind != "trained":
            raise RecordError(
                f"run {self.run_id} is an {self.kind} representation scored by `vaebench score`: "
                "it has no run spec, checkpoint or training; rescore it with `vaebench score --force`"
            )
        return RunSpec.from_dict(self.spec)

    @property
    def ok(self) -> bool:
        """Whether the run finished and was evaluated."""
        return self.status == "ok"

    def to_json(self) -> str:
        """The record's file contents: sorted, indented JSON."""
        fields = dataclasses.asdict(self)
        if fields["evaluation_provenance"] is None:  # a record of the older form keeps its bytes
            del fields["evaluation_provenance"]
        if fields["kind"] == "trained":  # the default is left out: trained records read as before
            del fields["kind"]
        return json.dumps(_jsonable(fields), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, path: Path | None = None) -> RunRecord:
        """Parse and check a record; RecordError names the path and what is wrong."""
        where = f"run record {path}" if path is not None else "run record"
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{where} is unreadable or corrupt: {exc}", path) from None
        if not isinstance(raw, dict) or raw.get("schema") not in READABLE_SCHEMAS:
            found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
            raise RecordError(f"{where}: expected schema {SCHEMA!r}, found {found!r}", path)
        for key in ("run_id", "suite", "status", "spec"):
            if key not in raw:
                raise RecordError(f"{where}: missing field {key!r}", path)
        if raw["schema"] == "vaebench.run/1":  # migrate: a count does not belong among seconds
            seconds = dict(raw.get("metric_seconds") or {})
            points = seconds.pop("points_encoded", None)
            raw["metric_seconds"] = seconds
            raw["evaluation"] = {"points_encoded": int(points)} if points is not None else {}
            raw["schema"] = SCHEMA
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)}", path)
        values = {k: v for k, v in raw.items() if v is not None or k in _NULLABLE}
        try:
            record = cls(**values)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}: {exc}", path) from None
        problem = record_problem(record, path)
        if problem is not None:
            raise RecordError(f"{where} is invalid: {problem}", path)
        return record


#: Field -> the JSON types its value may have (None where the field may be null).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "suite": (str,),
    "spec": (dict,),
    "strength": (dict, type(None)),
    "protocol": (dict,),
    "metrics": (dict,),
    "metric_seconds": (dict,),
    "metric_warnings": (dict,),
    "evaluation": (dict,),
    "mi_matrix": (dict, type(None)),
    "curve": (dict,),
    "final": (dict,),
    "failure": (dict, type(None)),
    "timing": (dict,),
    "provenance": (dict,),
    "evaluation_provenance": (dict, type(None)),
}
#: Rounding room around a metric's declared bounds.
_BOUND_SLACK = 1e-9


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def record_problem(record: RunRecord, path: Path | None = None) -> str | None:
    """What is wrong with a record read from disk (a hand edit, a damaged file), naming the field.

    None when nothing is. Checked: field types, a run id that is its spec's hash and its file's name,
    finite numbers, metric values inside their declared bounds (``MetricSpec.bounds``), an MI matrix
    of numbers.
    """
    return _identity_problem(record, path) or _value_problem(record)


def _identity_problem(record: RunRecord, path: Path | None) -> str | None:
    """Field types, and a run id that is both its file's name and its spec's hash."""
    for name, types in _FIELD_TYPES.items():
        value = getattr(record, name)
        if not isinstance(value, types):
            return f"{name} must be {' or '.join(t.__name__ for t in types)}, not {type(value).__name__}"
    if path is not None and Path(path).stem != record.run_id:
        return f"run_id {record.run_id!r} is not its file's name {Path(path).name!r}"
    if record.kind != "trained":  # a scored representation's id hashes its encoder and data, not a RunSpec
        return None
    try:
        spec_id = RunSpec.from_dict(record.spec).run_id
    except (TypeError, ValueError, KeyError, UserError):  # not a full spec (a hand-built record): no id
        return None
    if spec_id != record.run_id:
        return f"run_id {record.run_id!r} is not its spec's hash ({spec_id}): the spec was edited"
    return None


def _value_problem(record: RunRecord) -> str | None:
    """Finite numbers where numbers belong, each metric inside its definition's range."""
    for field_name in ("metrics", "final", "metric_seconds"):
        for key, value in getattr(record, field_name).items():
            if value is not None and not _is_number(value):
                return f"{field_name}.{key} must be a finite number or null, not {value!r}"
    bounds = _declared_bounds(record.spec.get("metrics") or {})
    for key, value in record.metrics.items():
        low, high = bounds.get(key, (-math.inf, math.inf))
        if value is not None and not low - _BOUND_SLACK <= value <= high + _BOUND_SLACK:
            return f"metrics.{key} = {value!r} is outside its definition's range [{low:g}, {high:g}]"
    for name, series in record.curve.items():
        if not isinstance(series, list) or not all(v is None or _is_number(v) for v in series):
            return f"curve.{name} must be a list of finite numbers"
    mi = record.mi_matrix
    if mi is not None:
        rows = mi.get("codes_by_factors")
        if not isinstance(rows, list) or not all(
            isinstance(row, list) and all(_is_number(v) for v in row) for row in rows
        ):
            return "mi_matrix.codes_by_factors must be a list of rows of finite numbers"
        if not isinstance(mi.get("factor_names"), list):
            return "mi_matrix.factor_names must be a list"
    return None


def _declared_bounds(metric_entries: dict) -> dict[str, tuple[float, float]]:
    """Output key -> bounds, for the registered metrics a record's spec scored (``sampled_`` keys too)."""
    bounds: dict[str, tuple[float, float]] = {}
    for entry in metric_entries:
        name, _, representation = str(entry).partition("@")
        try:
            metric = get_metric(name)
        except UnknownNameError:  # a plug-in not installed here: its values are only checked finite
            continue
        prefix = f"{representation}_" if representation else ""
        bounds.update({f"{prefix}{key}": tuple(b) for key, b in metric.bounds.items()})
    return bounds


def write_record(path: Path, record: RunRecord) -> None:
    """Write ``record`` to ``path`` atomically."""
    atomic_write_text(path, record.to_json())


def read_record(path: Path) -> RunRecord:
    """The record at ``path``; RecordError saying why it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"run record {path} is unreadable or corrupt: {exc}", path) from None
    return RunRecord.from_json(text, path)


def iter_records(out_dir: Path, suite: str | None = None, *, on_error=None) -> list[RunRecord]:
    """All readable records under out_dir/runs (one suite or all), sorted by path.

    A corrupt record is reported through ``on_error(RecordError)`` and skipped,
    never overwritten.
    """
    root = Path(out_dir) / "runs"
    pattern = f"{suite}/*.json" if suite else "*/*.json"
    records = []
    for path in sorted(root.glob(pattern)):
        try:
            records.append(read_record(path))
        except RecordError as exc:
            if on_error is None:
                raise
            on_error(exc)
    return records


def check_writable(out_dir: Path) -> None:
    """Fail before any training if the output directory cannot be written, or is full.

    PermissionError for a directory that refuses writes, ``DiskFullError`` for one without space.
    """
    out_dir = Path(out_dir)
    probe = out_dir / "runs" / ".write_probe"
    try:
        (out_dir / "runs").mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        failure = write_failure(exc, probe)
        if isinstance(failure, DiskFullError):
            raise failure from exc
        raise PermissionError(f"output directory {out_dir} is not writable: {exc}") from None
