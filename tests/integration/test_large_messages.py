"""Messages too large for a channel frame travel in a handoff segment: every way in delivers them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from _large_paglets import Digester, DigestState
from conftest import wait_until

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host
from paglets.wire.jsonbin import tag_binary

SIZES = (200_000, 8 << 20)  # just past a frame, and large


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_large_messages_from_the_host_process(host: Host) -> None:
    proxy = host.create(Digester)
    for size in SIZES:
        data = os.urandom(size)
        assert proxy.send(Message("digest", {"data": data})) == _digest(data)
    oneway = os.urandom(1 << 20)
    proxy.send_oneway(Message("digest", {"data": oneway}))
    wait_until(lambda: proxy.send(Message("seen"))[-1:] == [_digest(oneway)])


def test_large_messages_over_http(host: Host) -> None:
    proxy = host.create(Digester)
    client = HostClient()
    try:
        remote = PagletProxy(host.address, proxy.agent_id, client)
        data = os.urandom(3 << 20)
        assert remote.send(Message("digest", {"data": data})) == _digest(data)
        answer = client.post_json(
            f"{host.address}/agents/{proxy.agent_id}/messages",
            {"message": {"kind": "digest", "args": {"data": tag_binary(data)}}},
        )
        assert answer["result"] == _digest(data)
    finally:
        client.close()


def test_large_message_between_paglets(host: Host) -> None:
    sender, receiver = host.create(Digester), host.create(Digester)
    size = 2 << 20
    assert sender.send(Message("pass_on", {"to": receiver.agent_id, "size": size})) == _digest(bytes(size))


def test_large_messages_queued_for_an_inactive_paglet(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha")
    proxy = host.create(Digester)
    host.deactivate(proxy.agent_id)
    blobs = [os.urandom(300_000), os.urandom(1 << 20)]
    for blob in blobs:
        proxy.send_oneway(Message("digest", {"data": blob}), activate_if_inactive=False)
    host.activate(proxy.agent_id)
    wait_until(lambda: host.get_state(proxy.agent_id, DigestState).seen == [_digest(b) for b in blobs])
