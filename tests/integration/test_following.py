"""Proxies that follow their paglet: forwarding entries on the host it left, followed by sync proxies
(in-process route and HTTP), across hops, through deactivation, surviving a restart; disposal and loops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _idle_paglets import Holder
from _paglets import Counter, CounterState

from paglets.core.errors import ForwardingLimitError, InvalidAgentError, PagletMovedError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import MAX_FORWARD_HOPS, PagletProxy
from paglets.runtime.host import Host


def test_old_proxies_follow_across_hops(make_host: Callable[..., Host]) -> None:
    alpha, beta, gamma = make_host("alpha"), make_host("beta"), make_host("gamma")
    local = alpha.create(Counter, CounterState(count=1))
    client = HostClient(api_key="")
    remote = PagletProxy(alpha.address, local.agent_id, client)
    assert remote.send(Message("add", {"n": 1})) == 2
    alpha.dispatch(local.agent_id, beta.address)
    beta.dispatch(local.agent_id, gamma.address)
    # the in-process proxy (route to alpha) and the HTTP proxy both follow alpha -> beta -> gamma
    assert local.send(Message("add", {"n": 1})) == 3
    assert local.where() == (gamma.address, local.agent_id)
    assert remote.send(Message("add", {"n": 1})) == 4
    assert remote.get_address() == gamma.address
    assert remote.host_url == alpha.address  # identity unchanged: proxies still compare as before
    fresh = PagletProxy(alpha.address, local.agent_id, client)
    assert fresh.state()["count"] == 4  # a state read follows
    assert fresh.info()["agent_id"] == local.agent_id  # so does a control call
    assert fresh.where()[0] == gamma.address
    fresh_two = PagletProxy(beta.address, local.agent_id, client)
    fresh_two.send_oneway(Message("add", {"n": 10}))
    assert PagletProxy(alpha.address, local.agent_id, client).send_future(Message("add")).get_reply(30) == 15
    routed = PagletProxy(alpha.address, local.agent_id, alpha.client, alpha.parts.route)
    assert routed.send_future(Message("add")).get_reply(30) == 16  # the in-process future follows too
    assert alpha.get_proxy(local.agent_id) is None  # alpha does not list it
    # the raw HTTP answer: 404 with the 2.0 class name, our code and where it went
    with pytest.raises(PagletMovedError) as caught:
        client.get_json(f"{alpha.address}/agents/{local.agent_id}")
    assert caught.value.host_url == beta.address
    assert caught.value.moved_agent_id == local.agent_id
    assert isinstance(caught.value, InvalidAgentError)
    client.close()


def test_following_through_deactivation_and_disposal(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Counter)
    alpha.dispatch(proxy.agent_id, beta.address)
    beta.deactivate(proxy.agent_id)
    assert proxy.send(Message("add", {"n": 2})) == 2  # followed to beta, where the message activated it
    beta.deactivate(proxy.agent_id)
    assert alpha.get_proxy(proxy.agent_id, include_inactive=True) is None
    stale = PagletProxy(alpha.address, proxy.agent_id, alpha.client, alpha.parts.route)
    assert stale.activate().host_url == beta.address  # a control call follows as well
    stale.dispose()
    with pytest.raises(InvalidAgentError) as caught:
        proxy.send(Message("add"))
    assert not isinstance(caught.value, PagletMovedError)


def test_forwarding_survives_restart_and_comes_back(make_host: Callable[..., Host], tmp_path: Path) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Counter)
    alpha.dispatch(proxy.agent_id, beta.address)
    alpha.stop()
    again = make_host("alpha", persistence_dir=tmp_path / "alpha")
    stale = PagletProxy(again.address, proxy.agent_id, again.client, again.parts.route)
    assert stale.send(Message("add", {"n": 5})) == 5
    # back on alpha: the entry is gone, the paglet answers there
    beta.dispatch(proxy.agent_id, again.address)
    assert again.parts.forwarding.lookup(proxy.agent_id) is None
    assert stale.send(Message("add")) == 6


def test_a_forwarding_loop_ends_with_a_clear_error(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    # two stale entries pointing at each other (as after lost moves); the paglet exists nowhere
    alpha.parts.forwarding.store.add("ghost", beta.address, "ghost")
    beta.parts.forwarding.store.add("ghost", alpha.address, "ghost")
    proxy = PagletProxy(alpha.address, "ghost", alpha.client)
    with pytest.raises(ForwardingLimitError, match=str(MAX_FORWARD_HOPS)):
        proxy.send(Message("add"))
    with pytest.raises(ForwardingLimitError):  # a proxy through the in-process route gives up the same way
        PagletProxy(alpha.address, "ghost", alpha.client, alpha.parts.route).info()


def test_a_proxy_inside_a_paglet_follows(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    target = alpha.create(Counter)
    holder = alpha.create(Holder)
    assert holder.send(Message("hold", arg=target.agent_id)) is True
    assert holder.send(Message("poke")) == {"count": 1, "at": alpha.address}
    alpha.dispatch(target.agent_id, beta.address)
    # the holder's proxy went through its host's route; the host answers "moved", the proxy follows
    assert holder.send(Message("poke")) == {"count": 2, "at": beta.address}
