"""Run records: one JSON file per run, written atomically, with full provenance.

Layout under the output directory (default ``results/``)::

    runs/<suite>/<run_id>.json        the record (schema below), committed
    artifacts/<suite>/<run_id>.npz    latent traversal images for the figures, committed
    checkpoints/<suite>/<run_id>.pt   training state for resume and `vaebench eval`, not committed

Record schema ``vaebench.run/1``::

    schema, run_id, suite, status ("ok" | "failed"),
    spec        the full RunSpec (dataset, model, model_config, seed, training, metrics, ...)
    strength    {"field": "beta", "value": 4.0} or null (the variant's regularisation strength)
    metrics     flat {key: float} over every metric's outputs (NaN stored as null)
    metric_seconds  {metric name: seconds}
    mi_matrix   {"codes_by_factors": [[...]], "factor_names": [...]}  (histogram MI in nats, train sample)
    metric_warnings  {metric name: [messages]}  what a metric warned about (NaN causes, deviations)
    curve       {"step": [...], "<term>": [...]}   each term averaged over a log window
    final       {"<term>": float}                  the last window's averages
    failure     null, or {"step": int, "reason": str}
    timing      {"train_seconds", "eval_seconds", "images_per_second"}
    provenance  {vaebench, git_commit, git_dirty (code changes outside results/), python, torch,
                 numpy, scipy, scikit_learn, platform, device, device_name, precision,
                 dataset: {...}, created}
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = "vaebench.run/1"

__all__ = [
    "SCHEMA",
    "RecordError",
    "cpu_model",
    "atomic_write_text",
    "write_record",
    "read_record",
    "iter_records",
    "provenance",
    "record_path",
    "checkpoint_path",
    "artifact_path",
]


class RecordError(RuntimeError):
    """A record that cannot be read or is not a vaebench run record; names the path."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


def record_path(out_dir: Path, suite: str, run_id: str) -> Path:
    return Path(out_dir) / "runs" / suite / f"{run_id}.json"


def checkpoint_path(out_dir: Path, suite: str, run_id: str) -> Path:
    return Path(out_dir) / "checkpoints" / suite / f"{run_id}.pt"


def artifact_path(out_dir: Path, suite: str, run_id: str) -> Path:
    return Path(out_dir) / "artifacts" / suite / f"{run_id}.npz"


def atomic_write_text(path: Path, text: str) -> None:
    """Write beside the destination, fsync, rename: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def write_record(path: Path, record: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_jsonable(record), indent=1, sort_keys=True) + "\n")


def read_record(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"run record {path} is unreadable or corrupt: {exc}", path) from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        found = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise RecordError(f"run record {path}: expected schema {SCHEMA!r}, found {found!r}", path)
    for key in ("run_id", "suite", "status", "spec"):
        if key not in record:
            raise RecordError(f"run record {path}: missing field {key!r}", path)
    return record


def iter_records(out_dir: Path, suite: str | None = None, *, on_error=None) -> list[dict[str, Any]]:
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


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for records and speed reports."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return model or platform.processor() or platform.machine() or "cpu"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(device: str, device_name: str, precision: str, dataset: dict[str, Any]) -> dict[str, Any]:
    """Code version, library versions, machine and data source of a result."""
    import numpy
    import scipy
    import sklearn
    import torch

    import vaebench

    # Uncommitted changes to the code: the output directory (results/, records included) does not count,
    # or every record after a sweep's first would be marked dirty by its predecessors.
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)results")
    return {
        "vaebench": vaebench.__version__,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": device_name,
        "precision": precision,
        "dataset": dataset,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
