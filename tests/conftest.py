"""Shared test configuration."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# The whole run gets its own HOME: hosts started by tests read and write ~/.paglets (the launch config,
# default persistence directories), which must be neither the user's nor left over from another run.
_HOME = tempfile.mkdtemp(prefix="paglets-test-home-")
os.environ["HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    max_examples=100,
)
settings.register_profile(
    "dev",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    max_examples=50,
)
settings.load_profile(os.environ.get("PAGLETS_HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ``PAGLETS_NO_SKIPS=1`` (CI sets it) a skipped test fails: CI installs everything every test
    needs (namespaces, git, a browser, ...), so a skip there means a check silently did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("PAGLETS_NO_SKIPS") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where skips are not allowed (PAGLETS_NO_SKIPS=1): {reason}"
