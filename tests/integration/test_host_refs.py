"""Mesh queries return ``HostRef`` objects, as in paglets 2.0: on the embedded host and inside paglets.

``GET /hosts`` keeps answering JSON.
"""

from __future__ import annotations

from collections.abc import Callable

from _compat_paglets import Starter
from conftest import wait_until

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.mesh import HostRef
from paglets.runtime.host import Host


def _pair(make_host: Callable[..., Host]) -> tuple[Host, Host]:
    alpha = make_host("alpha", mesh_version="compat")
    beta = make_host("beta", mesh_version="compat", peers=[alpha.address])
    wait_until(lambda: {h.name for h in alpha.list_hosts(online_only=True)} == {"alpha", "beta"})
    return alpha, beta


def test_list_hosts_returns_host_refs(make_host: Callable[..., Host]) -> None:
    alpha, beta = _pair(make_host)
    hosts = alpha.list_hosts()
    assert hosts
    assert all(isinstance(ref, HostRef) for ref in hosts)
    assert {ref.name: ref.url for ref in hosts} == {"alpha": alpha.address, "beta": beta.address}
    assert [ref.name for ref in alpha.list_hosts(include_self=False)] == ["beta"]
    assert all(ref.online and ref.code_version == "compat" for ref in hosts)


def test_host_status_and_available_hosts_return_host_refs(make_host: Callable[..., Host]) -> None:
    alpha, beta = _pair(make_host)
    status = alpha.host_status("beta")
    assert isinstance(status, HostRef)
    assert status.url == beta.address
    assert alpha.host_status("no-such-host-in-this-mesh") is None
    assert all(isinstance(ref, HostRef) for ref in alpha.available_hosts())
    assert isinstance(alpha.wait_for_host("beta", timeout=5.0), HostRef)


def test_http_hosts_route_stays_json(make_host: Callable[..., Host]) -> None:
    alpha, _beta = _pair(make_host)
    client = HostClient()
    try:
        body = client.get_json(f"{alpha.address}/hosts")
    finally:
        client.close()
    assert sorted(item["name"] for item in body["hosts"]) == ["alpha", "beta"]
    assert all(isinstance(item, dict) and isinstance(item["url"], str) for item in body["hosts"])


def test_mesh_queries_inside_a_paglet_return_host_refs(make_host: Callable[..., Host]) -> None:
    alpha, _beta = _pair(make_host)
    proxy = alpha.create(Starter)
    seen = proxy.send(Message("mesh_types"))
    assert seen == {
        "available_hosts": ["HostRef"],
        "available_host_names": ["alpha", "beta"],
        "host_status": "HostRef",
        "host_status_url": alpha.address,
        "unknown_host_status": "None",
        "wait_for_host": "HostRef",
        "mesh.hosts": ["HostRef"],
        "mesh.lookup": "HostRef",
        "mesh.is_online": True,
        "mesh.code_version": "compat",
        "mesh.resolve_url": alpha.address,
    }


def test_host_mesh_wait_for_host_blocks_and_returns_a_host_ref(make_host: Callable[..., Host]) -> None:
    # 2.0 code calls ``host.mesh.wait_for_host(...)`` from a plain thread and gets a HostRef back
    alpha, beta = _pair(make_host)
    ref = alpha.mesh.wait_for_host("beta", timeout=5.0)
    assert isinstance(ref, HostRef)
    assert ref.url == beta.address
