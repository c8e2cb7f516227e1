"""Shared test configuration."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# The whole run gets its own HOME: hosts started by tests read and write ~/.paglets (the launch config,
# default persistence directories), which must be neither the user's nor left over from another run.
_HOME = tempfile.mkdtemp(prefix="paglets-test-home-")
os.environ["HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

# A portable-backend run (``PAGLETS_BACKEND=portable PAGLETS_FORBID_LINUX=1``, see .ci/run): every
# process of the run, this one included, refuses fork, memfds, eventfds, fd passing and paglets code
# reading /proc (tests/_portable_guard/sitecustomize.py, on PYTHONPATH so that hosts, spare processes and
# paglet processes import it at startup). Violations are also logged to PAGLETS_FORBID_LOG, which
# ``pytest_sessionfinish`` checks, so that one swallowed by the code under test still fails the run.
if os.environ.get("PAGLETS_FORBID_LINUX") == "1":
    _GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_portable_guard")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_GUARD, os.environ.get("PYTHONPATH", "")) if p)
    os.environ.setdefault("PAGLETS_FORBID_LOG", os.path.join(_HOME, "forbidden.log"))
    import sys

    sys.path.insert(0, _GUARD)
    import sitecustomize  # noqa: F401  # installs the guard in this process too

#: Tests left out of a portable-backend run (``PAGLETS_BACKEND=portable``), with their reasons.
_EXCLUDED: list[tuple[str, str]] = []


def portable_run() -> bool:
    """Whether this run forces the portable process backend (see .ci/run)."""
    return os.environ.get("PAGLETS_BACKEND", "").strip().lower() == "portable"


@pytest.fixture
def segments(tmp_path: Path) -> Any:
    """The handoff segments of the process backend this run uses (a ``SegmentFactory``): memfds, or files
    (in ``tmp_path``) in a portable-backend run."""
    if portable_run():
        from paglets.runtime._portable_ipc import FileSegments

        return FileSegments(tmp_path)
    from paglets.runtime._handoff import MEMFD_SEGMENTS

    return MEMFD_SEGMENTS


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In a portable-backend run, any Linux-only primitive used by any process fails the run."""
    log = os.environ.get("PAGLETS_FORBID_LOG")
    if os.environ.get("PAGLETS_FORBID_LINUX") != "1" or not log or not os.path.exists(log):
        return
    with open(log, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if lines:
        print("\nLinux-only primitives used in a portable-backend run:\n  " + "\n  ".join(lines[:50]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "linux_only(reason): the test uses Linux-only primitives itself (fork, the zygote, memfds, "
        "eventfds) by nature; left out, with its reason, of a portable-backend run",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A portable-backend run leaves out the ``linux_only`` tests: deselected (counted and listed at the
    end with their reasons), never skipped silently. Every such marker must give its reason."""
    kept: list[pytest.Item] = []
    excluded: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("linux_only")
        if marker is None:
            kept.append(item)
            continue
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: linux_only needs a reason")
        if portable_run():
            excluded.append(item)
            _EXCLUDED.append((item.nodeid, str(reason)))
        else:
            kept.append(item)
    if excluded:
        config.hook.pytest_deselected(items=excluded)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _EXCLUDED:
        terminalreporter.section("left out of the portable-backend run (linux_only)")
        for nodeid, reason in _EXCLUDED:
            terminalreporter.write_line(f"{nodeid}: {reason}")
