"""Membership updates of the mesh and the bounded queue that spreads them (the protocol's dissemination).

An update is what one host says about another: its ``HostRef`` wire plus two keys of ours::

    {...HostRef wire..., "incarnation": int, "state": "alive" | "suspect" | "dead", "by": url}

``incarnation`` is a number only the host itself ever raises (to announce new data, or to refute a
suspicion about itself); ``state`` is what the reporter believes; ``by`` (suspect only) names the
reporter, so that independent suspicions of one host can be counted. A ref without ``incarnation`` (a
paglets 2.0 host, or ``MeshRegistry.register``) is a *legacy* update: it may introduce a host, never
change the state of a known one.

:class:`BroadcastQueue` keeps at most one pending update per host (a newer one replaces the older) and
hands each out ``retransmit_limit(n)`` times, fewest-sent first, piggybacked on the requests and answers
the mesh exchanges anyway. Its size is bounded by the table it serves (one entry per member, at most
``max_entries``), so it can never grow without limit whatever the traffic.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Final

from paglets.core.errors import HostError
from paglets.remote._mesh_ref import HostRef, normalize_host_url

__all__ = [
    "ALIVE",
    "DEAD",
    "MAX_INCARNATION",
    "RETRANSMIT_MULT",
    "STATES",
    "SUSPECT",
    "BroadcastQueue",
    "Update",
    "incarnation_from_wire",
    "retransmit_limit",
    "update_from_wire",
]

ALIVE: Final = "alive"
SUSPECT: Final = "suspect"
DEAD: Final = "dead"
STATES: Final = (ALIVE, SUSPECT, DEAD)
#: Largest incarnation accepted (the largest integer a JSON double holds exactly).
MAX_INCARNATION: Final = 2**53
#: Each update is sent ``RETRANSMIT_MULT * ceil(log10(n + 1))`` times (n: members): enough for an
#: infection-style spread to reach every member with high probability, and no more.
RETRANSMIT_MULT: Final = 3


def retransmit_limit(members: int) -> int:
    return RETRANSMIT_MULT * max(1, math.ceil(math.log10(max(1, members) + 1)))


def incarnation_from_wire(value: Any) -> int:
    """An incarnation number from JSON; ``HostError`` for anything but an integer in range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INCARNATION:
        raise HostError(f"incarnation must be an integer in [0, 2**53], got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Update:
    """One host's report about another (see the module docstring)."""

    ref: HostRef
    #: ``None`` for a legacy ref (no membership fields).
    incarnation: int | None
    state: str = ALIVE
    by: str | None = None

    @property
    def url(self) -> str:
        return self.ref.url

    def to_wire(self) -> dict[str, Any]:
        wire = self.ref.to_wire()
        if self.incarnation is not None:
            wire["incarnation"] = self.incarnation
            wire["state"] = self.state
            if self.by is not None:
                wire["by"] = self.by
        return wire


def update_from_wire(item: Any) -> Update:
    """Parse one update (or a plain ref); ``HostError`` when malformed."""
    ref = HostRef.from_wire(item)
    raw = item.get("incarnation")
    if raw is None:
        return Update(ref, None)
    incarnation = incarnation_from_wire(raw)
    state = item.get("state", ALIVE)
    if state not in STATES:
        raise HostError(f"state must be one of {', '.join(STATES)}, got {str(state)[:40]!r}")
    by = item.get("by")
    if by is not None:
        if not isinstance(by, str):
            raise HostError("'by' must be a host URL")
        by = normalize_host_url(by)
    return Update(ref, incarnation, state, by)


@dataclass(slots=True)
class _Pending:
    update: Update
    sent: int = 0


class BroadcastQueue:
    """Pending updates, one per host URL, each piggybacked ``retransmit_limit(n)`` times (module doc)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, update: Update) -> None:
        """Queue ``update``, replacing any pending one about the same host (it is newer)."""
        with self._lock:
            self._pending.pop(update.url, None)
            if len(self._pending) >= self.max_entries:  # full: the most-sent entry makes room
                victim = max(self._pending, key=lambda url: self._pending[url].sent)
                del self._pending[victim]
            self._pending[update.url] = _Pending(update)

    def take(self, limit: int, members: int, *, first: str | None = None) -> list[dict[str, Any]]:
        """Wire forms of at most ``limit`` updates, fewest-sent first (the one about ``first``, the
        receiver, before all others: it may have to refute it); each counts as sent once, and those
        sent ``retransmit_limit(members)`` times leave the queue."""
        if not self._pending or limit <= 0:
            return []
        cap = retransmit_limit(members)
        with self._lock:
            chosen = sorted(self._pending.values(), key=lambda p: (p.update.url != first, p.sent))[:limit]
            for pending in chosen:
                pending.sent += 1
                if pending.sent >= cap:
                    self._pending.pop(pending.update.url, None)
        return [pending.update.to_wire() for pending in chosen]

    def drop(self, url: str) -> None:
        with self._lock:
            self._pending.pop(url, None)
