"""Faults a new user met (issue #21): names that would leave --out, read-only and full disks,
values that were only found bad after training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.runner.claims import try_claim
from benchmarks.runner.records import record_path
from vaebench.paths import UnsafeNameError

runner = CliRunner()


def invoke(*args):
    """Exit code and output, whitespace-normalised so that Rich's line wrapping does not matter."""
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- names are names ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../../escaped_rel", "/an/absolute/path", "a/b", ".hidden"])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_suite_name_that_is_no_single_path_component_exits_2_before_any_work(
    toy_suite, tmp_path, name, command
):
    suite = toy_suite()
    suite.write_text(suite.read_text().replace('name = "toy"', f"name = {json.dumps(name)}"))
    out = tmp_path / "deep" / "er" / "out"
    code, output = invoke(command, "--suite", suite, "--out", out)
    assert code == 2, output
    assert repr(name) in output and "letters, digits" in output, output
    assert "Traceback" not in output
    assert files_under(out) == [] and not Path("/an").exists()
    assert not (tmp_path / "escaped_rel").exists() and not (tmp_path / "deep" / "escaped_rel").exists()


@pytest.mark.parametrize("suite", ["/an/absolute/path", "../runs/toy", "a/b"])
def test_run_files_refuse_a_suite_that_is_no_single_component(tmp_path, suite):
    with pytest.raises(UnsafeNameError):
        record_path(tmp_path, suite, "abc123")
    with pytest.raises(UnsafeNameError):
        try_claim(tmp_path, suite, "abc123")


def test_releasing_a_claim_never_deletes_the_record(tmp_path):
    run_id = "0123456789ab"
    claim = try_claim(tmp_path, "toy", run_id)
    assert claim is not None
    record = record_path(tmp_path, "toy", run_id)
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    assert claim.note.name != record.name  # the note is <run_id>.claim.json, never a record's name
    claim.release()
    assert record.read_text() == "{}"
