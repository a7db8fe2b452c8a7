"""The three units on Verilator (the registry's ``verilator`` package, 5.048 or newer) live against bitsim.

Each unit runs clean (every directed and random transaction matches, as many as its stimulus defines and
Icarus Verilog checks), and with one planted bug driven by random stimulus alone: Verilator names the
same first mismatching transaction, operands, fields and bits as Icarus Verilog for the same seed. The
builds share one directory, so that they share one compiled Verilator runtime.
"""

import os

import pytest

from bitsim.errors import InputError, MissingFileError
from bitsim.verify import Stream
from bitsim.verify.runner import VERILATOR_INSTALL, find_simulator
from cocotb_units import RANDOM, check_caught, check_passes, cocotb_run, needs_iverilog, run, show


def verilator_missing():
    try:
        find_simulator("verilator")
    except (MissingFileError, InputError):
        return True
    return False


needs_verilator = pytest.mark.skipif(
    verilator_missing() and not os.environ.get("BITSIM_REQUIRE_VERILATOR"),
    reason=f"Verilator 5.036 or newer not installed ({VERILATOR_INSTALL}); under CI a missing one fails",
)

# the Icarus tests' seeds (tests/test_cocotb_*.py), so that CI's log shows the same counts for both simulators
CLEAN = {"mac": {"width": 8, "seed": 8}, "shift_add": {"seed": 5}, "binary_dense": {"seed": 5}}
# a planted bug per unit that random stimulus catches: (bug, the outputs it corrupts)
CAUGHT = {"mac": (1, "q.nearest_even"), "shift_add": (1, "acc."), "binary_dense": (2, "bit")}
SEED = 11


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tmp_path_factory.mktemp("verilator")


def stimulus_counts(name, seed, width=None, count=RANDOM):
    """(directed, random) transactions of a run, from the unit's stimulus alone (no simulator)."""
    unit = cocotb_run.make_unit(name, width)
    stream = Stream(seed, "philox")
    if name == "binary_dense":
        return len(unit.batch(unit.directed_layers())), len(unit.batch(unit.random_layers(stream, count)))
    return len(unit.directed()), len(unit.random(stream, count))


@needs_verilator
@pytest.mark.parametrize("name", sorted(CLEAN))
def test_unit_matches_bitsim_on_verilator(build, name, capsys):
    summary = check_passes(name, build, capsys, simulator="verilator", **CLEAN[name])
    counts = stimulus_counts(name, CLEAN[name]["seed"], CLEAN[name].get("width"))
    assert (summary["directed"], summary["random"]) == counts
    assert summary["checked"] == sum(counts) and summary["pending"] == 0


@needs_verilator
@needs_iverilog
@pytest.mark.parametrize("name", sorted(CAUGHT))
def test_planted_bug_is_caught_at_the_same_transaction_as_on_icarus(build, tmp_path, name, capsys):
    bug, fields = CAUGHT[name]
    first = check_caught(name, bug, fields, build, seed=SEED, directed=False, capsys=capsys, simulator="verilator",
                         replay=False)["mismatches"][0]
    # Icarus Verilog from the same seed up to that transaction: no earlier mismatch, and this one the same
    icarus = run(name, tmp_path, seed=SEED, count=RANDOM, bug=bug, until=first["transaction"], stop=True,
                 directed=False)
    assert icarus["checked"] == first["transaction"] + 1 and icarus["mismatches"][0] == first
    show(f"{name} bug {bug}: Verilator and Icarus Verilog both fail first at transaction {first['transaction']} "
         f"(seed {SEED})", capsys)


def test_every_unit_runs_on_verilator():
    assert set(CLEAN) == set(CAUGHT) == set(cocotb_run.UNITS)
