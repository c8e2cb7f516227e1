"""``GET /metrics``: a host's metrics in the Prometheus text exposition format (version 0.0.4).

Written here (no client library): counters and histograms are plain numbers updated on the host's loop
or under a lock, and gauges are read when the page is asked for. The names (all ``paglets_``):

| name | type | what |
| --- | --- | --- |
| ``paglets_active`` | gauge | paglets with a process on this host |
| ``paglets_inactive`` | gauge | inactive paglets (records) |
| ``paglets_forwarding_entries`` | gauge | paglets that left, whose new place this host remembers |
| ``paglets_mailbox_depth`` | gauge | messages waiting in all mailboxes (``_max``: in the fullest one) |
| ``paglets_ring_pending_bytes`` | gauge | bytes written to paglet processes' rings not yet read (sum) |
| ``paglets_messages_total{outcome}`` | counter | messages handled, ``ok`` or ``error`` |
| ``paglets_message_seconds`` | histogram | time from a message's start in the paglet to its reply |
| ``paglets_moves_total{kind,outcome}`` | counter | dispatches, clones, retracts started here |
| ``paglets_move_seconds{kind}`` | histogram | their duration, as the caller waits |
| ``paglets_passivations_total`` | counter | idle passivations |
| ``paglets_events_total{kind}`` | counter | context events by kind (errors: ``task-failed``, ...) |
| ``paglets_http_requests_total`` | counter | HTTP requests served |
| ``paglets_http_requests_in_flight`` | gauge | HTTP requests being served |
| ``paglets_http_errors_total{class}`` | counter | ``client`` 4xx, ``server`` 5xx, ``protocol``, ``timeout`` |
| ``paglets_http_connections_open`` | gauge | open connections |
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from paglets.core.context_events import ContextEvent
    from paglets.http.server import ServerStatistics
    from paglets.runtime._controller import PagletController

__all__ = ["CONTENT_TYPE", "Histogram", "HostMetrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Bucket bounds in seconds: from a fast in-process message (~70 µs) to a slow move.
MESSAGE_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    5.0,
)
MOVE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Event kinds counted by kind at most (a bound on label values; later kinds count as ``other``).
MAX_EVENT_KINDS: Final = 200


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


class Histogram:
    """Cumulative buckets, a sum and a count (thread-safe)."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self.counts[index] += 1
            self.sum += value

    def lines(self, name: str, labels: dict[str, str]) -> list[str]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            out.append(f"{name}_bucket{_labels({**labels, 'le': _number(bound)})} {running}")
        out.append(f"{name}_sum{_labels(labels)} {_number(total)}")
        out.append(f"{name}_count{_labels(labels)} {running}")
        return out


class HostMetrics:
    """One host's metrics (see the module docstring). ``observe_*`` may be called from any thread."""

    def __init__(
        self,
        *,
        controllers: Callable[[], dict[str, PagletController]],
        inactive: Callable[[], int],
        forwards: Callable[[], int],
        passivations: Callable[[], int],
        http: Callable[[], ServerStatistics | None],
    ) -> None:
        self._controllers = controllers
        self._inactive = inactive
        self._forwards = forwards
        self._passivations = passivations
        self._http = http
        self._lock = threading.Lock()
        self.messages = {"ok": 0, "error": 0}
        self.message_seconds = Histogram(MESSAGE_BUCKETS)
        self.moves: dict[tuple[str, str], int] = {}
        self.move_seconds: dict[str, Histogram] = {}
        self.events: dict[str, int] = {}

    def observe_message(self, seconds: float, ok: bool) -> None:
        with self._lock:
            self.messages["ok" if ok else "error"] += 1
        self.message_seconds.observe(seconds)

    def observe_move(self, kind: str, seconds: float, ok: bool) -> None:
        with self._lock:
            key = (kind, "ok" if ok else "error")
            self.moves[key] = self.moves.get(key, 0) + 1
            histogram = self.move_seconds.setdefault(kind, Histogram(MOVE_BUCKETS))
        histogram.observe(seconds)

    def on_event(self, event: ContextEvent) -> None:
        """A context listener: counts events by kind."""
        with self._lock:
            kind = event.kind if event.kind in self.events or len(self.events) < MAX_EVENT_KINDS else "other"
            self.events[kind] = self.events.get(kind, 0) + 1

    def render(self) -> str:
        """The exposition text (call on the host's loop: it reads the controllers)."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)

        controllers = list(self._controllers().values())
        depths = [len(c.mailbox) for c in controllers]
        ring = 0
        for ctrl in controllers:
            ring += ctrl.channel.pending_bytes()
        metric("paglets_active", "gauge", "Paglets with a process on this host.", [({}, len(controllers))])
        metric("paglets_inactive", "gauge", "Inactive paglets (records).", [({}, self._inactive())])
        metric(
            "paglets_forwarding_entries",
            "gauge",
            "Paglets that left, whose new place this host remembers.",
            [({}, self._forwards())],
        )
        metric("paglets_mailbox_depth", "gauge", "Messages waiting in all mailboxes.", [({}, sum(depths))])
        metric(
            "paglets_mailbox_depth_max",
            "gauge",
            "Messages waiting in the fullest mailbox.",
            [({}, max(depths, default=0))],
        )
        metric(
            "paglets_ring_pending_bytes",
            "gauge",
            "Bytes in rings to paglet processes not yet read.",
            [({}, ring)],
        )
        with self._lock:
            messages = dict(self.messages)
            moves = dict(self.moves)
            move_seconds = dict(self.move_seconds)
            events = dict(self.events)
        metric(
            "paglets_messages_total",
            "counter",
            "Messages handled by paglets of this host.",
            [({"outcome": k}, v) for k, v in sorted(messages.items())],
        )
        out.append("# HELP paglets_message_seconds Time from a message's start in the paglet to its reply.")
        out.append("# TYPE paglets_message_seconds histogram")
        out.extend(self.message_seconds.lines("paglets_message_seconds", {}))
        metric(
            "paglets_moves_total",
            "counter",
            "Moves started on this host.",
            [({"kind": k, "outcome": o}, v) for (k, o), v in sorted(moves.items())],
        )
        out.append("# HELP paglets_move_seconds Duration of moves started on this host.")
        out.append("# TYPE paglets_move_seconds histogram")
        for kind, histogram in sorted(move_seconds.items()):
            out.extend(histogram.lines("paglets_move_seconds", {"kind": kind}))
        metric("paglets_passivations_total", "counter", "Idle passivations.", [({}, self._passivations())])
        metric(
            "paglets_events_total",
            "counter",
            "Context events by kind.",
            [({"kind": k}, v) for k, v in sorted(events.items())],
        )
        stats = self._http()
        if stats is not None:
            metric(
                "paglets_http_requests_total",
                "counter",
                "HTTP requests served.",
                [({}, stats.requests_served)],
            )
            metric(
                "paglets_http_requests_in_flight",
                "gauge",
                "HTTP requests being served.",
                [({}, stats.requests_in_flight)],
            )
            metric(
                "paglets_http_errors_total",
                "counter",
                "HTTP error answers by class.",
                [
                    ({"class": "client"}, stats.client_errors),
                    ({"class": "server"}, stats.server_errors),
                    ({"class": "protocol"}, stats.protocol_errors),
                    ({"class": "timeout"}, stats.timeouts),
                ],
            )
            metric(
                "paglets_http_connections_open",
                "gauge",
                "Open HTTP connections.",
                [({}, stats.connections_open)],
            )
        return "\n".join(out) + "\n"
