"""``vaebench export``: the tidy table of ``load_results`` as CSV, Parquet or JSON.

The default destination is ``DIR/export/<suite>.<ext>`` (``all.<ext>`` for every suite).
Parquet needs pyarrow, an optional dependency: without it the export refuses with
``MissingDependency`` naming ``pip install pyarrow``.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pandas as pd

from benchmarks.report.runs_frame import load_results
from vaebench.atomic import atomic_write_bytes
from vaebench.errors import UserError

__all__ = ["EXPORT_FORMATS", "MissingDependency", "export_results", "render_export"]

EXPORT_FORMATS = ("csv", "parquet", "json")


class MissingDependency(ImportError):
    """An optional package a format needs is not installed; the message says how to install it."""


def render_export(df: pd.DataFrame, fmt: str) -> bytes:
    """Serialise the table in one of ``EXPORT_FORMATS`` (CSV, Parquet or JSON).

    CSV has empty cells where a value is missing, Parquet keeps the dtypes, JSON is a list of one
    object per run with null where missing.
    """
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if fmt == "csv":
        return df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    if fmt == "json":
        return (df.to_json(orient="records", indent=1, double_precision=15) + "\n").encode("utf-8")
    if importlib.util.find_spec("pyarrow") is None:
        raise MissingDependency("--format parquet needs pyarrow, which is not installed: pip install pyarrow")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def export_results(
    out_dir: Path, suite: str | None = None, fmt: str = "csv", to: Path | None = None
) -> list[Path]:
    """Write ``load_results(out_dir, suite)`` in ``fmt`` to ``to`` (default ``out_dir/export/``)."""
    out_dir = Path(out_dir)
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    data = render_export(load_results(out_dir, suite), fmt)
    path = Path(to) if to is not None else out_dir / "export" / f"{suite or 'all'}.{fmt}"
    atomic_write_bytes(path, data)
    return [path]
