"""The perf tools refuse bad input with exit 2 before any work (a crash after the runs loses them)."""

import pytest

from tools.perf import precision_check


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0"], "at least two different seeds"),  # once crashed in stdev after every run
        (["--seeds", "0,0,1"], "each once"),
        (["--seeds", "0,a"], "comma-separated integers"),
        (["--models", "nope", "--seeds", "0,1"], "unknown model 'nope'"),
        (["--metrics", "nope", "--seeds", "0,1"], "unknown metric 'nope'"),
        (["--steps", "0", "--seeds", "0,1"], "steps"),
    ],
)
def test_precision_check_refuses_bad_input_before_training(argv, message, capsys, monkeypatch, tmp_path):
    def no_work(*args, **kwargs):
        raise AssertionError("bad input reached the training")

    monkeypatch.setattr(precision_check, "load_dataset", no_work)
    monkeypatch.setattr(precision_check, "train_run", no_work)
    with pytest.raises(SystemExit) as exit_info:
        precision_check.main([*argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
