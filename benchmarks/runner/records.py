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
from benchmarks.runner.provenance import cpu_model  # noqa: F401  (the perf scripts import it from here)
from benchmarks.runner.spec import RunSpec
from vaebench.atomic import atomic_write_text, write_failure
from vaebench.errors import DiskFullError, UserError
from vaebench.paths import check_component, path_under

SCHEMA = "vaebench.run/2"
READABLE_SCHEMAS = ("vaebench.run/1", SCHEMA)
STATUSES = ("ok", "failed")
#: Fields whose null is a value (not "absent, take the default").
_NULLABLE = ("strength", "mi_matrix", "failure", "evaluation_provenance")

__all__ = [
    "SCHEMA",
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
    """``out_dir/kind/<suite>/<run_id><suffix>``: the one place a run's files are named, each name
    checked to be one safe path component (``vaebench.paths``), so no file leaves ``out_dir``."""
    check_component(suite, "suite name")
    check_component(run_id, "run id")
    return path_under(out_dir, kind, suite, f"{run_id}{suffix}")


def record_path(out_dir: Path, suite: str, run_id: str) -> Path:
    return run_file(out_dir, "runs", suite, run_id, ".json")


def checkpoint_path(out_dir: Path, suite: str, run_id: str) -> Path:
    return run_file(out_dir, "checkpoints", suite, run_id, ".pt")


def artifact_path(out_dir: Path, suite: str, run_id: str) -> Path:
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
        evaluation: counts of the evaluation, e.g. ``{"points_encoded": 38001}``.
        mi_matrix: ``{"codes_by_factors": [[...]], "factor_names": [...]}`` (histogram MI, nats).
        curve: ``{"step": [...], "<term>": [...]}``, each term averaged over a log window.
        final: ``{"<term>": float}``, the last window's averages.
        failure: None, or ``{"step": int, "reason": str}``.
        timing: ``{"train_seconds", "eval_seconds", "images_per_second", "resumed_from_step"}``.
        provenance: the training's: code and library versions, machine, device, precision, dataset
            (with its content hash), creation time; see ``provenance.run_provenance``.
        evaluation_provenance: the evaluation's own: code and library versions, device, date (see
            ``provenance.evaluation_provenance``); None in records written before it was kept.
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

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {self.status!r}")

    @classmethod
    def for_spec(cls, spec: RunSpec, *, status: str, **fields: Any) -> RunRecord:
        """A record of ``spec``: identity, spec, strength and protocol filled from it (the protocol:
        its diff against the study, with what the provenance says ran where the spec says "auto")."""
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
        return RunSpec.from_dict(self.spec)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        if fields["evaluation_provenance"] is None:  # a record of the older form keeps its bytes
            del fields["evaluation_provenance"]
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
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}: {exc}", path) from None


def write_record(path: Path, record: RunRecord) -> None:
    atomic_write_text(path, record.to_json())


def read_record(path: Path) -> RunRecord:
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
    """Fail before any training if the output directory cannot be written (PermissionError), or is
    full (``DiskFullError``)."""
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
