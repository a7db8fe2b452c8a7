import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# ---------------------------------------------------------------------------------------
# no skips in CI: a test that cannot run here is a defect of the set-up, not a skip


def skips_are_failures():
    """True under CI (CI set to anything non-empty) or BITSIM_NO_SKIP=1."""
    return bool(os.environ.get("CI")) or os.environ.get("BITSIM_NO_SKIP") == "1"


def skip_message(report):
    """The reason and place of a skip, from a skipped report's longrepr ((path, line, reason) or text)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        reason = reason.removeprefix("Skipped: ")
        where = f" at {path}:{line}" if line is not None else f" in {path}"
    else:
        reason, where = str(longrepr), ""
    switch = "CI is set" if os.environ.get("CI") else "BITSIM_NO_SKIP=1"
    return (f"{report.nodeid} was skipped ({reason}){where}; {switch}, so a skip is a failure: "
            "install what the test needs (pip install -e '.[test]') or fix the condition")


def fail_if_skipped(report):
    # xfail results are reported as skipped with a wasxfail attribute: they are expected failures, not skips
    if skips_are_failures() and report.skipped and not hasattr(report, "wasxfail"):
        report.longrepr = skip_message(report)
        report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Skips in setup (skip/skipif marks, fixtures), in the test (pytest.skip, importorskip) or in teardown."""
    outcome = yield
    fail_if_skipped(outcome.get_result())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_make_collect_report(collector):
    """Skips while a module is collected: a module-level pytest.importorskip or pytest.skip(allow_module_level=True)."""
    outcome = yield
    fail_if_skipped(outcome.get_result())
