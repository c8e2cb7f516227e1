"""Services on one host: paglets advertise, look up and unadvertise; records follow the paglet's life."""

from __future__ import annotations

from _paglets import Advertiser

from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.remote.client import HostClient
from paglets.runtime.host import Host


def test_advertise_lookup_unadvertise(host: Host) -> None:
    offering = host.create(Advertiser)
    asking = host.create(Advertiser)
    record = offering.send(Message("advertise", arg="adder"))
    assert record["name"] == "adder"
    found = asking.send(Message("lookup", arg="adder"))
    assert found == {"host_url": host.address, "agent_id": offering.agent_id}  # a PagletProxyRef
    assert host.lookup_service("adder", capability="sum") is not None
    client = HostClient()
    listed = client.get_json(host.address + "/services?name=adder")["services"]
    client.close()
    assert [r["proxy"]["agent_id"] for r in listed] == [offering.agent_id]
    assert offering.send(Message("unadvertise", arg="adder")) == 1
    assert host.lookup_services("adder") == []


def test_records_leave_with_their_paglet(host: Host) -> None:
    offering = host.create(Advertiser)
    host.advertise_service(offering.agent_id, "mesh-thing", scope=ServiceScope.MESH)
    assert len(host.lookup_services("mesh-thing", scope=ServiceScope.MESH)) == 1
    host.dispose(offering.agent_id)
    assert host.lookup_services("mesh-thing") == []
