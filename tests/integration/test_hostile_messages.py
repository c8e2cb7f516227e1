"""Malformed messages never kill a paglet: every way a message enters a host is checked field by field
(400 naming the field over HTTP, ``SerializationError`` elsewhere), and a paglet process that still gets a
frame it cannot decode answers it with an error and keeps running (same process, same state).

What must hold is checked without timing: after each attack the paglet answers from the same pid with
its state intact."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _paglets import Counter, RawSender

from paglets.core.errors import FrameError, SerializationError
from paglets.core.messages import Message
from paglets.http.client import HttpClient
from paglets.runtime.host import Host
from paglets.wire.ipc import MessageWire

#: (bad field values of ``message``, the field path the 400 must name)
BAD_MESSAGES: list[tuple[dict[str, Any], str]] = [
    ({"args": [1]}, "message.args"),
    ({"args": "x"}, "message.args"),
    ({"sender": 1}, "message.sender"),
    ({"reply_to": [1]}, "message.reply_to"),
    ({"priority": 2**70}, "message.priority"),
    ({"priority": -(2**64)}, "message.priority"),
    ({"priority": "high"}, "message.priority"),
    ({"message_type": 2**63}, "message.message_type"),
    ({"timestamp": "now"}, "message.timestamp"),
    ({"message_id": 5}, "message.message_id"),
    ({"kind": 5}, "message.kind"),
    ({"kind": None}, "message.kind"),
]


def _post(client: HttpClient, url: str, body: Any) -> tuple[int, Any]:
    response = client.request("POST", url, body=json.dumps(body).encode(), content_type="application/json")
    return response.status, response.json()


def _pid(host: Host, agent_id: str) -> int:
    return int(host.deliver_message(agent_id, Message("pid"), timeout=30))


@pytest.mark.parametrize("oneway", [False, True], ids=["sync", "oneway"])
def test_malformed_http_messages_are_refused_naming_the_field(host: Host, oneway: bool) -> None:
    agent_id = host.create(Counter).agent_id
    pid = _pid(host, agent_id)
    client = HttpClient()
    try:
        url = f"{host.address}/agents/{agent_id}/messages"
        for count, (fields, path) in enumerate(BAD_MESSAGES, start=1):
            status, answer = _post(client, url, {"message": {"kind": "add", **fields}, "oneway": oneway})
            assert status == 400, (fields, answer)
            assert answer["error_type"] == "RequestError", answer
            assert repr(path) in answer["error"], (path, answer)
            status, answer = _post(client, url, {"message": {"kind": "add"}})
            assert (status, answer) == (200, {"result": count}), fields
    finally:
        client.close()
    assert _pid(host, agent_id) == pid


def test_integers_messagepack_cannot_carry_fail_only_their_message(host: Host) -> None:
    """JSON numbers have no bound; MessagePack integers do. Such a message fails when the host encodes
    it for its paglet (a sync sender gets a 400 ``SerializationError``, a oneway one a ``message-failed``
    event); the paglet never sees it."""
    agent_id = host.create(Counter).agent_id
    pid = _pid(host, agent_id)
    client = HttpClient()
    try:
        url = f"{host.address}/agents/{agent_id}/messages"
        for value in ({"n": 2**64}, {"n": [1, [-(2**63) - 1]]}):
            status, answer = _post(client, url, {"message": {"kind": "add", "args": value}})
            assert status == 400, answer
            assert answer["error_type"] == "SerializationError", answer
            assert "can't serialize ints" in answer["error"], answer
        message = {"kind": "add", "arg": 2**70, "message_id": "too-big"}
        assert _post(client, url, {"message": message, "oneway": True}) == (200, {"result": None})
        assert _post(client, url, {"message": {"kind": "add"}}) == (200, {"result": 1})
    finally:
        client.close()
    failed = [e for e in host.list_events(limit=1000) if e.kind == "message-failed"]
    assert "too-big" in {e.message_id for e in failed}
    assert _pid(host, agent_id) == pid


def test_a_paglet_process_answers_an_undecodable_message_with_an_error(host: Host) -> None:
    """The host checks messages, so a frame the child cannot decode has to be built by hand here: a
    ``Deliver`` whose ``sender`` is an int. The child answers it with a ``FrameError`` and keeps serving."""
    agent_id = host.create(Counter).agent_id
    assert host.deliver_message(agent_id, Message("add", {"n": 5})) == 5
    pid = _pid(host, agent_id)
    bad = [
        MessageWire("add", sender=1, message_id="bad-sender"),  # type: ignore[arg-type]
        MessageWire("add", args=[1], message_id="bad-args"),  # type: ignore[arg-type]
        MessageWire("add", reply_to=[1], message_id="bad-reply-to"),  # type: ignore[arg-type]
    ]
    for message in bad:
        with pytest.raises(FrameError, match="could not decode Deliver"):
            host._run(host.manager.deliver(agent_id, message, oneway=False))
    oneway = MessageWire("add", sender=2, message_id="bad-oneway")  # type: ignore[arg-type]
    assert host._run(host.manager.deliver(agent_id, oneway, oneway=True)) is None
    assert host.deliver_message(agent_id, Message("add", {"n": 1})) == 6  # after the oneway one
    failed = {e.message_id: e for e in host.list_events(limit=1000) if e.kind == "message-failed"}
    assert set(failed) == {"bad-sender", "bad-args", "bad-reply-to", "bad-oneway"}
    assert all(e.data["error_type"] == "FrameError" for e in failed.values())
    assert _pid(host, agent_id) == pid
    assert host.manager.controllers[agent_id].status == "ready"


def test_embedded_messages_with_wrong_fields_are_refused_in_the_caller(host: Host) -> None:
    agent_id = host.create(Counter).agent_id
    pid = _pid(host, agent_id)
    proxy = host.get_proxy(agent_id)
    assert proxy is not None
    bad_messages = [
        (Message("add", args=[1]), "args"),  # type: ignore[arg-type]
        (Message("add", args="x"), "args"),  # type: ignore[arg-type]
        (Message("add", {1: 2}), "args"),  # type: ignore[dict-item]
        (Message("add", sender=1), "sender"),  # type: ignore[arg-type]
        (Message("add", priority=2**64), "priority"),
        (Message("add", message_id=5), "message_id"),  # type: ignore[arg-type]
        (Message(5), "kind"),  # type: ignore[arg-type]
    ]
    for message, field in bad_messages:
        with pytest.raises(SerializationError, match=f"field '{field}"):
            host.deliver_message(agent_id, message, timeout=30)
        with pytest.raises(SerializationError, match=f"field '{field}"):
            proxy.send_oneway(message)
    assert host.deliver_message(agent_id, Message("add"), timeout=30) == 1
    assert _pid(host, agent_id) == pid


def test_messages_sent_by_paglets_are_checked_by_their_host(host: Host) -> None:
    target = host.create(Counter).agent_id
    pid = _pid(host, target)
    sender = host.create(RawSender).agent_id
    for message in (
        {"kind": "add", "args": [1]},
        {"kind": "add", "sender": 1},
        {"kind": "add", "reply_to": [1]},
        {"kind": "add", "priority": "x"},
        {"args": {}},
        "add",
    ):
        with pytest.raises(SerializationError, match="invalid message"):
            host.deliver_message(sender, Message("raw", {"to": target, "message": message}), timeout=30)
    assert host.deliver_message(sender, Message("raw", {"to": target, "message": {"kind": "add"}})) == 1
    assert _pid(host, target) == pid
    assert host.manager.controllers[sender].status == "ready"


def test_malformed_messages_do_not_reach_an_inactive_paglet(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha")
    agent_id = host.create(Counter).agent_id
    host.deactivate(agent_id)
    client = HttpClient()
    try:
        url = f"{host.address}/agents/{agent_id}/messages"
        for fields, path in BAD_MESSAGES[:4]:
            status, answer = _post(client, url, {"message": {"kind": "add", **fields}, "oneway": True})
            assert status == 400, answer
            assert repr(path) in answer["error"], answer
    finally:
        client.close()
    assert host.deliver_message(agent_id, Message("add"), timeout=30) == 1
