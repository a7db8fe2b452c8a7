"""The ``bitsim`` command's errors: exit statuses, messages instead of tracebacks, checked options and files."""

import json
import os
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from bitsim.cli import build_parser, main
from bitsim.errors import (EXIT_STATUSES, BitsimError, CheckFailed, DamagedFileError, InputError, InputTypeError,
                           MissingFileError)
from bitsim.io import read_inputs

TINY_BNN = ["--hidden", "16", "--layers", "1", "--epochs", "1", "--train-size", "500", "--no-progress"]


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "bitsim.cli", *args], capture_output=True, text=True, **kwargs)


def fail_with(monkeypatch, error):
    """Make ``bitsim explain`` raise ``error``."""
    import bitsim.explain

    def explain(*args, **kwargs):
        raise error

    monkeypatch.setattr(bitsim.explain, "explain", explain)


@pytest.fixture(scope="module")
def integer_model(tmp_path_factory):
    from bitsim.deploy import compile_model
    from bitsim.methods import bnn

    path = tmp_path_factory.mktemp("model") / "integer"
    compile_model(bnn.build_mlp(bnn.BNNConfig(hidden=16, layers=1)), (28, 28)).save(path)
    return path.with_suffix(".json")


# 1. exit statuses


def test_help_lists_every_exit_status(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "exit statuses:" in out and "BITSIM_DEBUG=1" in out
    for status, meaning in EXIT_STATUSES.items():
        assert f"  {status:<5d}{meaning.split()[0]}" in out


def test_each_kind_of_failure_has_its_status(monkeypatch, capsys):
    assert main(["explain", "log99", "1"]) == 2  # a BitsimError (InputError) is bad input
    assert "bitsim explain: error: log codes have 3..8 bits" in capsys.readouterr().err
    assert main(["explain"]) == 2  # a usage error returns, it does not raise SystemExit
    assert "the following arguments are required" in capsys.readouterr().err
    assert main([]) == 2
    fail_with(monkeypatch, CheckFailed("the integer model differs"))
    assert main(["explain", "log8", "1"]) == 1
    fail_with(monkeypatch, PermissionError(13, "Permission denied", "/some/where/report.json"))
    assert main(["explain", "log8", "1"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == "bitsim explain: error: /some/where/report.json: Permission denied"


def test_an_unexpected_exception_is_an_internal_error_with_status_3(monkeypatch, capsys):
    fail_with(monkeypatch, ZeroDivisionError("division by zero\nmore detail"))
    monkeypatch.delenv("BITSIM_DEBUG", raising=False)
    assert main(["explain", "log8", "1"]) == 3
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "bitsim explain: internal error: ZeroDivisionError: division by zero"
    assert "report it with the command" in lines[1] and len(lines) == 2 and "Traceback" not in err
    monkeypatch.setenv("BITSIM_DEBUG", "1")
    assert main(["explain", "log8", "1"]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys):
    fail_with(monkeypatch, KeyboardInterrupt())
    assert main(["explain", "log8", "1"]) == 130
    assert capsys.readouterr().err == "bitsim explain: interrupted\n"


def test_a_real_sigint_exits_130_without_a_traceback():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen([sys.executable, "-m", "bitsim.cli", "demo", "--no-progress"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().startswith("bitsim demo:")  # main is running: the signal lands inside it
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 130 and "interrupted" in err and "Traceback" not in err


def test_a_closed_pipe_is_silent_and_exits_141():
    read, write = os.pipe()
    os.close(read)  # the reader went away, like `| head -1` after its line
    try:
        result = subprocess.run([sys.executable, "-m", "bitsim.cli", "explain", "log8", "0.3"], stdout=write,
                                stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert result.returncode == 141 and result.stderr == ""


def test_the_console_script_exits_with_mains_status():
    (script,) = entry_points(group="console_scripts", name="bitsim")
    assert script.value == "bitsim.cli:main"  # pip's wrapper runs sys.exit(main())
    assert run("explain", "log99", "1").returncode == 2
    installed = Path(sys.executable).parent / "bitsim"
    if installed.exists():
        result = subprocess.run([str(installed), "explain", "log99", "1"], capture_output=True, text=True)
        assert result.returncode == 2 and "Traceback" not in result.stderr


# 2. negative values


@pytest.mark.parametrize("argv, shown", [
    (["log8", "-1e-3"], "decoded      -2^-10"),
    (["log8", "-inf", "--nonfinite", "saturate"], "decoded      -2^63"),
    (["log8", "--rounding", "log", "-1e-3"], "rule         log"),
    (["float32", "-nan"], "all ones: NaN"),
    (["Q3.4", "-1e400", "--nonfinite", "saturate"], "decoded      -128 * 2^-4 = -8.0"),
    (["binary", "-0.0"], "value        +1"),
    (["log8", "-0.5"], "decoded      -2^-1 = -0.5"),
])
def test_negative_values_are_values_not_options(argv, shown, capsys):
    assert main(["explain", *argv]) == 0
    assert shown in capsys.readouterr().out


# 3. options of explain


def test_every_option_an_explain_error_suggests_exists(capsys):
    assert main(["explain", "log8", "-inf"]) == 2
    assert "nonfinite='saturate'" in capsys.readouterr().err
    assert main(["explain", "log8", "-inf", "--nonfinite", "saturate"]) == 0
    assert main(["explain", "Q3.4", "inf", "--nonfinite", "saturate"]) == 0


@pytest.mark.parametrize("argv, option", [
    (["Q3.4", "0.3", "--underflow", "flush"], "underflow"),
    (["binary", "0.3", "--rounding", "log"], "rounding"),
    (["float32", "0.3", "--nonfinite", "saturate"], "nonfinite"),
])
def test_an_option_of_another_format_is_named(argv, option, capsys):
    assert main(["explain", *argv]) == 2
    err = capsys.readouterr().err
    assert f"option {option!r} does not apply" in err and "log codes" in err
    assert "unexpected keyword" not in err and "Traceback" not in err


# 4. integer options


@pytest.mark.parametrize("argv", [
    ["export", "m.json", "--out", "g", "--rows", "-1"],
    ["export", "m.json", "--out", "g", "--rows", "0"],
    ["eval", "m.json", "--batch-size", "0"],
    ["eval", "m.json", "--batch-size", "-3"],
    ["demo", "--epochs", "0"],
    ["train", "bnn", "--epochs", "0"],
    ["train", "bnn", "--hidden", "-1"],
    ["train", "connect", "--batch-size", "0"],
    ["train", "gru", "--seq-len", "0"],
    ["train", "gru", "--train-chars", "-1"],
    ["train", "surgery", "--train-size", "0"],
    ["train", "surgery", "--check-images", "-5"],
    ["train", "surgery", "--dense-iters", "-1"],
])
def test_counts_must_be_positive(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"argument {argv[-2]}: expected a" in err and "integer" in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_zero_stays_allowed_where_it_means_something():
    parser = build_parser()
    for argv in (["train", "bnn", "--validation-size", "0", "--translate", "0"],
                 ["train", "gru", "--train-chars", "0"],
                 ["train", "surgery", "--validation-size", "0", "--translate", "0", "--dense-iters", "0"]):
        args = parser.parse_args(argv)
        assert all(getattr(args, a.lstrip("-").replace("-", "_")) == 0 for a in argv[2::2])


def test_rows_beyond_the_inputs_are_refused_and_the_default_takes_what_there_is(integer_model, tmp_path, capsys):
    inputs = tmp_path / "three.npy"
    np.save(inputs, np.zeros((3, 28, 28), np.uint8))
    export = ["export", str(integer_model), "--inputs", str(inputs), "--out", str(tmp_path / "g")]
    assert main([*export, "--rows", "5"]) == 2
    assert "--rows 5 asks for more inputs than" in capsys.readouterr().err and not (tmp_path / "g").exists()
    assert main(export) == 0
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["examples"] == 3


# 5. input files of export


def damaged_inputs(tmp_path):
    """``(file, error class, words of the message)`` for damaged or unusable input files."""
    good = np.arange(2 * 784, dtype=np.uint8).reshape(2, 784)
    np.save(tmp_path / "good.npy", good)
    np.savez(tmp_path / "good.npz", x=good)
    npy, npz = (tmp_path / "good.npy").read_bytes(), (tmp_path / "good.npz").read_bytes()
    files = {
        "empty.npy": (np.zeros((0, 784), np.uint8), InputError, "empty array"),
        "scalar.npy": (np.uint8(7), InputError, "0-d array"),
        "float.npy": (good.astype(np.float32), InputTypeError, "uint8"),
        "objects.npy": (np.array([{"a": 1}], dtype=object), InputTypeError, "uint8"),
        "truncated.npy": (npy[:-10], DamagedFileError, "truncated"),
        "header.npy": (npy[:30], DamagedFileError, "header"),
        "nothing.npy": (b"", DamagedFileError, "not a .npy file"),
        "text.npz": (b"not a zip archive", DamagedFileError, "not a .npz archive"),
        "truncated.npz": (npz[:len(npz) // 2], DamagedFileError, "not a .npz archive"),
        "crc.npz": (npz[:200] + bytes([npz[200] ^ 0xFF]) + npz[201:], DamagedFileError, "CRC"),
        "plain.npz": (npy, DamagedFileError, "rename it to .npy"),
        "float.npz": ({"x": good.astype(np.float64)}, InputTypeError, "float64"),
        "two.npz": ({"a": good, "b": good}, InputError, "exactly one array"),
        "none.npz": ({}, InputError, "exactly one array"),
    }
    for name, (content, error, words) in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, dict):
            np.savez(path, **content)
        else:
            with open(path, "wb") as f:
                np.save(f, content, allow_pickle=True)
        yield path, error, words


def test_damaged_input_files_are_named_errors_never_tracebacks(tmp_path, monkeypatch):
    import pickle

    def no_unpickling(*args, **kwargs):
        raise AssertionError("read_inputs unpickled a file")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(MissingFileError, match="missing.npz"):
        read_inputs(tmp_path / "missing.npz")
    for path, error, words in damaged_inputs(tmp_path):
        with pytest.raises(error) as raised:
            read_inputs(path)
        assert str(path) in str(raised.value) and words in str(raised.value), (path.name, str(raised.value))
    assert read_inputs(tmp_path / "good.npz").shape == (2, 784)
    assert read_inputs(tmp_path / "good.npy").dtype == np.uint8


def test_every_byte_of_a_damaged_npz_gives_a_bitsim_error_or_the_array(tmp_path):
    good = np.arange(40, dtype=np.uint8).reshape(2, 20)
    np.savez_compressed(tmp_path / "good.npz", x=good)
    data = (tmp_path / "good.npz").read_bytes()
    path = tmp_path / "damaged.npz"
    for i in range(len(data)):
        for damaged in (data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1:], data[:i]):
            path.write_bytes(damaged)
            try:
                x = read_inputs(path)
            except BitsimError:
                continue
            assert x.dtype == np.uint8 and x.ndim >= 1 and len(x)


def test_export_reports_a_damaged_input_file_with_status_2(integer_model, tmp_path, capsys):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["export", str(integer_model), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "x.npz") in err and "Traceback" not in err and not (tmp_path / "g").exists()


# 6. what eval and summary accept


def test_eval_refuses_what_is_not_a_model(tmp_path, capsys):
    from bitsim.methods import bnn, loggru

    (tmp_path / "history.json").write_text(json.dumps([{"epoch": 1, "val_error": 0.1}]))
    loggru.CharGRU(84, 4, 8, "after", seed=2).save(tmp_path / "gru", {"vocab": "ab"})
    bnn.build_mlp(bnn.BNNConfig(hidden=16, layers=1)).save(tmp_path / "bare", {})
    bnn.build_mlp(bnn.BNNConfig(hidden=16, layers=1)).save(tmp_path / "connect", {"config": {"weights": "binary",
                                                                                             "hidden": 16}})
    assert main(["eval", str(tmp_path / "history.json")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    for name in ("gru", "bare", "connect"):
        for command in ("eval", "summary"):
            assert main([command, str(tmp_path / f"{name}.json")]) == 2, name
            err = capsys.readouterr().err
            assert "neither an integer model nor a float BNN" in err and "bitsim train bnn" in err, err


# 7. training output directories


def test_every_trainer_refuses_a_non_empty_out_before_it_trains(tmp_path, capsys):
    for method in ("bnn", "connect", "gru", "surgery"):
        out = tmp_path / method
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        assert main(["train", method, "--out", str(out), "--no-progress"]) == 2, method
        err = capsys.readouterr().err
        assert f"{out} is not empty" in err and "--resume" in err and "--overwrite" in err
        assert main(["train", method, "--out", str(out), "--no-progress", "--overwrite"]) == 2, method
        assert f"--overwrite replaces only bitsim train {method} output" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_bitsims_own_run_and_resume_continues_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "bnn", *TINY_BNN, "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert "bitsim-output.json" in written and "integer.json" in written and "report.json" in written
    first = (out / "report.json").read_bytes()
    assert main(["train", "bnn", *TINY_BNN, "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == written and (out / "report.json").read_bytes() == first
    assert main(["train", "bnn", *TINY_BNN, "--out", str(out), "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert main(["train", "bnn", *TINY_BNN, "--out", str(out), "--overwrite"]) == 0
    assert "resumed from" not in capsys.readouterr().out and sorted(p.name for p in out.iterdir()) == written
    assert main(["train", "connect", "--out", str(out), "--overwrite", "--no-progress"]) == 2  # another kind
    assert "bitsim train bnn" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == written
    (out / "notes.txt").write_text("mine")
    assert main(["train", "bnn", *TINY_BNN, "--out", str(out), "--overwrite"]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.json").exists()
