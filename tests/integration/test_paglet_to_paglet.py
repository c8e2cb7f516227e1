"""Paglets talking to paglets on the same host: through the host's channel router, never loopback HTTP."""

from __future__ import annotations

from _paglets import Counter, Relay

from paglets.core.messages import Message
from paglets.runtime.host import Host


def test_a_paglet_messages_another_through_its_host(host: Host) -> None:
    counter = host.create(Counter)
    relay = host.create(Relay)
    reply = relay.send(Message("forward", {"to": counter.agent_id, "n": 5}))
    assert reply == {"reply": 5, "remote": False}
    assert relay.send(Message("send", {"to": counter.agent_id})) == 6
    before = host.server_statistics().requests_served
    for _ in range(20):
        relay.send(Message("forward", {"to": counter.agent_id}))
    assert host.server_statistics().requests_served == before  # no HTTP request was made


def test_multicast_works_inside_a_paglet(host: Host) -> None:
    counters = [host.create(Counter) for _ in range(3)]
    relay = host.create(Relay)
    assert relay.send(Message("multicast")) == [1, 1, 1]
    assert sorted(relay.send(Message("peers"))) == sorted([c.agent_id for c in counters] + [relay.agent_id])


def test_a_paglet_creates_a_paglet_and_uses_host_properties(host: Host) -> None:
    relay = host.create(Relay)
    assert relay.send(Message("create")) == 101
    assert len(host.list_agents()) == 2
    assert relay.send(Message("property", arg=[1, "two"])) == [1, "two"]
    assert host.get_property("answer") == [1, "two"]
