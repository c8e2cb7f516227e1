from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from paglets.core.errors import SerializationError
from paglets.core.messages import Message
from paglets.persistence.persistency import (
    INACTIVE_RECORD_SCHEMA_VERSION,
    DeactivationPolicy,
    DeactivationRequest,
    InactiveRecord,
    QueuedMessage,
)


def through_msgpack(value: Any) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


def test_policy_defaults_and_after() -> None:
    policy = DeactivationPolicy()
    assert policy.activate_on_message
    assert policy.queue_messages_when_inactive
    assert not policy.activate_on_startup
    assert policy.activate_at is None
    before = time.time()
    later = DeactivationPolicy.after(30, activate_on_message=False)
    assert later.activate_at is not None
    assert before + 30 <= later.activate_at <= time.time() + 30
    assert later.activate_on_message is False


def test_policy_wire() -> None:
    policy = DeactivationPolicy(False, False, True, 123.5)
    assert policy.to_wire() == {
        "activate_on_message": False,
        "queue_messages_when_inactive": False,
        "activate_on_startup": True,
        "activate_at": 123.5,
    }
    assert DeactivationPolicy.from_wire(through_msgpack(policy.to_wire())) == policy
    assert DeactivationPolicy.from_wire(None) == DeactivationPolicy()
    assert DeactivationPolicy.from_wire({"activate_at": 5}) == DeactivationPolicy(activate_at=5.0)


def test_request_defaults_and_wire() -> None:
    request = DeactivationRequest()
    assert (request.reason, request.source, request.policy, request.metadata) == (
        "deactivate",
        "external",
        None,
        {},
    )
    assert DeactivationRequest().metadata is not request.metadata
    full = DeactivationRequest("shutdown", "host", DeactivationPolicy(activate_on_startup=True), {"k": [1]})
    wire = full.to_wire()
    assert wire["policy"]["activate_on_startup"] is True
    assert DeactivationRequest.from_wire(through_msgpack(wire)) == full
    assert DeactivationRequest.from_wire(None) == DeactivationRequest()
    assert DeactivationRequest.from_wire({"reason": "", "source": None}) == DeactivationRequest()


def test_queued_message_wire() -> None:
    queued = QueuedMessage(Message("k", {"b": b"\x00"}), oneway=True, queued_at=10.0)
    assert QueuedMessage.from_wire(through_msgpack(queued.to_wire())) == queued
    fresh = QueuedMessage.from_wire({"message": {"kind": "k"}})
    assert fresh.oneway is False
    assert fresh.queued_at <= time.time()


@dataclass
class Envelope:
    agent_id: str
    state: bytes

    def to_wire(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "state": self.state}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Envelope:
        return cls(data["agent_id"], data["state"])


def test_inactive_record_wire() -> None:
    record = InactiveRecord(
        Envelope("a" * 32, b"\x01\x02"),
        DeactivationPolicy(activate_on_message=False),
        DeactivationRequest(source="self"),
        deactivated_at=42.0,
        queued_messages=[QueuedMessage(Message("k"), queued_at=43.0)],
    )
    wire = record.to_wire()
    assert wire["schema_version"] == INACTIVE_RECORD_SCHEMA_VERSION == 1
    assert wire["envelope"] == {"agent_id": "a" * 32, "state": b"\x01\x02"}
    assert record.agent_id == "a" * 32
    decoded = InactiveRecord.from_wire(through_msgpack(wire), envelope_from_wire=Envelope.from_wire)
    assert decoded == record
    raw = InactiveRecord.from_wire(wire)
    assert raw.envelope == wire["envelope"]
    assert raw.agent_id == "a" * 32


def test_inactive_record_defaults() -> None:
    record = InactiveRecord({"agent_id": "x"}, DeactivationPolicy(), DeactivationRequest())
    assert record.queued_messages == []
    assert record.deactivated_at <= time.time()
    assert record.to_wire()["envelope"] == {"agent_id": "x"}
    minimal = InactiveRecord.from_wire({"envelope": {"agent_id": "x"}})
    assert minimal.policy == DeactivationPolicy()
    assert minimal.request == DeactivationRequest()
    with pytest.raises(SerializationError):
        InactiveRecord({}, DeactivationPolicy(), DeactivationRequest()).agent_id  # noqa: B018


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (DeactivationPolicy, {"activate_on_message": "yes"}),
        (DeactivationPolicy, {"activate_at": "soon"}),
        (DeactivationPolicy, [1]),
        (DeactivationRequest, {"metadata": [1]}),
        (DeactivationRequest, {"reason": 5}),
        (QueuedMessage, {}),
        (QueuedMessage, {"message": {"kind": 1}}),
        (InactiveRecord, {"schema_version": 2, "envelope": {}}),
        (InactiveRecord, {"policy": {}}),
        (InactiveRecord, {"envelope": {}, "queued_messages": {}}),
        (InactiveRecord, "record"),
    ],
)
def test_malformed_wire_is_a_serialization_error(cls: Any, bad: Any) -> None:
    with pytest.raises(SerializationError):
        cls.from_wire(bad)
