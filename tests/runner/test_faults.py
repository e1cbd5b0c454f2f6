"""Faults a new user met: names that would leave --out, read-only and full disks, late validation.

Values that were only found bad after training are now refused before it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import benchmarks.cli as cli
from benchmarks.cli import app
from benchmarks.runner.claims import try_claim
from benchmarks.runner.records import record_path
from benchmarks.runner.suite import expand_suite, load_suite
from vaebench.atomic import atomic_write_text
from vaebench.errors import EXIT_DISK_FULL, UnwritableError
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


# -- read-only and full disks -----------------------------------------------------------
def _main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """``vaebench ARGS`` through ``cli.main`` (which maps errors to exit codes): code and output."""
    monkeypatch.setattr(sys, "argv", ["vaebench", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code, " ".join((captured.out + captured.err).split())


def test_a_write_refused_by_the_file_system_is_an_unwritable_error_naming_the_path(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(UnwritableError, match="cannot write .*table.md: Read-only file system"):
        atomic_write_text(tmp_path / "tables" / "table.md", "x")


def test_the_read_only_commands_on_a_read_only_out_work_or_exit_2_naming_where_to_write(
    toy_suite, tmp_path, mounts, monkeypatch, capsys
):
    out = tmp_path / "out"
    suite = toy_suite(steps=10)
    assert invoke("run", "--suite", suite, "--models", "vae", "--out", out)[0] == 0
    (pending,) = [s.run_id for s in expand_suite(load_suite(str(suite))) if s.model == "beta_vae"]
    try_claim(out, "toy", pending).release()  # a claim once taken leaves its lock file
    if not mounts.read_only(out):  # chmod would not stop root, and the tests run as root in CI
        pytest.skip(f"a read-only --out needs a read-only bind mount: {mounts.why}")
    before = {p: p.read_bytes() for p in files_under(out)}
    run_id = next((out / "runs" / "toy").glob("*.json")).stem
    code, output = _main(monkeypatch, capsys, "status", "--out", out, "--suite", suite)
    assert code == 0 and "Traceback" not in output, output
    for args in (["table"], ["plot"], ["export"], ["analyze", "--n-boot", "100"], ["eval", run_id]):
        code, output = _main(monkeypatch, capsys, *args, "--out", out)
        assert code in (0, 2) and "Traceback" not in output, (args, output)
        if code == 2:
            assert "Read-only file system" in output and str(out) in output, (args, output)
            assert ("--to" if args == ["export"] else "--out") in output, (args, output)
    code, output = _main(monkeypatch, capsys, "export", "--out", out, "--to", tmp_path / "all.csv")
    assert code == 0 and (tmp_path / "all.csv").is_file(), output
    assert {p: p.read_bytes() for p in files_under(out)} == before


def test_a_full_disk_exits_with_its_own_code_and_message_and_the_rerun_resumes(
    toy_suite, tmp_path, mounts, monkeypatch, capsys
):
    out = tmp_path / "out"
    if not mounts.tmpfs(out, "24m"):
        pytest.skip(f"a full disk needs a small tmpfs: {mounts.why}")
    suite = toy_suite(steps=20)
    code, output = _main(monkeypatch, capsys, "run", "--suite", suite, "--models", "vae", "--out", out)
    assert code == 0, output
    (first,) = (out / "runs" / "toy").glob("*.json")
    recorded = first.read_bytes()
    filler = out / "filler"
    with open(filler, "wb") as f:  # leave ~1 MiB: less than a checkpoint (~6 MB)
        f.write(b"\0" * (shutil.disk_usage(out).free - (1 << 20)))
    code, output = _main(monkeypatch, capsys, "run", "--suite", suite, "--out", out)
    assert code == EXIT_DISK_FULL == 3, output
    assert f"no space left on {out}" in output and "nothing recorded was lost" in output, output
    assert "free space and rerun" in output and "Traceback" not in output, output
    assert first.read_bytes() == recorded
    filler.unlink()
    code, output = _main(monkeypatch, capsys, "run", "--suite", suite, "--out", out)
    assert code == 0 and "1 run(s) already recorded" in output, output
    assert len(list((out / "runs" / "toy").glob("*.json"))) == 2 and first.read_bytes() == recorded


# -- every value is validated before training -------------------------------------------
@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("n_bins = -3", "n_bins = -3; it must be an integer >= 1"),
        ("n_bins = 2.5", "n_bins = 2.5; it must be an integer >= 1"),
        ('n_train = "many"', "n_train = 'many'; it must be an integer >= 1"),
    ],
)
def test_a_bad_metric_setting_exits_2_before_any_training(toy_suite, tmp_path, command, setting, message):
    suite = toy_suite(extra=f"\n[metrics.overrides.mig]\n{setting}\n")
    out = tmp_path / "out"
    code, output = invoke(command, "--suite", suite, "--out", out)
    assert code == 2 and message in output and "metrics.overrides.mig" in output, output
    assert files_under(out) == []


def test_a_batch_larger_than_the_dataset_exits_2(toy_suite, tmp_path):
    suite = toy_suite()
    text = (
        suite.read_text()
        .replace('["toy_squares"]', '["dsprites"]')
        .replace("batch_size = 8", "batch_size = 1000000")
    )
    suite.write_text(text)
    code, output = invoke("plan", "--suite", suite, "--out", tmp_path / "out")
    assert (
        code == 2 and "batch_size = 1,000,000 is larger than dsprites, which has 737,280 images" in output
    ), output


def test_a_batch_that_needs_more_memory_than_the_machine_has_exits_2(toy_suite, tmp_path, monkeypatch):
    import benchmarks.runner.suite as suite_module

    monkeypatch.setattr(suite_module, "physical_memory", lambda: 8 << 30)
    suite = toy_suite()
    text = (
        suite.read_text()
        .replace('["toy_squares"]', '["dsprites"]')
        .replace("batch_size = 8", "batch_size = 100000")
    )
    suite.write_text(text)
    code, output = invoke("run", "--suite", suite, "--out", tmp_path / "out")
    assert code == 2 and "batch_size = 100,000 on dsprites needs about 76 GiB" in output, output
    assert "this machine's 8 GiB" in output and files_under(tmp_path / "out") == []
