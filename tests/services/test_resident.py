"""Resident service value types: spec validation, and leases against a real HTTP server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pytest

from paglets.core.errors import SerializationError
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.http import HttpServer, Request, Response, Router, json_response, new_event_loop
from paglets.remote.client import HostClient
from paglets.remote.references import PagletProxyRef
from paglets.services.contracts import ServiceContract, ServiceHandle, ServiceOperation, ServiceRecord
from paglets.services.resident import (
    DEFAULT_IDLE_TIMEOUT,
    MAX_LEASE_TTL,
    RESIDENT_SERVICE_METADATA_KEY,
    ResidentServiceSpec,
    ServiceLease,
)


@dataclass
class Info:
    text: str = ""


CONTRACT = ServiceContract("server-info", (ServiceOperation("info", reply_type=Info),))


def test_spec_defaults() -> None:
    spec = ResidentServiceSpec(CONTRACT)
    assert spec.scope is ServiceScope.LOCAL
    assert spec.lifecycle is ResidentLifecycle.LAZY
    assert spec.agent_id is None
    assert spec.singleton is True
    assert spec.state == {}
    assert spec.idle_timeout == DEFAULT_IDLE_TIMEOUT
    assert spec.service_name == "server-info"
    assert RESIDENT_SERVICE_METADATA_KEY == "paglets.resident_service"
    eager = ResidentServiceSpec(
        CONTRACT, scope=ServiceScope.MESH, lifecycle=ResidentLifecycle.EAGER, agent_id="info", idle_timeout=0
    )
    assert eager.idle_timeout == 0.0
    assert isinstance(eager.idle_timeout, float)
    with pytest.raises(AttributeError):
        eager.agent_id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"contract": "server-info"}, TypeError),
        ({"scope": "mesh"}, TypeError),
        ({"lifecycle": "eager"}, TypeError),
        ({"agent_id": ""}, ValueError),
        ({"agent_id": 5}, ValueError),
        ({"singleton": 1}, TypeError),
        ({"idle_timeout": -1}, ValueError),
        ({"idle_timeout": float("inf")}, ValueError),
        ({"idle_timeout": "30"}, TypeError),
        ({"state": [1]}, TypeError),
        ({"state": {1: 2}}, TypeError),
    ],
)
def test_spec_validation(kwargs: dict[str, Any], error: type) -> None:
    values: dict[str, Any] = {"contract": CONTRACT}
    values.update(kwargs)
    with pytest.raises(error):
        ResidentServiceSpec(**values)


# --- leases ---------------------------------------------------------------------------------------------


class LeaseServer:
    """A stand-in for a host's lease routes, recording what it receives."""

    def __init__(self) -> None:
        self.acquired: list[dict[str, Any]] = []
        self.released: list[str] = []
        router = Router()

        async def acquire(request: Request) -> Response:
            body = await request.json()
            self.acquired.append(body)
            if body["service_name"] == "broken":
                return json_response({"lease_id": 7})
            return json_response({"lease_id": "lease/1", "expires_at": time.time() + body["ttl"]})

        async def release(request: Request) -> Response:
            self.released.append(request.path_params["lease_id"])
            return json_response({"released": True})

        router.post("/services/leases", acquire)
        router.post("/services/leases/{lease_id}/release", release)
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = HttpServer(router)
        self.url = f"http://127.0.0.1:{self._call(self.server.start(['127.0.0.1'], 0))}"

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(10)

    def stop(self) -> None:
        try:
            self._call(self.server.close(deadline=2.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture
def lease_server() -> Iterator[LeaseServer]:
    server = LeaseServer()
    yield server
    server.stop()


def handle_on(url: str, name: str = "server-info") -> ServiceHandle:
    contract = CONTRACT if name == "server-info" else ServiceContract(name, CONTRACT.operations)
    record = ServiceRecord(
        name,
        PagletProxyRef(url, "svc-agent"),
        contract.capabilities,
        contract.advertise_metadata(),
        host_url=url,
    )
    return ServiceHandle(contract, record)


def test_lease_acquire_context_manager_and_single_release(lease_server: LeaseServer) -> None:
    client = HostClient(timeout=5.0)
    try:
        handle = handle_on(lease_server.url)
        lease = ServiceLease.acquire(handle, ttl=15, client=client)
        assert lease_server.acquired == [
            {"agent_id": "svc-agent", "service_name": "server-info", "ttl": 15.0}
        ]
        assert lease.lease_id == "lease/1"
        assert lease.host_url == lease_server.url
        assert not lease.expired
        assert not lease.released
        with lease as got:
            assert got is handle
        assert lease.released
        assert lease.release() is False  # once only
        assert lease_server.released == ["lease/1"]  # the id travelled percent-encoded
    finally:
        client.close()


def test_lease_release_without_a_client_and_expiry(lease_server: LeaseServer) -> None:
    lease = ServiceLease(handle_on(lease_server.url), "abc", lease_server.url + "/", time.time() - 1)
    assert lease.expired
    assert lease.release() is True
    assert lease_server.released == ["abc"]


def test_concurrent_releases_post_once(lease_server: LeaseServer) -> None:
    lease = ServiceLease(handle_on(lease_server.url), "once", lease_server.url, time.time() + 60)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(lease.release())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [False, False, False, True]
    assert lease_server.released == ["once"]


def test_lease_errors(lease_server: LeaseServer) -> None:
    with pytest.raises(SerializationError, match="malformed lease"):
        ServiceLease.acquire(handle_on(lease_server.url, "broken"))
    for ttl in (0, -1, float("nan"), MAX_LEASE_TTL * 2, True):
        with pytest.raises(ValueError, match="ttl"):
            ServiceLease.acquire(handle_on(lease_server.url), ttl=ttl)
