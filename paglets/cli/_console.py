"""What a command-line host says on its console: its context events as short log lines.

The host records everything that happens as context events (``paglets.core.context_events``); this
module listens to them and writes a line for the ones an operator wants to see: the start (resident
services, paglets restored), a paglet crashed, a handler raised, a move failed, mesh trouble (a peer
unreachable, a peer refused for another code version), the shutdown (paglets saved), and any other
event that carries an error (``KIND (agent=..., service=..., class=..., stage=...): ERROR``; resident
services and startup agents that fail are logged by the runtime itself, once). Everything else is a
debug line (``-v``).

Lines go through :mod:`logging` (logger ``paglets.console``) to stderr, formatted ``HH:MM:SS text``
(``HH:MM:SS warning: text`` from warnings up). Two rules keep the console readable and the host safe:

- **rate limit** — lines with the same subject (a peer, a paglet and message kind, ...) are written at
  most once per :data:`REPEAT_AFTER` seconds; the next one says how many were left out meanwhile;
- **never block the host** — the event listener runs on the host's threads, so records go into a
  bounded queue that a writer thread drains; when stderr is not read and the queue is full, lines are
  dropped (and counted), the host keeps running.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, TextIO

from paglets.core.context_events import ContextEvent

__all__ = [
    "LOGGER_NAME",
    "MAX_QUEUED_LINES",
    "REPEAT_AFTER",
    "ConsoleReporter",
    "configure_console",
]

LOGGER_NAME: Final = "paglets.console"
#: Seconds before a line about the same subject is written again (a heartbeat is 1 s: never per beat).
REPEAT_AFTER: Final = 60.0
#: Subjects remembered for rate limiting (oldest forgotten first).
MAX_SUBJECTS: Final = 4096
#: Log records waiting for the writer thread; beyond this, lines are dropped rather than block the host.
MAX_QUEUED_LINES: Final = 10_000
#: Seconds the console may take at exit to write what is still queued.
STOP_WAIT: Final = 5.0
#: Longest error text shown in one line (the event log keeps the whole text).
MAX_ERROR_SHOWN: Final = 300


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = text.partition(" ")
            return f"{stamp} {record.levelname.lower()}: {rest}"
        return text


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """A ``QueueHandler`` that drops records when its bounded queue is full (never blocks)."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


def configure_console(level: int, stream: TextIO | None = None) -> Callable[[], None]:
    """Send log records of ``level`` and up to ``stream`` (stderr) through a writer thread; returns a
    function that writes what is queued (waiting at most :data:`STOP_WAIT` s) and stops the thread."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_Formatter())
    lines: queue.Queue[logging.LogRecord | None] = queue.Queue(MAX_QUEUED_LINES)
    front = _DroppingQueueHandler(lines)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(front)
    root.setLevel(level)
    logging.captureWarnings(True)

    def write() -> None:
        while (record := lines.get()) is not None:
            handler.handle(record)

    writer = threading.Thread(target=write, name="paglets-console", daemon=True)
    writer.start()

    def stop() -> None:
        if front not in root.handlers:
            return
        root.removeHandler(front)
        deadline = time.monotonic() + STOP_WAIT
        try:
            lines.put(None, timeout=STOP_WAIT)
        except queue.Full:  # stderr is stuck: leave the (daemon) writer behind
            return
        writer.join(max(0.0, deadline - time.monotonic()))
        handler.flush()

    return stop


def _short(agent_id: str | None) -> str:
    return (agent_id or "?")[:8]


def _class(name: str | None) -> str:
    """``module:Counter`` → ``Counter``."""
    return (name or "paglet").rpartition(":")[2] or "paglet"


def _error(text: Any) -> str:
    value = str(text or "").strip().replace("\n", " ")
    return value if len(value) <= MAX_ERROR_SHOWN else value[: MAX_ERROR_SHOWN - 3] + "..."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


#: ``kind -> (level, line, subject)`` for one event; ``None`` to use the generic debug line.
Line = tuple[int, str, str]


def _start(e: ContextEvent) -> Line:
    d = e.data
    services = d.get("resident_services") or []
    shown = ", ".join(str(s) for s in services) if services else "none"
    restored, inactive = int(d.get("restored") or 0), int(d.get("inactive") or 0)
    return (
        logging.INFO,
        f"host {e.host_name} started: resident services: {shown}; "
        f"restored {_plural(restored, 'paglet')}, {inactive} inactive",
        "start",
    )


def _shutdown(e: ContextEvent) -> Line:
    d = e.data
    if "saved" not in d:
        return logging.INFO, f"host {e.host_name} stopped", "stop"
    text = f"host {e.host_name} stopped; saved {_plural(int(d['saved']), 'paglet')}"
    unsaved = int(d.get("unsaved") or 0)
    if unsaved:
        return logging.WARNING, f"{text}, {unsaved} could not be saved", "stop"
    return logging.INFO, text, "stop"


def _crashed(e: ContextEvent) -> Line:
    code = e.data.get("exitcode")
    how = _error(e.error) or (f"exit code {code}" if code is not None else "no reason given")
    return (
        logging.WARNING,
        f"paglet {_class(e.class_name)} {_short(e.agent_id)} crashed: {how}",
        f"crash:{e.agent_id}",
    )


def _message_failed(e: ContextEvent) -> Line:
    kind = e.data.get("message_kind")
    error_type = e.data.get("error_type") or "error"
    who = f"{_class(e.class_name)} {_short(e.agent_id)}"
    handler = f"handler for {kind!r}" if kind is not None else "a handler"
    if error_type == "PagletCrashedError":  # the paglet-crashed line says it
        level = logging.DEBUG
    elif error_type == "NotHandledError":
        level = logging.INFO
    else:
        level = logging.WARNING
    return (
        level,
        f"{who}: {handler} raised {error_type}: {_error(e.error)}",
        f"handler:{e.agent_id}:{kind}:{error_type}",
    )


def _transfer_failed(e: ContextEvent) -> Line:
    stage = e.data.get("stage") or "move"
    who = f"paglet {_short(e.agent_id)}" if e.agent_id else "a paglet"
    return (
        logging.WARNING,
        f"moving {who} failed ({stage}): {_error(e.error)}",
        f"move:{e.agent_id}:{stage}",
    )


def _peer(d: dict[str, Any]) -> str:
    name, url = d.get("name"), d.get("url")
    return f"{name} at {url}" if name and name != str(url).split("://")[-1] else str(url)


def _unreachable(e: ContextEvent) -> Line:
    d = e.data
    return (
        logging.WARNING,
        f"mesh peer {_peer(d)} is unreachable: {_error(d.get('error'))} (retrying with backoff)",
        f"unreachable:{d.get('url')}",
    )


def _rejected(e: ContextEvent) -> Line:
    d = e.data
    theirs = d.get("code_version")
    why = f"it runs code version {theirs!r}" if theirs else _error(d.get("error"))
    return (
        logging.WARNING,
        f"mesh peer {_peer(d)} refused: {why}, this host {d.get('ours') or 'another'} "
        "(hosts join only hosts with the same --mesh-version)",
        f"rejected:{d.get('url')}:{theirs}",
    )


def _online(e: ContextEvent) -> Line:
    d = e.data
    return logging.INFO, f"mesh peer {_peer(d)} is online", f"online:{d.get('url')}"


def _offline(e: ContextEvent) -> Line:
    d = e.data
    return (
        logging.INFO,
        f"mesh peer {_peer(d)} went offline: {_error(d.get('error'))}",
        f"offline:{d.get('url')}",
    )


def _quarantined(e: ContextEvent) -> Line:
    d = e.data
    return (
        logging.WARNING,
        f"record {d.get('record')} is damaged and was quarantined: {_error(d.get('reason'))}",
        f"quarantine:{d.get('record')}",
    )


def _listener_failed(e: ContextEvent) -> Line:
    return logging.WARNING, f"an event listener failed: {_error(e.error)}", "listener"


def _error_event(e: ContextEvent) -> Line:
    """Any other event that carries an error: ``KIND (agent=..., service=..., ...): ERROR``."""
    d = e.data
    parts = [
        f"{label}={value}"
        for label, value in (
            ("agent", e.agent_id),
            ("service", e.service_name),
            ("class", _class(e.class_name) if e.class_name else None),
            ("message", d.get("message_kind")),
            ("destination", d.get("destination") or d.get("target")),
            ("stage", d.get("stage")),
        )
        if value
    ]
    where = f" ({', '.join(parts)})" if parts else ""
    return (
        logging.WARNING,
        f"{e.kind}{where}: {_error(e.error)}",
        f"error:{e.kind}:{e.agent_id}:{e.service_name}",
    )


#: Failures the runtime logs itself (with more detail than the event): no second line for their events.
LOGGED_BY_RUNTIME: Final = frozenset({"resident-service-failed", "startup-agent-failed"})

_LINES: Final[dict[str, Callable[[ContextEvent], Line]]] = {
    "context-start": _start,
    "context-shutdown": _shutdown,
    "paglet-crashed": _crashed,
    "message-failed": _message_failed,
    "transfer-failed": _transfer_failed,
    "mesh-peer-unreachable": _unreachable,
    "mesh-host-rejected": _rejected,
    "mesh-host-online": _online,
    "mesh-host-offline": _offline,
    "record-quarantined": _quarantined,
    "event-listener-failed": _listener_failed,
}


class ConsoleReporter:
    """A context-event listener that logs the events above, rate-limited per subject.

    ``code_version`` is this host's, quoted in refusals. Thread-safe; never raises into the host.
    """

    def __init__(
        self,
        *,
        code_version: str = "",
        logger: logging.Logger | None = None,
        repeat_after: float = REPEAT_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger if logger is not None else logging.getLogger(LOGGER_NAME)
        self._code_version = code_version
        self._repeat_after = repeat_after
        self._clock = clock
        self._lock = threading.Lock()
        #: subject -> (moment of the last line written, lines left out since)
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __call__(self, event: ContextEvent) -> None:
        render = _LINES.get(event.kind)
        if render is None and event.error and event.kind not in LOGGED_BY_RUNTIME:
            render = _error_event
        if render is None:
            if self._logger.isEnabledFor(logging.DEBUG):
                self._logger.debug("%s", _generic(event))
            return
        if event.kind == "mesh-host-rejected":
            event = _with(event, ours=repr(self._code_version))
        level, text, subject = render(event)
        if not self._logger.isEnabledFor(level):
            return
        left_out = self._admit(subject)
        if left_out is None:
            return
        if left_out:
            text += f" ({_plural(left_out, 'similar line')} left out)"
        self._logger.log(level, "%s", text)

    def _admit(self, subject: str) -> int | None:
        """Lines left out since the last one about ``subject`` (0 or more), or ``None`` to leave it out."""
        now = self._clock()
        with self._lock:
            seen = self._seen.get(subject)
            if seen is not None and now - seen[0] < self._repeat_after:
                self._seen[subject] = (seen[0], seen[1] + 1)
                return None
            self._seen[subject] = (now, 0)
            self._seen.move_to_end(subject)
            while len(self._seen) > MAX_SUBJECTS:
                self._seen.popitem(last=False)
            return 0 if seen is None else seen[1]


def _with(event: ContextEvent, **data: Any) -> ContextEvent:
    return ContextEvent(
        event_id=event.event_id,
        kind=event.kind,
        host_name=event.host_name,
        host_address=event.host_address,
        timestamp=event.timestamp,
        agent_id=event.agent_id,
        class_name=event.class_name,
        message_id=event.message_id,
        service_name=event.service_name,
        data={**event.data, **data},
        error=event.error,
    )


def _generic(e: ContextEvent) -> str:
    parts = [e.kind]
    if e.agent_id:
        parts.append(f"{_class(e.class_name)} {_short(e.agent_id)}")
    if e.service_name:
        parts.append(f"service {e.service_name}")
    if e.data:
        parts.append(" ".join(f"{k}={v}" for k, v in sorted(e.data.items())))
    if e.error:
        parts.append(f"error: {_error(e.error)}")
    return " ".join(parts)
