"""A paglet publishes its services from its starting hooks, as in paglets 2.0 (``on_creation``,
``on_activation``, ``on_arrival``, ``on_clone``); what it advertised never outlives a start that fails, and a
copy prepared by a move is not discoverable before the move is committed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _compat_paglets import PING_CONTRACT, Starter, StartState
from conftest import wait_until

from paglets.core.errors import HostError, TransferError
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.runtime.host import Host


def _names(host: Host, service: str) -> list[str]:
    return [record.host_name for record in host.lookup_services(service)]


def test_service_and_contract_advertised_in_on_creation_are_published(host: Host) -> None:
    proxy = host.create(Starter, StartState(service="svc-create", contract=True))
    record = host.lookup_service("svc-create")
    assert record is not None
    assert record.proxy.agent_id == proxy.agent_id
    assert record.capabilities == ("ping",)
    contract = host.lookup_service(PING_CONTRACT.name)
    assert contract is not None
    assert PING_CONTRACT.matches_record(contract)
    kinds = [(e.kind, e.service_name) for e in host.list_events(limit=1000) if e.agent_id == proxy.agent_id]
    assert ("service-advertise", "svc-create") in kinds
    assert ("service-advertise", PING_CONTRACT.name) in kinds
    assert kinds.index(("service-advertise", "svc-create")) < kinds.index(("create", None))


def test_failed_creation_leaves_no_service_behind(host: Host) -> None:
    with pytest.raises(HostError, match="creation fails on purpose"):
        host.create(Starter, StartState(service="svc-failed", contract=True, fail_in="creation"))
    assert host.lookup_services("svc-failed") == []
    assert host.lookup_services(PING_CONTRACT.name) == []
    assert host.list_agents() == []
    removed = [e.service_name for e in host.list_events(limit=1000) if e.kind == "service-remove"]
    assert sorted(removed) == sorted(["svc-failed", PING_CONTRACT.name])


def test_service_advertised_in_on_activation_comes_back_with_the_paglet(host: Host) -> None:
    proxy = host.create(Starter, StartState(service="svc-act"))
    host.deactivate(proxy.agent_id)
    assert host.lookup_services("svc-act") == []
    host.activate(proxy.agent_id)
    assert _names(host, "svc-act") == ["alpha"]


def test_failed_activation_leaves_no_service_and_keeps_the_record(host: Host) -> None:
    proxy = host.create(Starter, StartState(service="svc-act-fail", fail_in="activation"))
    assert _names(host, "svc-act-fail") == ["alpha"]
    host.deactivate(proxy.agent_id)
    with pytest.raises(HostError, match="activation fails on purpose"):
        host.activate(proxy.agent_id)
    assert host.lookup_services("svc-act-fail") == []
    assert [a["agent_id"] for a in host.list_agents(active=False, inactive=True)] == [proxy.agent_id]


def test_service_advertised_in_on_arrival_moves_with_the_paglet(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha", mesh_version="compat")
    beta = make_host("beta", mesh_version="compat", peers=[alpha.address])
    wait_until(
        lambda: len(alpha.list_hosts(online_only=True)) == 2 and len(beta.list_hosts(online_only=True)) == 2
    )
    proxy = alpha.create(Starter, StartState(service="svc-move", probe_lookup=True))
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    assert _names(alpha, "svc-move") == []
    assert _names(beta, "svc-move") == ["beta"]
    log = moved.send(Message("log"))
    # while it was prepared on beta (the move not committed yet), only the source's record was visible
    assert "lookup-in-arrival:['alpha']" in log
    found = alpha.lookup_services("svc-move", scope=ServiceScope.MESH)
    assert [(r.host_name, r.proxy.agent_id) for r in found] == [("beta", proxy.agent_id)]


def test_service_advertised_in_on_clone_is_published_for_the_clone(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha", mesh_version="compat")
    beta = make_host("beta", mesh_version="compat")
    original = alpha.create(Starter, StartState(service="svc-clone"))
    clone = alpha.clone(original.agent_id, target=beta.address)
    assert [r.proxy.agent_id for r in beta.lookup_services("svc-clone")] == [clone.agent_id]
    same_host = alpha.clone(original.agent_id)
    ids = {r.proxy.agent_id for r in alpha.lookup_services("svc-clone")}
    assert ids == {original.agent_id, same_host.agent_id}


def test_aborted_arrival_publishes_nothing_and_the_source_keeps_its_service(
    make_host: Callable[..., Host],
) -> None:
    alpha = make_host("alpha", mesh_version="compat")
    beta = make_host("beta", mesh_version="compat")
    proxy = alpha.create(Starter, StartState(service="svc-abort", fail_in="arrival", fail_on_host="beta"))
    with pytest.raises(TransferError, match="arrival fails on purpose"):
        alpha.dispatch(proxy.agent_id, beta.address)
    assert beta.lookup_services("svc-abort") == []
    assert beta.list_agents() == []
    assert _names(alpha, "svc-abort") == ["alpha"]
    assert proxy.is_active()


def test_move_within_one_host_keeps_exactly_one_record(host: Host) -> None:
    proxy = host.create(Starter, StartState(service="svc-here"))
    host.dispatch(proxy.agent_id, host.address)
    records = host.lookup_services("svc-here")
    assert [(r.host_name, r.proxy.agent_id) for r in records] == [("alpha", proxy.agent_id)]
    assert proxy.send(Message("log"))[-2:] == ["arrived:alpha", "run:alpha"]
