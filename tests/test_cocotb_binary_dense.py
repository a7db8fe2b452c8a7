"""The binary dense layer (examples/hardware/binary_dense.v) live against bitsim in cocotb, every planted bug."""

import pytest

from bitsim.verify import BinaryDenseUnit
from cocotb_units import check_caught, check_passes, needs_iverilog, run

# planted bug -> the outputs it corrupts (binary_dense.v, BUG parameter)
BUGS = {1: "acc", 2: "bit", 3: "acc"}


@needs_iverilog
def test_binary_dense_matches_bitsim(tmp_path, capsys):
    check_passes("binary_dense", tmp_path, capsys, seed=5)


@needs_iverilog
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_binary_dense_planted_bug_is_caught_and_replays(tmp_path, bug, capsys):
    check_caught("binary_dense", bug, BUGS[bug], tmp_path, capsys=capsys)


@needs_iverilog
def test_binary_dense_random_stimulus_alone_catches_a_threshold_tie_bug(tmp_path):
    check_caught("binary_dense", 2, "bit", tmp_path, seed=11, directed=False)


@needs_iverilog
def test_only_the_directed_cases_catch_a_narrow_accumulator(tmp_path):
    # random rows of 130 elements keep |acc| far below 128: an 8-bit accumulator passes them all
    summary = run("binary_dense", tmp_path, seed=5, count=10_000, bug=3, directed=False)
    assert summary["passed"] and summary["checked"] >= 10_000


def test_every_planted_bug_is_tested():
    assert set(BUGS) == set(BinaryDenseUnit.bugs)
