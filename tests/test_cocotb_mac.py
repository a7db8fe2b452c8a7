"""The MAC unit (examples/hardware/mac.v) live against bitsim in cocotb: int8 and int16, every planted bug."""

import pytest

from bitsim.errors import InputError, OutputExistsError
from bitsim.verify import MacUnit
from cocotb_units import check_caught, check_passes, cocotb_run, needs_iverilog

# planted bug -> the outputs it corrupts (mac.v, BUG parameter)
BUGS = {1: "q.nearest_even", 2: "q.", 3: "acc", 4: "q."}


@needs_iverilog
@pytest.mark.parametrize("width", [8, 16])
def test_mac_matches_bitsim(tmp_path, capsys, width):
    check_passes("mac", tmp_path, capsys, width=width, seed=width)


@needs_iverilog
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_mac_planted_bug_is_caught_and_replays(tmp_path, bug, capsys):
    summary = check_caught("mac", bug, BUGS[bug], tmp_path, capsys=capsys)
    if bug == 2:  # the missing negative saturation shows in saturating variants only
        assert all(f["field"].endswith(".saturate") for m in summary["mismatches"] for f in m["fields"])


@needs_iverilog
def test_mac_random_stimulus_alone_catches_a_tie_bug_and_the_seed_replays_it(tmp_path):
    first = check_caught("mac", 1, "q.nearest_even", tmp_path, seed=11, directed=False)["mismatches"][0]
    other = check_caught("mac", 1, "q.nearest_even", tmp_path, seed=12, directed=False)["mismatches"][0]
    assert (first["transaction"], first["operands"]) != (other["transaction"], other["operands"])


@needs_iverilog
def test_command_line_replays_a_mismatch(tmp_path, capsys):
    build = tmp_path / "build"
    assert cocotb_run.main(["mac", "--seed", "5", "--bug", "1", "--until", "5", "--build", str(build)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH mac: transaction 5 (directed: shift 1, acc -3), seed 5 (philox)" in out
    assert "q.nearest_even.saturate: expected 0xfe (-2), got 0xff (-1); differing bits [0]" in out
    assert "replay: python examples/hardware/cocotb_run.py mac --seed 5 --bug 1 --until 5" in out
    assert "FAIL: mac: 6 transactions checked, 1 mismatched (seed 5, philox)" in out


def test_command_line_refuses_bad_input(tmp_path):
    with pytest.raises(InputError, match="no planted bug 9"):
        cocotb_run.main(["mac", "--bug", "9", "--build", str(tmp_path / "b")])
    with pytest.raises(InputError, match="xorshift32 seed"):
        cocotb_run.main(["mac", "--generator", "xorshift32", "--seed", "0", "--build", str(tmp_path / "b")])
    with pytest.raises(InputError, match="--width must be 8 or 16"):
        cocotb_run.main(["mac", "--width", "12", "--build", str(tmp_path / "b")])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not made by cocotb_run.py"):
        cocotb_run.main(["mac", "--build", str(foreign)])
    assert (foreign / "notes.txt").read_text() == "mine"


def test_every_planted_bug_is_tested():
    assert set(BUGS) == set(MacUnit.bugs)
