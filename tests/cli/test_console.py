"""The host console: events become short lines, rate-limited per subject, never blocking the host."""

from __future__ import annotations

import io
import logging
import re
import threading
import time

import pytest

from paglets.cli._console import MAX_QUEUED_LINES, ConsoleReporter, configure_console
from paglets.core.context_events import ContextEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _event(kind: str, **fields: object) -> ContextEvent:
    return ContextEvent(event_id=1, kind=kind, host_name="alpha", host_address="http://127.0.0.1:1", **fields)  # type: ignore[arg-type]


@pytest.fixture
def lines() -> tuple[list[tuple[int, str]], logging.Logger]:
    got: list[tuple[int, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append((record.levelno, record.getMessage()))

    logger = logging.getLogger("paglets.test-console")
    logger.handlers[:] = [Keep()]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return got, logger


def test_events_become_lines(lines: tuple[list[tuple[int, str]], logging.Logger]) -> None:
    got, logger = lines
    report = ConsoleReporter(code_version="v1", logger=logger, clock=Clock())
    report(
        _event(
            "context-start",
            data={"code_version": "v1", "resident_services": ["info"], "restored": 2, "inactive": 1},
        )
    )
    report(
        _event(
            "message-failed",
            agent_id="0123456789ab",
            class_name="counter:Counter",
            error="boom",
            data={"error_type": "ValueError", "message_kind": "add"},
        )
    )
    report(
        _event(
            "paglet-crashed",
            agent_id="fedcba987654",
            class_name="counter:Counter",
            error="process exited with code 3",
            data={"exitcode": 3},
        )
    )
    report(
        _event(
            "transfer-failed",
            agent_id="0123456789ab",
            error="no host named 'zeta'",
            data={"stage": "resolve"},
        )
    )
    report(
        _event(
            "mesh-peer-unreachable",
            data={"name": "127.0.0.1:9", "url": "http://127.0.0.1:9", "error": "refused"},
        )
    )
    report(
        _event("mesh-host-rejected", data={"name": "beta", "url": "http://127.0.0.1:2", "code_version": "v2"})
    )
    report(_event("context-shutdown", data={"saved": 1, "unsaved": 0}))
    report(_event("create", agent_id="0123456789ab", class_name="counter:Counter"))
    assert got == [
        (
            logging.INFO,
            "host alpha started: resident services: info; restored 2 paglets, 1 inactive",
        ),
        (logging.WARNING, "Counter 01234567: handler for 'add' raised ValueError: boom"),
        (logging.WARNING, "paglet Counter fedcba98 crashed: process exited with code 3"),
        (logging.WARNING, "moving paglet 01234567 failed (resolve): no host named 'zeta'"),
        (logging.WARNING, "mesh peer http://127.0.0.1:9 is unreachable: refused (retrying with backoff)"),
        (
            logging.WARNING,
            "mesh peer beta at http://127.0.0.1:2 refused: it runs code version 'v2', this host 'v1' "
            "(hosts join only hosts with the same --mesh-version)",
        ),
        (logging.INFO, "host alpha stopped; saved 1 paglet"),
        (logging.DEBUG, "create Counter 01234567"),
    ]


def test_lines_about_one_subject_are_rate_limited(
    lines: tuple[list[tuple[int, str]], logging.Logger],
) -> None:
    got, logger = lines
    clock = Clock()
    report = ConsoleReporter(logger=logger, clock=clock, repeat_after=60.0)
    failed = _event(
        "message-failed",
        agent_id="a" * 12,
        class_name="m:C",
        error="x",
        data={"error_type": "E", "message_kind": "k"},
    )
    for _ in range(100):
        report(failed)
        clock.now += 0.1
    other = _event("message-failed", agent_id="b" * 12, class_name="m:C", error="x", data={"error_type": "E"})
    report(other)
    assert [text for _, text in got] == [
        "C aaaaaaaa: handler for 'k' raised E: x",
        "C bbbbbbbb: a handler raised E: x",
    ]
    clock.now += 60.0
    report(failed)
    assert got[-1][1] == "C aaaaaaaa: handler for 'k' raised E: x (99 similar lines left out)"


def test_console_format() -> None:
    out = io.StringIO()
    stop = configure_console(logging.INFO, out)
    try:
        log = logging.getLogger("paglets.console")
        log.info("hello")
        log.warning("careful")
        log.debug("hidden")
    finally:
        stop()
    text = out.getvalue().splitlines()
    assert len(text) == 2
    assert re.fullmatch(r"\d\d:\d\d:\d\d hello", text[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d warning: careful", text[1])


def test_a_console_nobody_reads_never_blocks_the_host() -> None:
    class Stuck(io.TextIOBase):
        """A stream whose writes block until released (stderr piped to a process that never reads)."""

        def __init__(self) -> None:
            self.release = threading.Event()
            self.written = 0

        def write(self, text: str) -> int:
            self.release.wait(60)
            self.written += 1
            return len(text)

    stream = Stuck()
    stop = configure_console(logging.INFO, stream)  # type: ignore[arg-type]
    log = logging.getLogger("paglets.console")
    try:
        start = time.monotonic()
        for i in range(MAX_QUEUED_LINES + 500):
            log.info("line %d", i)
        assert time.monotonic() - start < 30  # every call returned although nothing was written
    finally:
        stream.release.set()
        stop()
    assert 0 < stream.written <= MAX_QUEUED_LINES + 2  # the rest was dropped, not queued without bound


def test_every_other_event_with_an_error_is_one_warning(
    lines: tuple[list[tuple[int, str]], logging.Logger],
) -> None:
    got, logger = lines
    report = ConsoleReporter(logger=logger, clock=Clock())
    report(
        _event(
            "relay-delivery-failed",
            agent_id="0123456789ab",
            class_name="counter:Counter",
            error="hub unreachable",
            data={"destination": "beta", "stage": "forward"},
        )
    )
    report(_event("service-call-failed", service_name="server-info", error="line one\nline two"))
    # failures the runtime logs itself get no second line; events without an error stay debug lines
    report(_event("resident-service-failed", service_name="mesh-info", error="cannot import"))
    report(_event("startup-agent-failed", class_name="x:Y", error="bad state"))
    report(_event("resident-service-create", service_name="mesh-info"))
    assert [(level, text) for level, text in got if level >= logging.WARNING] == [
        (
            logging.WARNING,
            "relay-delivery-failed (agent=0123456789ab, class=Counter, destination=beta, stage=forward): "
            "hub unreachable",
        ),
        (logging.WARNING, "service-call-failed (service=server-info): line one line two"),
    ]
    assert [text for level, text in got if level < logging.WARNING] == [
        "resident-service-failed service mesh-info error: cannot import",
        "startup-agent-failed error: bad state",
        "resident-service-create service mesh-info",
    ]
