import json
import subprocess
import sys

import pytest

from bitsim import __version__
from bitsim.cli import build_parser, main


def run(*args):
    return subprocess.run([sys.executable, "-m", "bitsim.cli", *args], capture_output=True, text=True)


def test_version_on_every_subcommand(capsys):
    parser = build_parser()
    commands = [None] + list(parser._subparsers._group_actions[0].choices)
    for command in commands:
        with pytest.raises(SystemExit) as stop:
            main(([command] if command else []) + ["--version"])
        assert stop.value.code == 0
        assert capsys.readouterr().out.strip() == f"bitsim {__version__}"


def test_help_on_every_subcommand(capsys):
    for command in build_parser()._subparsers._group_actions[0].choices:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: bitsim" in capsys.readouterr().out


def test_explain_shows_fields_code_and_rule(capsys):
    assert main(["explain", "log8", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "0 01111101 00110011001100110011010" in out
    assert "code         0x7e = 0b0_1111110" in out
    assert "decoded      +2^-2 = 0.25" in out
    assert "rule         linear" in out
    assert main(["explain", "Q3.4", "3.14159", "--rounding", "floor"]) == 0
    assert "code         50 = 0x32" in capsys.readouterr().out


def test_bad_input_is_an_error_message_not_a_traceback():
    result = run("explain", "log99", "1")
    assert result.returncode == 2
    assert "log codes have 3..8 bits" in result.stderr and "Traceback" not in result.stderr
    result = run("explain", "Q3.4", "1", "--rounding", "banker")
    assert result.returncode == 2 and "choose one of" in result.stderr


def test_tour_runs(capsys):
    assert main(["tour"]) == 0
    out = capsys.readouterr().out
    assert "n - 2 * popcount" in out and "Q3.4" in out


def test_demo_pipeline_is_bit_exact(capsys):
    assert main(["demo", "--hidden", "32", "--epochs", "1", "--train-size", "500", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "every stage equal; predictions equal: True" in out
    assert "weight memory" in out and "speed" in out


def test_train_bnn_then_eval_and_summary(tmp_path, capsys):
    out = tmp_path / "bnn"
    assert main(["train", "bnn", "--hidden", "32", "--layers", "1", "--epochs", "1", "--train-size", "600",
                 "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "every stage equal" in text and "training time" in text
    report = json.loads((out / "report.json").read_text())
    assert report["all_equal"] and report["float_test_error"] == report["integer_test_error"]
    assert main(["eval", str(out / "integer.json")]) == 0
    assert f"{100 * report['integer_test_error']:.2f}%" in capsys.readouterr().out
    assert main(["summary", str(out / "best.json")]) == 0
    summary = capsys.readouterr().out
    assert "784->32" in summary and "Threshold 32 channels" in summary and "total" in summary
