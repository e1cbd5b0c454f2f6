"""Plain listings a pipe can read: aligned columns, no reStructuredText markup, whole run ids."""

from __future__ import annotations

from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.runner.suite import expand_suite, load_suite


def test_list_output_is_aligned_and_free_of_markup():
    for what in ("models", "metrics", "suites", "backends"):
        result = CliRunner().invoke(app, ["list", what])
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        # the column where each description starts: past the name and the spaces after it
        starts = {len(line) - len(line.split(" ", 1)[1].lstrip()) for line in lines if " " in line}
        assert len(starts) == 1, (what, lines)
        assert "``" not in result.output


def test_a_piped_plan_keeps_every_run_id_whole():
    result = CliRunner().invoke(app, ["plan", "--suite", "quick", "--no-estimate"])  # not a terminal
    assert result.exit_code == 0, result.output
    for spec in expand_suite(load_suite("quick")):
        assert spec.run_id in result.output
