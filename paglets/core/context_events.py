"""Host-level context events and the bounded log that keeps them (docs/implementing/events.md).

A host records what happens on it (``create``, ``dispatch``, ``message-failed``, ...) as
``ContextEvent`` values in a ``ContextEventLog``; remote observers poll ``GET /events?since=<id>``.

Log rules:

- ids start at 1 and increase by exactly one per event, for the life of the log (so they are
  consecutive: an observer that sees a gap knows the ring overwrote events it had not read);
- the log keeps the newest ``capacity`` events in a ring: event ``i`` lives in slot ``(i - 1) %
  capacity``, so ``events_since`` costs O(limit), not O(capacity);
- ``events_since(since, limit)`` returns the retained events with ``event_id > since``, oldest first, at
  most ``limit`` of them (``limit`` ≤ 0 gives none);
- listeners are called synchronously on the emitting thread, in registration order, *outside* the
  log's lock (a listener may emit or query). A listener that raises produces one extra
  ``event-listener-failed`` event, delivered to the *other* listeners; a failure while delivering that
  event is only counted (``statistics().listener_failures``), never reported again, so a broken
  listener cannot recurse.

The log is thread-safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import msgspec

from paglets.core.errors import SerializationError

__all__ = [
    "DEFAULT_CONTEXT_EVENT_CAPACITY",
    "LISTENER_FAILED_KIND",
    "ContextEvent",
    "ContextEventLog",
    "ContextEventLogStatistics",
    "ContextListener",
]

#: Events a host keeps in memory (paglets 2.0 keeps 1000). Older ones are overwritten.
DEFAULT_CONTEXT_EVENT_CAPACITY: Final = 1000

#: Largest capacity a log accepts: the ring is allocated up front, one slot per event.
MAX_CONTEXT_EVENT_CAPACITY: Final = 1_000_000

#: Kind of the event emitted when a listener raises.
LISTENER_FAILED_KIND: Final = "event-listener-failed"


@dataclass(frozen=True, slots=True)
class ContextEvent:
    """One host-level event; ``data`` holds kind-specific details as wire values."""

    event_id: int
    kind: str
    host_name: str
    host_address: str
    timestamp: float = field(default_factory=time.time)
    agent_id: str | None = None
    class_name: str | None = None
    message_id: str | None = None
    service_name: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "host_name": self.host_name,
            "host_address": self.host_address,
            "timestamp": self.timestamp,
            "agent_id": self.agent_id,
            "class_name": self.class_name,
            "message_id": self.message_id,
            "service_name": self.service_name,
            "data": dict(self.data),
            "error": self.error,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> ContextEvent:
        """Rebuild an event; optional fields may be missing, malformed input raises ``SerializationError``."""
        if not isinstance(payload, dict):
            raise SerializationError(f"context event must be a dict, got {type(payload).__name__}")
        event_id = payload.get("event_id")
        if isinstance(event_id, bool) or not isinstance(event_id, int):
            raise SerializationError("context event event_id must be an integer")
        timestamp = payload.get("timestamp")
        if timestamp is None:
            timestamp = time.time()
        elif isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise SerializationError("context event timestamp must be a number")
        details = payload.get("data")
        if details is None:
            details = {}
        elif not isinstance(details, dict):
            raise SerializationError("context event data must be a dict")
        return cls(
            event_id=event_id,
            kind=_required_str(payload, "kind"),
            host_name=_required_str(payload, "host_name"),
            host_address=_required_str(payload, "host_address"),
            timestamp=float(timestamp),
            agent_id=_optional_str(payload, "agent_id"),
            class_name=_optional_str(payload, "class_name"),
            message_id=_optional_str(payload, "message_id"),
            service_name=_optional_str(payload, "service_name"),
            data=dict(details),
            error=_optional_str(payload, "error"),
        )


def _required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise SerializationError(f"context event {key} must be a string")
    return value


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise SerializationError(f"context event {key} must be a string or null")


class ContextListener(Protocol):
    """Anything callable with one ``ContextEvent``."""

    def __call__(self, event: ContextEvent, /) -> None: ...


class ContextEventLogStatistics(msgspec.Struct, frozen=True):
    capacity: int
    retained: int
    last_event_id: int
    listeners: int
    listener_failures: int


class ContextEventLog:
    """Bounded, thread-safe ring of ``ContextEvent`` values with synchronous listeners.

    ``host_name``/``host_address`` are used for events emitted without them; a host updates them when
    its address changes.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CONTEXT_EVENT_CAPACITY,
        *,
        host_name: str = "",
        host_address: str = "",
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError("capacity must be an integer")
        if not 1 <= capacity <= MAX_CONTEXT_EVENT_CAPACITY:
            raise ValueError(f"capacity must be between 1 and {MAX_CONTEXT_EVENT_CAPACITY}")
        self.capacity: Final = capacity
        self.host_name = host_name
        self.host_address = host_address
        self._ring: list[ContextEvent | None] = [None] * capacity
        self._last_id = 0
        self._listeners: tuple[ContextListener, ...] = ()
        self._listener_failures = 0
        self._lock = threading.Lock()

    # --- listeners -----------------------------------------------------------------------------------

    def add_listener(self, listener: ContextListener) -> None:
        """Call ``listener`` for every later event; adding the same listener twice has no effect."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: ContextListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item != listener)

    # --- writing ---------------------------------------------------------------------------------------

    def emit(
        self,
        kind: str,
        *,
        host_name: str | None = None,
        host_address: str | None = None,
        agent_id: str | None = None,
        class_name: str | None = None,
        message_id: str | None = None,
        service_name: str | None = None,
        data: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> ContextEvent:
        """Record an event, call the listeners, and return the event."""
        # built positionally, outside the lock: this runs twice for every message a host delivers
        event = ContextEvent(
            0,
            kind,
            self.host_name if host_name is None else host_name,
            self.host_address if host_address is None else host_address,
            time.time(),
            agent_id,
            class_name,
            message_id,
            service_name,
            dict(data) if data else {},
            error,
        )
        with self._lock:
            self._last_id += 1
            object.__setattr__(event, "event_id", self._last_id)  # frozen: the id is known only here
            self._ring[(self._last_id - 1) % self.capacity] = event
            listeners = self._listeners
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:
                self._report_listener_failure(event, listener, exc)
        return event

    append = emit

    def _append(self, **fields: Any) -> tuple[ContextEvent, tuple[ContextListener, ...]]:
        with self._lock:
            self._last_id += 1
            event = ContextEvent(event_id=self._last_id, **fields)
            self._ring[(self._last_id - 1) % self.capacity] = event
            return event, self._listeners

    def _report_listener_failure(
        self, event: ContextEvent, listener: ContextListener, exc: Exception
    ) -> None:
        failure, listeners = self._append(
            kind=LISTENER_FAILED_KIND,
            host_name=event.host_name,
            host_address=event.host_address,
            agent_id=event.agent_id,
            class_name=event.class_name,
            message_id=event.message_id,
            service_name=event.service_name,
            data={"event_id": event.event_id, "event_kind": event.kind, "listener": repr(listener)},
            error=f"{type(exc).__name__}: {exc}",
        )
        failed = 1
        for other in listeners:
            if other == listener:
                continue
            try:
                other(failure)
            except Exception:
                failed += 1
        with self._lock:
            self._listener_failures += failed

    # --- reading ---------------------------------------------------------------------------------------

    def events_since(self, since: int = 0, limit: int = 100) -> list[ContextEvent]:
        """Retained events with ``event_id > since``, oldest first, at most ``limit`` of them."""
        with self._lock:
            last = self._last_id
            first_retained = max(1, last - self.capacity + 1)
            start = max(since + 1, first_retained)
            stop = min(last, start + limit - 1)
            ring, capacity = self._ring, self.capacity
            events = [ring[(event_id - 1) % capacity] for event_id in range(start, stop + 1)]
        return [event for event in events if event is not None]

    @property
    def last_event_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        with self._lock:
            return self._last_id

    def __len__(self) -> int:
        """Events currently retained."""
        with self._lock:
            return min(self._last_id, self.capacity)

    def statistics(self) -> ContextEventLogStatistics:
        with self._lock:
            return ContextEventLogStatistics(
                capacity=self.capacity,
                retained=min(self._last_id, self.capacity),
                last_event_id=self._last_id,
                listeners=len(self._listeners),
                listener_failures=self._listener_failures,
            )
