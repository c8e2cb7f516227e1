"""Idle passivation of any paglet: per class and host-wide, transparent reactivation with nothing lost or
reordered, racing messages and moves."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from _idle_paglets import LogState, Sleepy, Wakeful
from _paglets import Counter
from conftest import paglet_processes, wait_until

from paglets.core.agent import INACTIVE
from paglets.core.messages import Message
from paglets.runtime.host import Host


def _inactive(host: Host) -> set[str]:
    return {a["agent_id"] for a in host.list_agents(active=False, inactive=True)}


def test_host_default_passivates_and_messages_wake_transparently(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha", idle_deactivate_after=0.2)
    proxies = [host.create(Counter) for _ in range(12)]
    never = host.create(Wakeful)
    wait_until(lambda: _inactive(host) >= {p.agent_id for p in proxies}, timeout=20)
    assert never.agent_id not in _inactive(host)
    # the Wakeful one (and a spare at most); a passivated paglet's process ends just after its record
    wait_until(lambda: len(paglet_processes(os.getpid())) <= 3, timeout=20)
    assert [p.send(Message("add", {"n": 2})) for p in proxies] == [2] * 12  # replies, never "queued"
    kinds = [e.kind for e in host.list_events(limit=1000)]
    assert kinds.count("paglet-passivated") >= 12
    wait_until(lambda: _inactive(host) >= {p.agent_id for p in proxies}, timeout=20)  # and again
    assert proxies[0].send(Message("add", {"n": 1})) == 3


def test_messages_racing_passivation_keep_their_order(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha")
    proxy = host.create(Sleepy)
    sent = 60
    replies: list[object] = []
    gate = threading.Event()

    def sender() -> None:
        for i in range(sent):
            if i % 2:
                proxy.send_oneway(Message("append", arg=i))
            else:
                replies.append(proxy.send(Message("append", arg=i), timeout=30))
            gate.wait(0.04 if i % 10 else 0.35)  # pauses across the idle limit: passivations under way

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join(60)
    log = proxy.send(Message("log"))
    assert log == list(range(sent))  # nothing lost, nothing reordered, nothing twice
    assert all(isinstance(r, int) for r in replies)  # every synchronous sender got its handler's reply
    assert host.get_state(proxy.agent_id, LogState).deactivations >= 3


def test_passivation_racing_a_move(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    for _ in range(3):
        proxy = alpha.create(Sleepy)
        assert proxy.send(Message("append", arg=1)) == 1
        agent_id = proxy.agent_id
        # the move comes while the passivation runs (its on_deactivating takes 0.3 s): it waits for it,
        # activates the paglet and moves it
        wait_until(lambda: agent_id in alpha.parts.idle.passivated, timeout=10, interval=0.002)  # noqa: B023
        assert alpha.dispatch(agent_id, beta.address).host_url == beta.address
        assert agent_id not in {a["agent_id"] for a in alpha.list_agents(active=True, inactive=True)}
        assert agent_id in {a["agent_id"] for a in beta.list_agents(active=True, inactive=True)}
        assert proxy.send(Message("append", arg=2)) == 2  # the old proxy follows; the state moved whole
    # a passivated paglet moves as if it had stayed active
    proxy = alpha.create(Sleepy)
    wait_until(lambda: proxy.agent_id in _inactive(alpha), timeout=10)
    assert alpha.dispatch(proxy.agent_id, beta.address).host_url == beta.address
    assert proxy.agent_id not in {p.agent_id for p in alpha.get_proxies(INACTIVE)}
    assert proxy.send(Message("log")) == []
