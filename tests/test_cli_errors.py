"""Bad input exits 2 with its message; any other exception is a bug: traceback, a report line, exit 1."""

from __future__ import annotations

import sys

import pytest

import benchmarks.cli as cli
from vaebench.errors import BUG_REPORT, UserError


def _main(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["vaebench", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code


def test_bad_input_exits_2_naming_the_bad_value(monkeypatch, capsys):
    assert _main(monkeypatch, "plan", "--suite", "no_such_suite") == 2
    err = capsys.readouterr().err
    assert "no_such_suite" in err and "Traceback" not in err and BUG_REPORT[:30] not in err


def test_a_value_error_inside_vaebench_is_a_bug_with_its_traceback(monkeypatch, capsys):
    def broken(name):
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr(cli, "load_suite", broken)
    assert _main(monkeypatch, "list", "suites") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: an internal invariant failed" in err
    assert "This is a bug in vaebench" in err


def test_every_error_type_the_cli_treats_as_bad_input_is_a_user_error():
    from benchmarks.datasets import DatasetFileError, OfficialFileMissingError
    from benchmarks.runner.backends import BackendError
    from benchmarks.runner.plan import ShardError
    from benchmarks.runner.records import RecordError
    from benchmarks.runner.suite import SuiteError
    from vae_zoo import CheckpointError, ConfigError
    from vaebench.registry import PluginError, UnknownNameError

    for error in (SuiteError, ConfigError, CheckpointError, RecordError, ShardError, BackendError):
        assert issubclass(error, UserError), error
    for error in (UnknownNameError, PluginError, DatasetFileError, OfficialFileMissingError):
        assert issubclass(error, UserError), error
    assert cli.USER_ERRORS == (UserError, PermissionError)  # a bare ValueError is no longer the user's
