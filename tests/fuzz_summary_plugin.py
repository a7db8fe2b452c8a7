"""Prints the per-loader case counts of the fuzzing suite (tests/test_fuzz_loaders.py) after the run."""

import fuzzing


def pytest_terminal_summary(terminalreporter):
    lines = fuzzing.summary_lines()
    if lines:
        terminalreporter.section("fuzz: cases per loader")
        for line in lines:
            terminalreporter.write_line(line)
