"""Agent summaries keep paglets 2.0's field names and types: ``list_agents``, ``PagletProxy.info()``,
``GET /agents``, ``GET /agents/{id}``, ``GET /agents/{id}/state`` and ``/health``, for active, crashed and
inactive paglets. Our extra keys (``status`` for active paglets; ``crashed`` and ``queued_message_count``
for inactive ones) are documented in ``docs/compat.md``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _compat_paglets import Starter
from conftest import wait_until

from paglets.core.errors import PagletCrashedError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.runtime.host import Host

NoneType = type(None)

#: 2.0's fields of an active paglet and the type of each (a tuple: any of these).
ACTIVE: dict[str, Any] = {
    "agent_id": str,
    "class_name": str,
    "state_class_name": str,
    "host": str,
    "address": str,
    "active": bool,
    "pid": int,
    "crashed": bool,
    "exitcode": NoneType,
    "error": str,
    "mailbox": dict,
    "resources": dict,
}
CRASHED = {**ACTIVE, "exitcode": int, "mailbox": NoneType}
INACTIVE: dict[str, Any] = {
    "agent_id": str,
    "class_name": str,
    "state_class_name": str,
    "host": str,
    "address": str,
    "active": bool,
    "deactivated_at": float,
}
MAILBOX = {"queued_count": int, "in_flight_count": int, "delivered_count": int, "failed_count": int}
POLICY = {
    "activate_on_message": bool,
    "queue_messages_when_inactive": bool,
    "activate_on_startup": bool,
    "activate_at": NoneType,
}
HEALTH = {
    "name": str,
    "address": str,
    "active_count": int,
    "inactive_count": int,
    "code_version": str,
    "capabilities": list,
    "tags": list,
    "properties": dict,
    "auto_update_from_git": bool,
    "auto_update_restart_scheduled": bool,
}
#: keys we add, documented in docs/compat.md
OURS_ACTIVE = {"status"}
OURS_INACTIVE = {"crashed", "queued_message_count"}


def check(item: dict[str, Any], fields: dict[str, Any], extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    assert set(fields) <= set(item), f"missing {set(fields) - set(item)}"
    assert set(item) - set(fields) <= extra, f"undocumented keys {set(item) - set(fields) - extra}"
    wrong = {key: type(item[key]).__name__ for key, kind in fields.items() if type(item[key]) is not kind}
    assert not wrong, f"wrong types {wrong}"


@pytest.fixture
def client() -> Any:
    http = HostClient()
    yield http
    http.close()


def test_active_paglet_fields(host: Host, client: HostClient) -> None:
    proxy = host.create(Starter)
    assert proxy.send(Message("hold", {"suppress": True}, arg="conn")) == {"conn": True}
    info = proxy.info()
    check(info, ACTIVE, OURS_ACTIVE)
    assert info["error"] == ""
    assert info["exitcode"] is None
    assert info["active"] is True
    assert info["resources"] == {"conn": True}
    check(info["mailbox"], MAILBOX)
    listed = host.list_agents()
    assert [item["agent_id"] for item in listed] == [proxy.agent_id]
    check(listed[0], ACTIVE, OURS_ACTIVE)
    base = f"{host.address}/agents"
    check(client.get_json(f"{base}/{proxy.agent_id}"), ACTIVE, OURS_ACTIVE)
    check(client.get_json(base)["agents"][0], ACTIVE, OURS_ACTIVE)
    state = client.get_json(f"{base}/{proxy.agent_id}/state")
    check(state, {**ACTIVE, "state": dict}, OURS_ACTIVE)
    with_state = client.get_json(f"{base}?include_state=true")["agents"][0]
    check(with_state, {**ACTIVE, "state": dict}, OURS_ACTIVE)
    assert with_state["resources"] == {"conn": True}


def test_crashed_paglet_fields(host: Host, client: HostClient) -> None:
    proxy = host.create(Starter)
    with pytest.raises(PagletCrashedError):
        proxy.send(Message("exit", arg=5))
    wait_until(lambda: proxy.info()["crashed"])
    info = proxy.info()
    check(info, CRASHED, OURS_ACTIVE)
    assert (info["active"], info["exitcode"], info["mailbox"]) == (False, 5, None)
    assert "5" in info["error"]
    check(client.get_json(f"{host.address}/agents/{proxy.agent_id}"), CRASHED, OURS_ACTIVE)


def test_inactive_paglet_fields(host: Host, client: HostClient) -> None:
    proxy = host.create(Starter)
    host.deactivate(proxy.agent_id)
    info = proxy.info()
    check(info, INACTIVE, OURS_INACTIVE)
    assert info["active"] is False
    listed = host.list_agents(active=False, inactive=True, include_state=True)
    check(listed[0], {**INACTIVE, "state": dict, "deactivation_policy": dict}, OURS_INACTIVE)
    check(listed[0]["deactivation_policy"], POLICY)
    state = client.get_json(f"{host.address}/agents/{proxy.agent_id}/state")
    check(state, {**INACTIVE, "state": dict, "deactivation_policy": dict}, OURS_INACTIVE)
    assert state["queued_message_count"] == 0
    check(client.get_json(f"{host.address}/agents/{proxy.agent_id}"), INACTIVE, OURS_INACTIVE)


def test_listing_puts_active_paglets_first(host: Host, client: HostClient) -> None:
    sleeping = host.create(Starter)
    host.deactivate(sleeping.agent_id)
    awake = host.create(Starter)
    ids = [item["agent_id"] for item in host.list_agents(active=True, inactive=True)]
    assert ids == [awake.agent_id, sleeping.agent_id]
    body = client.get_json(f"{host.address}/agents?state=all")
    assert [item["agent_id"] for item in body["agents"]] == ids


def test_health_fields(make_host: Callable[..., Host], client: HostClient) -> None:
    host = make_host("alpha", mesh_version="compat")
    health = host.health()
    check(health, HEALTH, {"compute_capacity"})
    assert health["compute_capacity"] == {}
    assert health == client.get_json(f"{host.address}/health")
    assert "hosts:join" in health["capabilities"]
