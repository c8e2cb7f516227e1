"""Parameter names and small methods of paglets 2.0's public API that 2.0 code may call by keyword."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import pytest

from paglets.artifacts import ArtifactRef, PagletFileRef
from paglets.core.context_events import ContextEvent
from paglets.core.messages import FutureReply, Message, ReplySet
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest, QueuedMessage
from paglets.remote.proxy import PagletProxy
from paglets.remote.references import PagletProxyRef
from paglets.remote.transfer import TransferTicket
from paglets.serialization.codec import dataclass_from_wire, dataclass_to_wire, qualified_name
from paglets.services.contracts import (
    EmptyPayload,
    ServiceContract,
    ServiceOperation,
    ServiceRecord,
    ServiceRegistry,
)


@dataclass
class Point:
    x: int = 0
    y: int = 0


def test_from_wire_takes_payload_by_keyword() -> None:
    message = Message("ping", {"n": 1})
    assert Message.from_wire(payload=message.to_wire()).args == {"n": 1}
    ticket = TransferTicket("http://127.0.0.1:1")
    assert TransferTicket.from_wire(payload=ticket.to_wire()).destination == ticket.destination
    ref = PagletProxyRef("http://127.0.0.1:1", "a1")
    assert PagletProxyRef.from_wire(payload=ref.to_wire()) == ref
    assert PagletProxy.from_wire(payload=ref.to_wire()).agent_id == "a1"
    assert DeactivationPolicy.from_wire(payload=DeactivationPolicy().to_wire()) == DeactivationPolicy()
    request = DeactivationRequest(reason="r")
    assert DeactivationRequest.from_wire(payload=request.to_wire()).reason == "r"
    queued = QueuedMessage.from_wire(payload=QueuedMessage(message=message).to_wire())
    assert queued.message.kind == "ping"
    event = ContextEvent.from_wire(
        payload={"kind": "k", "host_name": "h", "host_address": "http://h", "event_id": 1, "timestamp": 1.0}
    )
    assert event.kind == "k"
    record = ServiceRecord(name="s", proxy=ref)
    assert ServiceRecord.from_wire(payload=record.to_wire()).name == "s"
    for cls in (ArtifactRef, PagletFileRef):
        with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal; the keyword itself is accepted
            cls.from_wire(payload={})


def test_codec_functions_take_2_0_keywords() -> None:
    assert qualified_name(obj=Point) == f"{Point.__module__}:Point"
    assert dataclass_to_wire(instance=Point(1, 2)) == {"x": 1, "y": 2}
    assert dataclass_from_wire(Point, payload={"x": 3}) == Point(3, 0)


def test_message_same_kind_takes_kind() -> None:
    assert Message("a").same_kind(kind="a")
    assert not Message("a").same_kind(kind=Message("b"))


def test_contract_operation_for_and_advertise_metadata() -> None:
    ping = ServiceOperation("ping", EmptyPayload, EmptyPayload)
    contract = ServiceContract("svc", (ping,))
    assert contract.operation_for("ping") is ping
    assert contract.operation_for("nope") is None
    merged = contract.advertise_metadata(metadata={"k": "v"})
    assert merged["k"] == "v"
    assert "paglets.service_contract" in merged


def test_reply_set_done_makes_a_reply_available() -> None:
    future: Future[int] = Future()
    reply = FutureReply(future)
    replies = ReplySet()
    replies.done(reply)  # 2.0 code (and 2.0's own FutureReply) marks replies done this way
    assert replies.count_available() == 1
    assert replies.get_next_future_reply(timeout=0) is reply
    replies.done(reply)
    replies.done(reply)
    assert replies.count_available() == 1


def test_service_registry_of_contracts_keeps_2_0_api() -> None:
    registry = ServiceRegistry()
    one = PagletProxyRef("http://127.0.0.1:1", "a1")
    two = PagletProxyRef("http://127.0.0.1:1", "a2")
    registry.advertise(host_name="h", host_url=one.host_url, name="svc", proxy=one, capabilities=["x"])
    registry.advertise(
        host_name="h", host_url=two.host_url, name="svc", proxy=two, scope=ServiceScope.MESH, ttl=60
    )
    found = registry.lookup("svc")
    assert found is not None
    assert found.proxy == one
    assert registry.lookup("svc", "x") is not None
    assert registry.lookup("svc", "y") is None
    assert [r.proxy for r in registry.lookup_all("svc")] == [one, two]
    assert [r.proxy for r in registry.lookup_all(scope=ServiceScope.MESH)] == [two]
    assert registry.record("svc", "a2") is not None
    assert [r.proxy for r in registry.remove_agent("a1")] == [one]
    assert [r.proxy for r in registry.unadvertise("svc")] == [two]
    assert registry.lookup_all() == []
    registry.advertise(host_name="h", host_url=one.host_url, name="gone", proxy=one, ttl=-1)
    assert registry.lookup("gone") is None  # expired on read, as in 2.0
