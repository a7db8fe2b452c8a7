"""The shift-add unit (examples/hardware/shift_add.v) live against bitsim in cocotb, every planted bug."""

import pytest

from bitsim.verify import ShiftAddUnit
from cocotb_units import check_caught, check_passes, needs_iverilog

# planted bug -> the outputs it corrupts (shift_add.v, BUG parameter)
BUGS = {1: "acc.", 2: "acc.", 3: "acc.nearest_away", 4: "acc."}


@needs_iverilog
def test_shift_add_matches_bitsim(tmp_path, capsys):
    check_passes("shift_add", tmp_path, capsys, seed=5)


@needs_iverilog
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_shift_add_planted_bug_is_caught_and_replays(tmp_path, bug, capsys):
    summary = check_caught("shift_add", bug, BUGS[bug], tmp_path, capsys=capsys)
    first = summary["mismatches"][0]
    if bug == 2:  # the zero code is not recognised: the failing transaction holds a zero code
        assert "(+0)" in first["label"] or "(-0)" in first["label"]
    if bug == 3:  # a negative tie of nearest_away
        assert [f["field"] for f in first["fields"]] == ["acc.nearest_away"]


@needs_iverilog
def test_shift_add_random_stimulus_alone_catches_a_sign_bug(tmp_path):
    check_caught("shift_add", 1, "acc.", tmp_path, seed=11, directed=False)


def test_every_planted_bug_is_tested():
    assert set(BUGS) == set(ShiftAddUnit.bugs)
