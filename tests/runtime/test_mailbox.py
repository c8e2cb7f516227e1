"""Mailbox ordering: priority first, FIFO within a priority, serial, bounded, nothing lost."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from paglets.core.errors import MailboxFullError
from paglets.runtime._mailbox import UNQUEUED_PRIORITY, Delivery, Mailbox


def test_priority_then_fifo() -> None:
    box: Mailbox[str] = Mailbox()
    first = box.push("in-flight", 5)
    assert box.take() is first
    box.push("low-1", 1)
    box.push("high", 10)
    box.push("low-2", 1)
    box.push("mid", 5)
    assert box.take() is None  # serial: one queued message in flight
    box.finish(first, ok=True)
    order = []
    while (d := box.take()) is not None:
        order.append(d.item)
        box.finish(d, ok=True)
    assert order == ["high", "mid", "low-1", "low-2"]
    assert box.statistics().delivered_count == 5


def test_unqueued_bypasses_the_serial_slot() -> None:
    box: Mailbox[str] = Mailbox()
    queued = box.push("queued", 5)
    assert box.take() is queued
    bypass = box.push("now", UNQUEUED_PRIORITY)
    assert box.take() is bypass
    assert box.in_flight == 2
    box.finish(bypass, ok=False)
    box.finish(queued, ok=True)
    stats = box.statistics()
    assert (stats.delivered_count, stats.failed_count, stats.in_flight_count) == (1, 1, 0)


def test_bounded_with_a_clear_error() -> None:
    box: Mailbox[int] = Mailbox(depth=3)
    for i in range(3):
        box.push(i, 5)
    with pytest.raises(MailboxFullError, match="full"):
        box.push(99, 5)
    assert len(box) == 3


def test_accepted_messages_are_taken_back_beyond_the_bound() -> None:
    box: Mailbox[str] = Mailbox(depth=2)
    for item in ("q1", "q2", "q3"):  # queued while the paglet was inactive: never refused now
        box.push_accepted(item, 5)
    assert len(box) == 3
    with pytest.raises(MailboxFullError):
        box.push("later", 5)  # a new message is, until the mailbox is below its bound
    order = []
    while (d := box.take()) is not None:
        order.append(d.item)
        box.finish(d, ok=True)
    assert order == ["q1", "q2", "q3"]
    box.close()
    with pytest.raises(MailboxFullError, match="closed"):
        box.push_accepted("late", 5)


def test_close_hands_back_waiting_in_order() -> None:
    box: Mailbox[str] = Mailbox()
    box.push("b", 1)
    box.push("a", 9)
    box.push("z", UNQUEUED_PRIORITY)
    assert [d.item for d in box.close()] == ["z", "a", "b"]
    with pytest.raises(MailboxFullError, match="closed"):
        box.push("late", 5)


def test_finish_of_unknown_delivery_is_refused() -> None:
    box: Mailbox[str] = Mailbox()
    with pytest.raises(RuntimeError):
        box.finish(Delivery("x", 5, 1), ok=True)


class MailboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 8
        self.box: Mailbox[int] = Mailbox(depth=self.depth)
        self.counter = 0
        self.waiting: list[tuple[int, int]] = []  # (priority, id) in push order
        self.pushed: set[int] = set()
        self.taken: list[int] = []
        self.in_flight: list[Delivery[int]] = []

    @rule(priority=st.sampled_from([0, 1, 2, 5, 5, 10, 10]))
    def push(self, priority: int) -> None:
        self.counter += 1
        if len(self.waiting) >= self.depth:
            with pytest.raises(MailboxFullError):
                self.box.push(self.counter, priority)
            return
        self.box.push(self.counter, priority)
        self.waiting.append((priority, self.counter))
        self.pushed.add(self.counter)

    @rule()
    def take(self) -> None:
        got = self.box.take()
        bypass = [w for w in self.waiting if w[0] == UNQUEUED_PRIORITY]
        queued_busy = any(d.queued for d in self.in_flight)
        if bypass:
            expected: tuple[int, int] | None = bypass[0]
        elif not queued_busy and self.waiting:
            top = max(p for p, _ in self.waiting)
            expected = next(w for w in self.waiting if w[0] == top)
        else:
            expected = None
        if expected is None:
            assert got is None
            return
        assert got is not None
        assert (got.priority, got.item) == expected
        self.waiting.remove(expected)
        self.taken.append(got.item)
        self.in_flight.append(got)

    @precondition(lambda self: bool(self.in_flight))
    @rule(index=st.integers(min_value=0, max_value=7), ok=st.booleans())
    def finish(self, index: int, ok: bool) -> None:
        delivery = self.in_flight.pop(index % len(self.in_flight))
        self.box.finish(delivery, ok=ok)

    @invariant()
    def counts_agree(self) -> None:
        stats = self.box.statistics()
        assert stats.queued_count == len(self.waiting)
        assert stats.in_flight_count == len(self.in_flight)
        assert sum(1 for d in self.in_flight if d.queued) <= 1
        assert len(self.taken) == len(set(self.taken))
        assert set(self.taken) | {i for _, i in self.waiting} == self.pushed


TestMailboxMachine = MailboxMachine.TestCase
