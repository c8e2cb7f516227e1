"""A paglet's mailbox: serial, priority-ordered, bounded.

The mailbox decides *which* message goes to the paglet next; it does no I/O and holds no threads. The
host's event loop drives it:

1. ``push(item, priority)`` when a message arrives (raises ``MailboxFullError`` past the bound);
2. ``take()`` whenever the paglet may accept work: it returns the next item and marks it in flight, or
   ``None`` when nothing may start now;
3. ``finish(item_token, ok)`` when the paglet replied, which frees the serial slot.

Ordering rules:

- at most one *queued* message is in flight at a time (strictly serial per paglet);
- the highest ``priority`` goes first; equal priorities go in push order (FIFO);
- ``UNQUEUED_PRIORITY`` (0) bypasses the queue: such messages start at once, even while a queued message
  is in flight, in the order they were pushed. The paglet still runs its handlers one at a time; the
  bypass only skips the host-side wait.

Cost: ``push`` and ``take`` are O(log n) (a binary heap keyed by ``(-priority, sequence)``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from paglets.core.errors import MailboxFullError
from paglets.wire.limits import MAILBOX_DEPTH

__all__ = ["UNQUEUED_PRIORITY", "Delivery", "Mailbox", "MailboxStatistics"]

T = TypeVar("T")

#: Messages with this priority bypass the queue (``paglets.core.messages.UNQUEUED_PRIORITY``).
UNQUEUED_PRIORITY = 0


class MailboxStatistics(msgspec.Struct, frozen=True):
    """Counters with the field names of the contract's ``mailbox`` summary."""

    queued_count: int
    in_flight_count: int
    delivered_count: int
    failed_count: int
    depth: int


@dataclass(slots=True)
class Delivery(Generic[T]):
    """One message in the mailbox; ``sequence`` is unique per mailbox and orders equal priorities."""

    item: T
    priority: int
    sequence: int
    queued: bool = field(default=True)


class Mailbox(Generic[T]):
    """See the module docstring."""

    def __init__(self, depth: int = MAILBOX_DEPTH) -> None:
        if depth < 1:
            raise ValueError("mailbox depth must be at least 1")
        self._depth = depth
        self._heap: list[tuple[int, int, Delivery[T]]] = []
        self._bypass: deque[Delivery[T]] = deque()
        self._sequence = 0
        self._queued_in_flight: Delivery[T] | None = None
        self._bypass_in_flight = 0
        self._delivered = 0
        self._failed = 0
        self._closed = False

    # --- producers ------------------------------------------------------------------------------------

    def push(self, item: T, priority: int) -> Delivery[T]:
        """Accept ``item``; raises ``MailboxFullError`` when ``depth`` messages are already waiting."""
        if self._closed:
            raise MailboxFullError("mailbox is closed")
        if len(self._heap) + len(self._bypass) >= self._depth:
            raise MailboxFullError(f"mailbox is full ({self._depth} messages waiting)")
        return self._push(item, priority)

    def push_accepted(self, item: T, priority: int) -> Delivery[T]:
        """Take ``item`` back although the mailbox may be full: it was accepted earlier (queued while the
        paglet was inactive, bounded by the record's queue) and must not be lost now. Later pushes are
        refused until the mailbox is below its depth again."""
        if self._closed:
            raise MailboxFullError("mailbox is closed")
        return self._push(item, priority)

    def _push(self, item: T, priority: int) -> Delivery[T]:
        self._sequence += 1
        if priority == UNQUEUED_PRIORITY:
            delivery = Delivery(item, priority, self._sequence, queued=False)
            self._bypass.append(delivery)
        else:
            delivery = Delivery(item, priority, self._sequence, queued=True)
            heapq.heappush(self._heap, (-priority, self._sequence, delivery))
        return delivery

    # --- the consumer ---------------------------------------------------------------------------------

    def take(self) -> Delivery[T] | None:
        """The next delivery that may start now, marked in flight; ``None`` if none may."""
        if self._bypass:
            self._bypass_in_flight += 1
            return self._bypass.popleft()
        if self._queued_in_flight is None and self._heap:
            _, _, delivery = heapq.heappop(self._heap)
            self._queued_in_flight = delivery
            return delivery
        return None

    def finish(self, delivery: Delivery[T], *, ok: bool) -> None:
        """Record that ``delivery`` completed; frees the serial slot for queued messages."""
        if delivery.queued:
            if self._queued_in_flight is not delivery:
                raise RuntimeError("finish() for a delivery that is not in flight")
            self._queued_in_flight = None
        else:
            if self._bypass_in_flight <= 0:
                raise RuntimeError("finish() for a bypass delivery that is not in flight")
            self._bypass_in_flight -= 1
        if ok:
            self._delivered += 1
        else:
            self._failed += 1

    def queued_in_flight(self) -> Delivery[T] | None:
        """The queued delivery in flight (at most one), if any."""
        return self._queued_in_flight

    # --- shutdown ---------------------------------------------------------------------------------------

    def close(self) -> list[Delivery[T]]:
        """Refuse further pushes and hand back every waiting delivery, in delivery order."""
        self._closed = True
        waiting = list(self._bypass)
        self._bypass.clear()
        waiting.extend(d for _, _, d in sorted(self._heap))
        self._heap.clear()
        return waiting

    def reopen(self) -> None:
        self._closed = False

    # --- introspection --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing in flight."""
        return not self._heap and not self._bypass and self.in_flight == 0

    @property
    def in_flight(self) -> int:
        return self._bypass_in_flight + (1 if self._queued_in_flight is not None else 0)

    def __len__(self) -> int:
        return len(self._heap) + len(self._bypass)

    def __iter__(self) -> Iterator[Delivery[T]]:
        """Waiting deliveries in the order they would start (does not consume)."""
        yield from self._bypass
        yield from (d for _, _, d in sorted(self._heap))

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            queued_count=len(self),
            in_flight_count=self.in_flight,
            delivered_count=self._delivered,
            failed_count=self._failed,
            depth=self._depth,
        )
