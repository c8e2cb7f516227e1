"""The host's HTTP control plane (contract §6), used the way paglets 2.0 clients use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
from _paglets import Counter, CounterState
from conftest import HERE

from paglets.core.errors import (
    AuthenticationError,
    HostError,
    InvalidAgentError,
    NotHandledError,
    PagletCrashedError,
    SerializationError,
)
from paglets.core.messages import Message
from paglets.http.client import HttpClient
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host


def _http_proxy(host: Host, agent_id: str, client: HostClient) -> PagletProxy:
    """A proxy without the in-process route: every call is an HTTP request."""
    return PagletProxy(host.address, agent_id, client)


def test_health_and_agent_lifecycle_over_http(host: Host) -> None:
    client = HostClient()
    health = client.get_json(host.address + "/health")
    assert health["name"] == "alpha"
    assert health["address"] == host.address
    assert "agents:message" in health["capabilities"]
    reply = client.post_json(
        host.address + "/agents",
        {
            "agent_class_name": "_paglets:Counter",
            "state_class_name": "_paglets:CounterState",
            "state": {"count": 10, "log": [], "blob": {"__paglets_binary__": "bytes", "base64": "AAE="}},
            "init": {"from": "http"},
        },
    )
    proxy = PagletProxy.from_wire(reply["proxy"], client=client)
    assert proxy.host_url == host.address
    assert proxy.send(Message("add", {"n": 2})) == 12
    echoed = proxy.send(Message("echo", {"data": b"\x00\x01", "ba": bytearray(b"z")}))
    assert echoed["args"] == {"data": b"\x00\x01", "ba": bytearray(b"z")}
    assert type(echoed["args"]["ba"]) is bytearray
    info = proxy.info()
    assert info["active"] is True
    assert info["class_name"] == "_paglets:Counter"
    assert info["mailbox"]["delivered_count"] == 2
    state = client.get_json(f"{host.address}/agents/{proxy.agent_id}/state")
    assert state["state"]["count"] == 12
    assert state["state"]["blob"] == b"\x00\x01"
    assert state["state"]["log"][0] == "created:alpha:{'from': 'http'}"
    agents = client.get_json(host.address + "/agents?include_state=1")["agents"]
    assert [a["agent_id"] for a in agents] == [proxy.agent_id]
    assert agents[0]["state"]["count"] == 12
    proxy.send_oneway(Message("add", {"n": 1}))
    assert proxy.send(Message("add", {"n": 0})) == 13
    proxy.dispose()
    assert not proxy.is_valid()
    client.close()


def test_errors_map_to_the_contract_classes_and_statuses(host: Host) -> None:
    client = HostClient()
    proxy = _http_proxy(host, host.create(Counter).agent_id, client)
    with pytest.raises(NotHandledError):
        proxy.send(Message("nope"))
    with pytest.raises(HostError, match="boom"):
        proxy.send(Message("fail", arg="x"))
    with pytest.raises(InvalidAgentError):
        _http_proxy(host, "0" * 32, client).send(Message("add"))
    with pytest.raises(SerializationError):
        client.post_json(host.address + "/agents", {"agent_class_name": "no.such.module:Thing"})
    with pytest.raises(HostError, match="not a Paglet"):
        client.post_json(host.address + "/agents", {"agent_class_name": "_paglets:CounterState"})
    with pytest.raises(PagletCrashedError):
        proxy.send(Message("hard_exit", arg=9))
    raw = HttpClient()
    for method, path, body, status in [
        ("GET", "/no/such/route", None, 404),
        ("DELETE", "/health", None, 405),
        ("POST", f"/agents/{proxy.agent_id}/messages", b"{not json", 400),
        ("POST", f"/agents/{proxy.agent_id}/messages", b'{"message": 3}', 400),
        ("POST", "/agents", b"\x80\x04\x95", 400),
    ]:
        response = raw.request(method, host.address + path, body=body)
        assert response.status == status, (method, path, response.body)
        error = json.loads(response.body)
        assert set(error) >= {"error_type", "error"}
    pickled = raw.request(
        "POST",
        host.address + "/agents",
        body=b"\x80\x05.",
        headers={"Content-Type": "application/x-paglets-pickle"},
    )
    assert pickled.status == 415
    assert raw.request("GET", host.address + "/health").status == 200  # still serving
    raw.close()
    client.close()


def test_api_key_guards_every_route(make_host: Callable[..., Host]) -> None:
    host = make_host("guarded", api_key="s3cret")
    anonymous = HostClient()
    with pytest.raises(AuthenticationError, match="PAGLETS_API_KEY"):
        anonymous.get_json(host.address + "/health")
    raw = HttpClient()
    response = raw.request("GET", host.address + "/health")
    raw.close()
    assert response.status == 401
    assert ("www-authenticate", "Bearer") in [(k.decode().lower(), v.decode()) for k, v in response.headers]
    keyed = HostClient(api_key="s3cret")
    assert keyed.get_json(host.address + "/health")["name"] == "guarded"
    proxy = host.create(Counter)
    assert _http_proxy(host, proxy.agent_id, keyed).send(Message("add")) == 1
    anonymous.close()
    keyed.close()


def test_a_separate_process_drives_the_host_over_http(host: Host) -> None:
    proxy = host.create(Counter, CounterState(count=100))
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from paglets.core.messages import Message
        from paglets.remote.client import HostClient
        from paglets.remote.proxy import PagletProxy
        proxy = PagletProxy({host.address!r}, {proxy.agent_id!r}, HostClient())
        total = 0
        for _ in range(50):
            total = proxy.send(Message("add"))
        print(total)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "150"
