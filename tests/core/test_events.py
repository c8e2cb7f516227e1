from __future__ import annotations

import dataclasses
import time

import msgspec
import pytest

from paglets.core.errors import SerializationError
from paglets.core.events import (
    EVENT_TYPE_KEY,
    CloneEvent,
    CreationEvent,
    MobilityEvent,
    PagletEvent,
    PersistencyEvent,
    event_from_wire,
    event_to_wire,
)
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest

BASE = {"agent_id": "a" * 32, "host_name": "alpha", "host_address": "http://127.0.0.1:1"}


def samples() -> list[PagletEvent]:
    return [
        PagletEvent(**BASE),
        CreationEvent(**BASE, init={"x": [1, b"\x01"]}),
        MobilityEvent(
            **BASE,
            source_host_name="alpha",
            source_host_address="http://a",
            target_host_name="beta",
            target_host_address="http://b",
            reason="retract",
        ),
        CloneEvent(
            **BASE,
            source_agent_id="s",
            clone_agent_id="c",
            source_host_name="alpha",
            source_host_address="http://a",
            target_host_name="beta",
            target_host_address="http://b",
        ),
        PersistencyEvent(
            **BASE,
            reason="shutdown",
            request=DeactivationRequest(reason="shutdown", source="host", policy=DeactivationPolicy()),
            policy=DeactivationPolicy(activate_on_startup=True),
        ),
        PersistencyEvent(**BASE),
    ]


def test_field_order_and_defaults() -> None:
    assert [f.name for f in dataclasses.fields(MobilityEvent)] == [
        "agent_id",
        "host_name",
        "host_address",
        "timestamp",
        "source_host_name",
        "source_host_address",
        "target_host_name",
        "target_host_address",
        "reason",
    ]
    before = time.time()
    event = PersistencyEvent("id", "h", "http://h")
    assert before <= event.timestamp <= time.time()
    assert (event.reason, event.request, event.policy) == ("deactivate", None, None)
    assert CreationEvent("id", "h", "http://h").init is None
    assert MobilityEvent("id", "h", "http://h").reason == "dispatch"
    positional = CreationEvent("id", "h", "http://h", 1.5, "init-value")
    assert positional.timestamp == 1.5
    assert positional.init == "init-value"


def test_events_are_frozen_and_slotted() -> None:
    event = CreationEvent(**BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.init = 1  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_wire_round_trip(event: PagletEvent) -> None:
    wire = event.to_wire()
    assert EVENT_TYPE_KEY not in wire
    assert type(event).from_wire(wire) == event
    tagged = msgspec.msgpack.decode(msgspec.msgpack.encode(event_to_wire(event)))
    assert event_from_wire(tagged) == event


def test_persistency_event_wire_nests_value_types() -> None:
    event = samples()[4]
    assert isinstance(event, PersistencyEvent)
    wire = event.to_wire()
    assert wire["request"]["source"] == "host"
    assert wire["policy"]["activate_on_startup"] is True


def test_from_wire_defaults_missing_optional_fields() -> None:
    event = MobilityEvent.from_wire(dict(BASE))
    assert event.reason == "dispatch"
    assert event.target_host_name == ""


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"host_name": "h", "host_address": "a"},
        {**BASE, "timestamp": "soon"},
        {**BASE, "host_name": 3},
    ],
)
def test_from_wire_rejects_malformed_input(bad: object) -> None:
    with pytest.raises(SerializationError):
        MobilityEvent.from_wire(bad)


def test_event_from_wire_needs_a_known_tag() -> None:
    with pytest.raises(SerializationError):
        event_from_wire({**BASE, EVENT_TYPE_KEY: "teleport"})
    with pytest.raises(SerializationError):
        event_from_wire(dict(BASE))
    with pytest.raises(SerializationError):
        event_from_wire("creation")
