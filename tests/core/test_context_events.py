from __future__ import annotations

import threading

import msgspec
import pytest

from paglets.core.context_events import (
    LISTENER_FAILED_KIND,
    ContextEvent,
    ContextEventLog,
)
from paglets.core.errors import SerializationError


def make_log(capacity: int = 1000) -> ContextEventLog:
    return ContextEventLog(capacity, host_name="alpha", host_address="http://127.0.0.1:1")


def test_ids_start_at_one_and_are_consecutive() -> None:
    log = make_log()
    events = [log.emit("create", agent_id=str(i)) for i in range(5)]
    assert [e.event_id for e in events] == [1, 2, 3, 4, 5]
    assert events[0].host_name == "alpha"
    assert events[0].host_address == "http://127.0.0.1:1"
    assert log.last_event_id == 5
    assert len(log) == 5


def test_events_since_and_limit() -> None:
    log = make_log()
    for i in range(10):
        log.emit("message-delivered", data={"i": i})
    assert [e.event_id for e in log.events_since()] == list(range(1, 11))
    assert [e.event_id for e in log.events_since(3, limit=4)] == [4, 5, 6, 7]
    assert [e.event_id for e in log.events_since(8)] == [9, 10]
    assert log.events_since(10) == []
    assert log.events_since(99) == []
    assert log.events_since(0, limit=0) == []
    assert log.events_since(0, limit=-5) == []
    assert [e.event_id for e in log.events_since(-100, limit=2)] == [1, 2]


def test_default_limit_is_100() -> None:
    log = make_log()
    for _ in range(150):
        log.emit("x")
    assert len(log.events_since()) == 100


def test_ring_keeps_the_newest_capacity_events() -> None:
    log = make_log(capacity=3)
    for _ in range(7):
        log.emit("x")
    assert [e.event_id for e in log.events_since(0)] == [5, 6, 7]
    assert [e.event_id for e in log.events_since(5)] == [6, 7]
    stats = log.statistics()
    assert (stats.capacity, stats.retained, stats.last_event_id) == (3, 3, 7)


def test_emit_overrides_and_copies_data() -> None:
    log = make_log()
    data = {"reason": "shutdown"}
    event = log.emit(
        "deactivate",
        host_name="beta",
        host_address="http://b",
        agent_id="a",
        class_name="m:C",
        message_id="m",
        service_name="s",
        data=data,
        error="e",
    )
    data["reason"] = "changed"
    assert event.data == {"reason": "shutdown"}
    assert (event.host_name, event.host_address, event.class_name, event.error) == (
        "beta",
        "http://b",
        "m:C",
        "e",
    )
    assert log.append("y").event_id == 2


def test_capacity_is_validated() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ContextEventLog(0)
    with pytest.raises(TypeError):
        ContextEventLog("10")  # type: ignore[arg-type]


def test_listeners_run_synchronously_on_the_emitting_thread_outside_the_lock() -> None:
    log = make_log()
    seen: list[tuple[int, int, int]] = []

    def listener(event: ContextEvent) -> None:
        # Reading and writing the log from a listener must not deadlock.
        seen.append((event.event_id, threading.get_ident(), len(log.events_since(0))))
        if event.kind == "outer":
            log.emit("inner")

    log.add_listener(listener)
    log.add_listener(listener)  # no duplicates
    log.emit("outer")
    me = threading.get_ident()
    assert seen == [(1, me, 1), (2, me, 2)]
    log.remove_listener(listener)
    log.remove_listener(listener)
    log.emit("after")
    assert len(seen) == 2


def test_failing_listener_produces_one_event_for_the_others() -> None:
    log = make_log()
    good: list[ContextEvent] = []
    bad_calls: list[str] = []

    def bad(event: ContextEvent) -> None:
        bad_calls.append(event.kind)
        raise RuntimeError("listener broke")

    log.add_listener(bad)
    log.add_listener(good.append)
    emitted = log.emit("create", agent_id="a1")
    assert bad_calls == ["create"]  # the failure event is not sent back to the failing listener
    assert [e.kind for e in good] == [LISTENER_FAILED_KIND, "create"]
    failure = good[0]
    assert failure.event_id == emitted.event_id + 1
    assert failure.agent_id == "a1"
    assert failure.data["event_id"] == emitted.event_id
    assert failure.error is not None
    assert "listener broke" in failure.error
    assert [e.kind for e in log.events_since(0)] == ["create", LISTENER_FAILED_KIND]
    assert log.statistics().listener_failures == 1


def test_listeners_failing_on_failure_events_do_not_recurse() -> None:
    log = make_log()

    def always_fails(event: ContextEvent) -> None:
        raise ValueError(event.kind)

    log.add_listener(always_fails)
    log.add_listener(lambda event: always_fails(event))
    log.emit("create")
    kinds = [e.kind for e in log.events_since(0)]
    # one failure event per failing listener of the original event, nothing more
    assert kinds == ["create", LISTENER_FAILED_KIND, LISTENER_FAILED_KIND]
    assert log.statistics().listener_failures == 4


def test_concurrent_emits_get_unique_consecutive_ids() -> None:
    log = make_log(capacity=10_000)
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait(5)
        for _ in range(500):
            log.emit("x")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    ids = [e.event_id for e in log.events_since(0, limit=10_000)]
    assert ids == list(range(1, 2001))


def test_context_event_wire_round_trip() -> None:
    event = make_log().emit("transfer-failed", agent_id="a", data={"stage": "preflight"}, error="down")
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(event.to_wire()))
    assert ContextEvent.from_wire(wire) == event
    minimal = ContextEvent.from_wire({"event_id": 1, "kind": "k", "host_name": "h", "host_address": "a"})
    assert minimal.data == {}
    assert minimal.agent_id is None


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"kind": "k", "host_name": "h", "host_address": "a"},
        {"event_id": "1", "kind": "k", "host_name": "h", "host_address": "a"},
        {"event_id": 1, "kind": "k", "host_name": "h", "host_address": "a", "data": []},
        {"event_id": 1, "kind": "k", "host_name": "h", "host_address": "a", "agent_id": 3},
        {"event_id": 1, "host_name": "h", "host_address": "a"},
    ],
)
def test_context_event_from_wire_rejects_malformed_input(bad: object) -> None:
    with pytest.raises(SerializationError):
        ContextEvent.from_wire(bad)
