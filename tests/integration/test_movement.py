"""Movement between hosts (contract §4, behaviours 9-13, 15, 16): real hosts, real processes, real HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from _paglets import FailsArrival, Traveller, TravelState
from conftest import paglet_processes, wait_until

from paglets.core.errors import TransferError
from paglets.core.messages import Message
from paglets.remote.transfer import TransferTicket
from paglets.runtime.host import Host


def _log(host: Host, agent_id: str) -> list[str]:
    return host.get_state(agent_id, TravelState).log


def test_dispatch_moves_the_paglet_and_runs_hooks_in_order(make_host: Callable[..., Host]) -> None:  # 9
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Traveller, TravelState(payload=os.urandom(100_000)))
    wait_until(lambda: _log(alpha, proxy.agent_id) == ["created:alpha:None", "run:alpha"])
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    assert moved.host_url == beta.address
    assert moved.agent_id == proxy.agent_id
    assert proxy.agent_id not in {a["agent_id"] for a in alpha.list_agents()}
    assert [a["agent_id"] for a in beta.list_agents()] == [proxy.agent_id]
    assert _log(beta, proxy.agent_id) == [
        "created:alpha:None",
        "run:alpha",
        "dispatching:alpha->beta",
        "arrived:beta:from:alpha:dispatch",
        "run:beta",
    ]
    assert moved.send(Message("size")) == 100_000
    kinds = [e.kind for e in beta.list_events(limit=1000)]
    assert "arrival" in kinds
    assert "dispatch" in [e.kind for e in alpha.list_events(limit=1000)]


def test_clone_keeps_both(make_host: Callable[..., Host]) -> None:  # 10
    alpha, beta = make_host("alpha"), make_host("beta")
    original = alpha.create(Traveller)
    clone = alpha.clone(original.agent_id, target=beta.address)
    assert clone.agent_id != original.agent_id
    assert clone.host_url == beta.address
    assert original.send(Message("log"))[-2:] == ["cloning", "cloned"]
    clone_log = clone.send(Message("log"))
    assert clone_log[:3] == ["created:alpha:None", "run:alpha", "cloning"]
    assert clone_log[3] == f"clone:beta:from:{original.agent_id}"
    wait_until(lambda: clone.send(Message("log"))[-1] == "run:beta")


def test_retract_pulls_the_paglet_back(make_host: Callable[..., Host]) -> None:  # 11
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = beta.create(Traveller)
    back = alpha.retract(beta.address, proxy.agent_id)
    assert back.host_url == alpha.address
    assert beta.list_agents() == []
    assert _log(alpha, proxy.agent_id)[-3:] == [
        "reverting:beta->target:alpha",
        "arrived:alpha:from:beta:retract",
        "run:alpha",
    ]


def test_missing_capability_fails_before_any_hook(make_host: Callable[..., Host]) -> None:  # 12
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Traveller)
    ticket = TransferTicket(beta.address, required_capabilities=("gpu:h100",))
    with pytest.raises(TransferError, match="capabilities"):
        alpha.dispatch(proxy.agent_id, ticket)
    assert proxy.send(Message("log")) == ["created:alpha:None", "run:alpha"]
    assert beta.list_agents() == []


def test_failing_arrival_keeps_the_source_copy(make_host: Callable[..., Host]) -> None:  # 13
    alpha, beta = make_host("alpha"), make_host("beta")
    before = paglet_processes(os.getpid())
    proxy = alpha.create(FailsArrival)
    with pytest.raises(TransferError, match="not on beta"):
        alpha.dispatch(proxy.agent_id, beta.address)
    assert proxy.send(Message("log")) == []
    assert beta.list_agents() == []
    assert [a["agent_id"] for a in alpha.list_agents()] == [proxy.agent_id]
    wait_until(lambda: len(paglet_processes(os.getpid()) - before) == 1)  # alpha's paglet only


def test_unreachable_target_keeps_the_paglet(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha")
    proxy = alpha.create(Traveller)
    with pytest.raises(TransferError, match="not reachable"):
        alpha.dispatch(proxy.agent_id, TransferTicket("http://127.0.0.1:9", timeout=1.0))
    assert proxy.send(Message("log"))[-1] == "run:alpha"


def test_itinerary_chain_returns_the_final_location(make_host: Callable[..., Host]) -> None:  # 15
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Traveller)
    final = proxy.send(Message("start", arg=[beta.address, alpha.address, beta.address]))
    assert final == {"host_url": beta.address, "agent_id": proxy.agent_id}
    log = _log(beta, proxy.agent_id)
    assert log[2:] == [
        "dispatching:alpha->beta",
        "arrived:beta:from:alpha:dispatch",
        "run:beta",
        "dispatching:beta->alpha",
        "arrived:alpha:from:beta:dispatch",
        "run:alpha",
        "dispatching:alpha->beta",
        "arrived:beta:from:alpha:dispatch",
        "run:beta",
    ]
    assert alpha.list_agents() == []


def test_dispatch_to_the_same_host_stays_local(make_host: Callable[..., Host]) -> None:  # 16
    alpha = make_host("alpha")
    proxy = alpha.create(Traveller)
    served = alpha.server_statistics().requests_served
    moved = alpha.dispatch(proxy.agent_id, alpha.address)
    assert moved.host_url == alpha.address
    assert alpha.server_statistics().requests_served == served
    assert _log(alpha, proxy.agent_id)[-2:] == ["arrived:alpha:from:alpha:dispatch", "run:alpha"]
    assert len(alpha.list_agents()) == 1


def test_self_dispatch_from_a_handler_over_http(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Traveller)
    where = proxy.send(Message("go", arg=beta.address))
    assert where == {"host_url": beta.address, "agent_id": proxy.agent_id}
    assert alpha.list_agents() == []
    wait_until(lambda: len(paglet_processes(os.getpid())) == 1)  # the paglet on beta, nothing left on alpha


def test_self_clone(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Traveller)
    clone = proxy.send(Message("clone_to", arg=beta.address))
    assert clone["host_url"] == beta.address
    assert proxy.send(Message("log"))[-2:] == ["cloning", "cloned"]
    assert [a["agent_id"] for a in beta.list_agents()] == [clone["agent_id"]]


def test_arrival_as_inactive_runs_no_hook_until_activation(make_host: Callable[..., Host]) -> None:  # 14
    from paglets.core.runtime_values import ArrivalMode

    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(Traveller)
    ticket = TransferTicket(beta.address, arrival_mode=ArrivalMode.INACTIVE)
    moved = alpha.dispatch(proxy.agent_id, ticket)
    assert moved.host_url == beta.address
    assert alpha.list_agents() == []
    listed = beta.list_agents(active=False, inactive=True)
    assert [(a["agent_id"], a["active"]) for a in listed] == [(proxy.agent_id, False)]
    assert _log(beta, proxy.agent_id)[-1] == "dispatching:alpha->beta"  # nothing ran on beta
    active = beta.activate(proxy.agent_id)
    wait_until(lambda: _log(beta, proxy.agent_id)[-1] == "run:beta")
    assert active.send(Message("log"))[-2:] == ["dispatching:alpha->beta", "run:beta"]


def test_a_clone_arriving_inactive_on_the_same_host_keeps_its_state(make_host: Callable[..., Host]) -> None:
    from paglets.core.runtime_values import ArrivalMode

    alpha = make_host("alpha")
    proxy = alpha.create(Traveller, TravelState(payload=b"x" * 1000))
    clone = alpha.clone(
        proxy.agent_id, target=TransferTicket(alpha.address, arrival_mode=ArrivalMode.INACTIVE)
    )
    assert [a["agent_id"] for a in alpha.list_agents(active=False, inactive=True)] == [clone.agent_id]
    assert alpha.activate(clone.agent_id).send(Message("size")) == 1000


def test_the_target_checks_the_code_version_when_the_preflight_answer_is_stale(
    make_host: Callable[..., Host],
) -> None:
    alpha, beta = make_host("alpha", mesh_version="v1"), make_host("beta", mesh_version="v2")
    proxy = alpha.create(Traveller)
    # a /health answer from before beta was upgraded, still fresh enough to spare the preflight request
    alpha.parts.movement.peer_health.put(beta.address, {**beta.health(), "code_version": "v1"})
    with pytest.raises(TransferError, match="runs code version 'v2', the paglet expects 'v1'"):
        alpha.dispatch(proxy.agent_id, beta.address)
    # it runs on where it was (its leaving hook ran: the target refused only when the envelope came)
    assert proxy.send(Message("log"))[-1] == "dispatching:alpha->beta"
    assert [a["agent_id"] for a in alpha.list_agents()] == [proxy.agent_id]
    assert beta.list_agents() == []
    # the failed move dropped the stale answer: the next preflight asks beta again
    with pytest.raises(TransferError, match="runs code version 'v2', this host 'v1'"):
        alpha.dispatch(proxy.agent_id, beta.address)


def test_a_run_that_works_before_it_moves_on_reports_where_the_paglet_settled(
    make_host: Callable[..., Host],
) -> None:
    alpha, beta, gamma = make_host("alpha"), make_host("beta"), make_host("gamma")
    proxy = alpha.create(Traveller, TravelState(route=[gamma.address], work=0.6))
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    assert moved.host_url == gamma.address  # run() on beta waited, then moved on to gamma
