"""Fuzzing the read-back of a testbench's JSON report: a damaged report reads back as one every consumer can use,
or is refused with DamagedFileError; never another exception.

The report is the one :mod:`bitsim.verify.bench` writes inside the simulator's process and
:func:`bitsim.verify.runner.run_unit` reads in the test's: a scoreboard's summary of a MAC run with
described mismatches, plus the run's counts and timings. Each case damages its bytes or its structure.
"""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.errors import DamagedFileError
from bitsim.verify import MacUnit, Scoreboard, Stream
from bitsim.verify.runner import read_report
from fuzzing import Files, JsonEdit, byte_edits, call, expect, fuzz_settings, json_edits, manifest_text, record, \
    refused

pytest_plugins = ["fuzz_summary_plugin"]

LOADER = "bitsim.verify.runner.read_report"
SEED = 4


def mac_report():
    """The report of a MAC run whose design gets bit 0 of three results wrong, as the bench writes it."""
    unit = MacUnit()
    directed = unit.directed()
    batch = directed + unit.random(Stream(SEED), 40)
    expected = unit.expected(batch)
    sb = Scoreboard(unit.name, unit.fields(), SEED, replay="python examples/hardware/cocotb_run.py mac --seed 4 "
                    "--until {transaction}")
    sb.expect(expected, batch.operands, batch.labels)
    actual = {name: np.array(values, dtype=np.int64) for name, values in expected.items()}
    first = sorted(actual)[0]
    actual[first][[3, 17, len(batch) - 1]] ^= 1
    sb.observe(actual)
    summary = sb.summary()
    checked = summary["checked"]
    summary.update({"directed": len(directed), "random": len(batch) - len(directed), "cycles": 2 * len(batch),
                    "model_seconds": 0.01, "simulation_seconds": 0.2, "bug": 1, "until": None, "stopped": False})
    summary["us_per_transaction"] = {k: 1e6 * summary[k] / checked for k in ("model_seconds", "scoreboard_seconds",
                                                                            "simulation_seconds")}
    summary["text"] = sb.report()
    return summary


def use(report):
    """What the runner, examples/hardware/cocotb_run.py and the tests read from a report."""
    us = report["us_per_transaction"]
    line = f"{report['checked']} of {report['directed'] + report['random']} transactions checked; " \
           f"{us['model_seconds']:.1f} {us['scoreboard_seconds']:.2f} {us['simulation_seconds']:.0f} us"
    for m in report["mismatches"]:
        line += f" {m['transaction']} {m['label']}" + "".join(
            f" {f['field']} {f['expected']} {f['actual']} {f['expected_value']} {f['actual_value']} {f['bits'][0]}"
            for f in m["fields"])
    return line + report["text"] + str(report["passed"] == (report["mismatched"] == 0))


class Report:
    """A testbench report on disk and its mutations."""

    def __init__(self, path):
        self.doc = mac_report()
        self.path = path
        path.write_bytes(json.dumps(self.doc, indent=1).encode())
        self.files = Files(path)
        self.mutations = st.one_of(byte_edits, json_edits(self.doc))

    def __repr__(self):
        return f"Report({self.path})"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    r = Report(tmp_path_factory.mktemp("report") / "report-philox-4-all-1.json")
    yield r
    r.files.restore()


def test_the_report_reads_back(report):
    assert read_report(report.path) == report.doc
    assert report.doc["mismatched"] == 3 and len(report.doc["mismatches"]) == 3
    use(report.doc)


@fuzz_settings
@given(data=st.data())
def test_read_report(report, data):
    """A damaged report reads back unchanged or as a report every consumer can use, or raises DamagedFileError."""
    edit = data.draw(report.mutations, "mutation")
    report.files.write(report.path, manifest_text(edit(report.doc)) if isinstance(edit, JsonEdit)
                       else edit(report.files.original[report.path]))
    try:
        doc, err = call(read_report, report.path)
    finally:
        report.files.restore()
    if err is not None:
        expect(isinstance(err, DamagedFileError), LOADER, edit, f"raised {type(err).__name__}, not DamagedFileError")
        return refused(LOADER, edit, err)
    _, err = call(use, doc)
    expect(err is None, LOADER, edit, lambda: f"read back a report its readers fail on: {err!r}")
    record(LOADER, "unchanged" if doc == report.doc else "different")
