"""Damaged or hand-edited records are reported with their field and skipped, never crash.

Every command that reads records skips them; nothing crashes on one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.runner.records import RecordError, iter_records, read_record

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "runs" / "quick"


@pytest.fixture
def out(tmp_path):
    """Two committed quick records under a fresh output directory."""
    runs = tmp_path / "out" / "runs" / "quick"
    runs.mkdir(parents=True)
    for path in sorted(COMMITTED.glob("*.json"))[:2]:
        shutil.copy(path, runs / path.name)
    return tmp_path / "out"


def _edit(path: Path, change) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


DAMAGE = {
    "mi_matrix is a string": (lambda r: r.update(mi_matrix="x"), "mi_matrix must be dict"),
    "a string metric": (lambda r: r["metrics"].update(mig="0.5"), "metrics.mig must be a finite number"),
    "MIG below 0": (lambda r: r["metrics"].update(mig=-5), "metrics.mig = -5 is outside"),
    "MIG of 1e300": (lambda r: r["metrics"].update(mig=1e300), "metrics.mig = 1e+300 is outside"),
    "an infinite curve": (lambda r: r["curve"].update(loss=[1.0, float("inf")]), "curve.loss"),
    "an edited spec": (lambda r: r["spec"].update(seed=7), "is not its spec's hash"),
    "a bad mi row": (lambda r: r["mi_matrix"].update(codes_by_factors=[["a"]]), "mi_matrix.codes_by_factors"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record_is_refused_naming_its_field(out, damage):
    change, message = DAMAGE[damage]
    path = sorted((out / "runs" / "quick").glob("*.json"))[0]
    read_record(path)  # the committed record itself is valid
    _edit(path, change)
    with pytest.raises(RecordError, match=re.escape(message)):
        read_record(path)
    skipped = []
    assert len(iter_records(out, "quick", on_error=skipped.append)) == 1 and len(skipped) == 1


def test_a_copied_record_under_another_name_is_refused_as_a_duplicate(out):
    first = sorted((out / "runs" / "quick").glob("*.json"))[0]
    shutil.copy(first, first.with_name("beta_vae-000000000000.json"))
    with pytest.raises(RecordError, match="is not its file's name"):
        read_record(first.with_name("beta_vae-000000000000.json"))


@pytest.mark.parametrize("command", [["table"], ["plot"], ["export", "--format", "csv"], ["status"]])
def test_every_command_skips_a_damaged_record_saying_why(out, command):
    path = sorted((out / "runs" / "quick").glob("*.json"))[0]
    _edit(path, lambda r: r.update(mi_matrix="x"))
    result = CliRunner().invoke(app, [*command, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mi_matrix must be dict" in result.output
