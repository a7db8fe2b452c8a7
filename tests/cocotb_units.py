"""Shared by tests/test_cocotb_*.py: run a unit's cocotb testbench on Icarus Verilog (or Verilator) and check what
it reports."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from bitsim.verify.runner import run_unit

HARDWARE = Path(__file__).resolve().parents[1] / "examples" / "hardware"
sys.path.insert(0, str(HARDWARE))
import cocotb_run  # noqa: E402

needs_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None and not os.environ.get("BITSIM_REQUIRE_IVERILOG"),
    reason="Icarus Verilog not installed (apt-get install iverilog); CI sets BITSIM_REQUIRE_IVERILOG=1",
)
RANDOM = 10_000


def show(line, capsys=None):
    """Print ``line`` past pytest's capture (so that CI's log shows the counts), or captured without ``capsys``."""
    if capsys is None:
        print(line)
        return
    with capsys.disabled():
        print("\n" + line)


def run(name, build, width=None, **options):
    """Run unit ``name`` (as ``examples/hardware/cocotb_run.py`` would) with builds under ``build``."""
    unit = cocotb_run.make_unit(name, width)
    replay = f"python examples/hardware/cocotb_run.py {name} --seed {options.get('seed', 1)} " \
             f"--bug {options.get('bug', 0)}" + ("" if options.get("directed", True) else " --random-only") \
             + (f" --simulator {options['simulator']}" if options.get("simulator", "icarus") != "icarus" else "") \
             + " --until {transaction}"
    return run_unit(unit, cocotb_run.UNITS[name], HARDWARE, build, replay=replay, **options)


def check_passes(name, build, capsys=None, **options):
    """A clean run: every one of the directed and >= 10,000 random transactions matched; prints the count."""
    summary = run(name, build, count=RANDOM, **options)
    show(f"{name} {options}: {summary['checked']} transactions checked against bitsim "
         f"({summary['directed']} directed + {summary['random']} random), {summary['mismatched']} mismatched", capsys)
    assert summary["passed"] and summary["cocotb"] == "pass", summary["text"]
    assert summary["random"] >= RANDOM and summary["directed"] > 0
    assert summary["checked"] == summary["directed"] + summary["random"]
    return summary


def check_caught(name, bug, fields, build, width=None, seed=3, directed=True, capsys=None, simulator="icarus",
                 replay=True):
    """A planted bug: caught, with transaction, operands and bits named; replayed from its seed to the same report.

    ``fields`` is the start of a field name every described mismatch must include (the outputs the bug
    corrupts), e.g. ``'q.nearest_even'``. ``replay=False`` leaves out the replay run.
    """
    summary = run(name, build, width, seed=seed, count=RANDOM, bug=bug, stop=True, directed=directed,
                  simulator=simulator)
    assert not summary["passed"] and summary["cocotb"] == "fail" and summary["mismatched"] > 0
    first = summary["mismatches"][0]
    assert first["fields"] and all(f["bits"] for f in first["fields"])
    assert any(f["field"].startswith(fields) for f in first["fields"]), first
    assert first["label"].startswith("directed" if directed else "random")
    text = summary["text"]
    assert f"transaction {first['transaction']} (" in text and f"seed {seed} (philox)" in text
    assert "differing bits" in text and f"--until {first['transaction']}" in text
    fields_text = "; ".join(f"{f['field']} expected {f['expected']} got {f['actual']} bits {f['bits']}"
                            for f in first["fields"][:2])
    show(f"{name} bug {bug} ({simulator}): {summary['mismatched']} mismatched, the first at transaction "
         f"{first['transaction']} ({first['label']}): {fields_text}", capsys)
    if replay:
        again = run(name, build, width, seed=seed, count=RANDOM, bug=bug, until=first["transaction"], stop=True,
                    directed=directed, simulator=simulator)
        assert again["checked"] == first["transaction"] + 1
        assert again["mismatches"][0] == first  # same transaction, operands, fields, values and bits
    return summary
