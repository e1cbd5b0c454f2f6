"""The tables flag, from each record's provenance, rows that come from different processor types."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.report.table import write_tables

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "runs" / "quick"


def test_rows_from_two_cpu_types_are_flagged(tmp_path):
    runs = tmp_path / "runs" / "quick"
    runs.mkdir(parents=True)
    for path in sorted(COMMITTED.glob("*.json"))[:2]:
        shutil.copy(path, runs / path.name)
    write_tables(tmp_path, suite="quick")
    assert "Mixed machines" not in (tmp_path / "tables" / "quick.md").read_text()
    other = sorted(runs.glob("*.json"))[1]
    raw = json.loads(other.read_text())
    raw["provenance"]["device_name"] = "AMD EPYC 7B13"
    other.write_text(json.dumps(raw))
    write_tables(tmp_path, suite="quick")
    text = (tmp_path / "tables" / "quick.md").read_text()
    assert "**Mixed machines:** these runs come from 2 device types" in text
    assert "AMD EPYC 7B13" in text
