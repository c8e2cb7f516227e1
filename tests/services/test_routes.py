"""The service routes over real HTTP: advertise, list by scope, unadvertise, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from paglets.core.errors import (
    HostError,
    InvalidAgentError,
    LimitExceededError,
    MethodNotAllowedError,
    RequestError,
)
from paglets.http import Router
from paglets.remote.client import HostClient
from paglets.services._routes import build_service_routes
from paglets.services.contracts import ServiceRecord
from paglets.services.registry import MAX_SERVICE_METADATA, ServiceRegistry

from .conftest import ServiceHost


@pytest.fixture
def client() -> Iterator[HostClient]:
    client = HostClient(timeout=5.0)
    yield client
    client.close()


@pytest.fixture
def host(make_host: Callable[..., ServiceHost]) -> ServiceHost:
    host = make_host("alpha")
    host.active.update({"a1", "a2"})
    return host


def test_advertise_list_and_unadvertise(host: ServiceHost, client: HostClient) -> None:
    base = host.url
    answer = client.post_json(
        f"{base}/agents/a1/services",
        {
            "name": "calc",
            "capabilities": ["add"],
            "metadata": {"blob": b"\x00\xff"},
            "scope": "mesh",
            "ttl": 30,
        },
    )
    record = ServiceRecord.from_wire(answer["service"])
    assert record.name == "calc"
    assert record.capabilities == ("add",)
    assert record.scope.value == "mesh"
    assert record.metadata == {"blob": b"\x00\xff"}  # binary tags restored on both sides
    assert record.host_name == "alpha"
    assert record.host_url == base
    assert record.proxy.host_url == base
    assert record.expires_at == pytest.approx(record.advertised_at + 30)
    assert host.registry.get("calc", "a1") == record

    client.post_json(f"{base}/agents/a2/services", {"name": "calc", "capabilities": ["add", "mul"]})
    client.post_json(f"{base}/agents/a2/services", {"name": "log"})

    def listing(query: str) -> list[tuple[str, str]]:
        reply = client.get_json(f"{base}/services{query}")
        return [(item["name"], item["proxy"]["agent_id"]) for item in reply["services"]]

    assert listing("") == [("calc", "a1"), ("calc", "a2"), ("log", "a2")]
    assert listing("?scope=local") == listing("")
    assert listing("?scope=mesh") == [("calc", "a1")]
    assert listing("?name=calc&capability=mul") == [("calc", "a2")]
    assert listing("?name=&capability=") == listing("")
    assert listing("?name=nothing") == []

    removed = client.post_json(f"{base}/agents/a2/unadvertise-service", {"name": "calc"})
    assert [(s["name"], s["proxy"]["agent_id"]) for s in removed["services"]] == [("calc", "a2")]
    assert client.post_json(f"{base}/agents/a2/unadvertise-service", {"name": "calc"}) == {"services": []}
    host.active.discard("a1")  # a record stays removable after its paglet left
    removed = client.post_json(f"{base}/agents/a1/unadvertise-service", {"name": "calc"})
    assert len(removed["services"]) == 1
    assert listing("") == [("log", "a2")]


def test_advertising_needs_an_active_paglet(host: ServiceHost, client: HostClient) -> None:
    with pytest.raises(InvalidAgentError, match="no active paglet"):
        client.post_json(f"{host.url}/agents/ghost/services", {"name": "svc"})
    assert len(host.registry) == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, HostError),
        ({"name": ""}, HostError),
        ({"name": 3}, HostError),
        ({"name": "svc", "capabilities": "abc"}, HostError),
        ({"name": "svc", "capabilities": [1]}, HostError),
        ({"name": "svc", "metadata": [1]}, HostError),
        ({"name": "svc", "ttl": "soon"}, HostError),
        ({"name": "svc", "ttl": True}, HostError),
        ({"name": "svc", "ttl": -5}, HostError),
        ({"name": "svc", "scope": "galaxy"}, HostError),
        ({"name": "svc", "metadata": {"big": "x" * MAX_SERVICE_METADATA}}, LimitExceededError),
        ({"name": "svc", "metadata": {"big": "x" * (MAX_SERVICE_METADATA * 4)}}, LimitExceededError),
    ],
)
def test_malformed_advertisements_are_400_or_413(
    host: ServiceHost, client: HostClient, body: dict[str, Any], error: type
) -> None:
    with pytest.raises(error):
        client.post_json(f"{host.url}/agents/a1/services", body)
    assert len(host.registry) == 0


def test_bad_requests(host: ServiceHost, client: HostClient) -> None:
    with pytest.raises(HostError, match="scope"):
        client.get_json(f"{host.url}/services?scope=everywhere")
    with pytest.raises(HostError, match="expected object, got array"):
        client.post_json(f"{host.url}/agents/a1/unadvertise-service", [1, 2])
    with pytest.raises(RequestError, match="field 'name' is required"):
        client.post_json(f"{host.url}/agents/a1/unadvertise-service", {})
    with pytest.raises(RequestError, match="field 'name': expected str of length >= 1"):
        client.post_json(f"{host.url}/agents/a1/unadvertise-service", {"name": ""})
    with pytest.raises(RequestError, match=r"field 'capabilities\[1\]': expected str, got int"):
        client.post_json(f"{host.url}/agents/a1/services", {"name": "s", "capabilities": ["a", 2]})
    with pytest.raises(RequestError, match="field 'ttl': expected float"):
        client.post_json(f"{host.url}/agents/a1/services", {"name": "s", "ttl": True})
    with pytest.raises(MethodNotAllowedError):
        client.post_json(f"{host.url}/services", {})


def test_routes_coexist_with_other_agent_routes() -> None:
    router = Router()

    async def other(request: Any) -> Any:
        raise AssertionError("not called")

    router.get("/agents/{agent_id}", other)
    router.post("/agents/{agent_id}/messages", other)
    build_service_routes(
        router, ServiceRegistry(), host_name=lambda: "h", host_address=lambda: "http://h", is_active=bool
    )
    assert router.match("POST", "/agents/x/services").route.pattern == "/agents/{agent_id}/services"
    assert router.match("POST", "/agents/x/unadvertise-service").params == {"agent_id": "x"}
    assert router.match("GET", "/services").route.pattern == "/services"
