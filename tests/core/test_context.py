"""``PagletContext`` forwards to its ``HostFacade`` with the documented names and arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from paglets.artifacts import ArtifactRef
from paglets.core.agent import ACTIVE, INACTIVE, Paglet, PagletContext, PagletState
from paglets.core.errors import HostError, ServiceContractError, ServiceNotFoundError
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationRequest
from paglets.remote.transfer import TransferTicket
from paglets.runtime.resources import ResourceRegistry

if TYPE_CHECKING:
    from .conftest import RecordingHost

AGENT = "a" * 32


@dataclass
class S(PagletState):
    n: int = 0


class P(Paglet[S]):
    State = S


class FakeProxy:
    def __init__(self, host_url: str, agent_id: str) -> None:
        self.host_url = host_url
        self.agent_id = agent_id
        self.sent: list[Message] = []

    def send(self, message: Message) -> Any:
        self.sent.append(message)
        return {"echo": message.kind}


@pytest.fixture
def context(host: RecordingHost) -> PagletContext:
    return PagletContext(host, AGENT)  # type: ignore[arg-type]


def test_properties(host: RecordingHost, context: PagletContext) -> None:
    assert context.name == "alpha"
    assert context.address == "http://127.0.0.1:8765"
    assert context.host is host
    assert context.agent_id == AGENT
    assert PagletContext(host).agent_id is None  # type: ignore[arg-type]
    assert "alpha" in repr(context)


def test_get_proxy_local_includes_inactive(host: RecordingHost, context: PagletContext) -> None:
    context.get_proxy("x")
    assert host.last("get_proxy") == {"agent_id": "x", "include_inactive": True}
    context.get_proxy("y", "http://127.0.0.1:8765/")
    assert host.last("get_proxy")["agent_id"] == "y"
    assert "remote_proxy" not in host.methods()


def test_get_proxy_on_a_foreign_host_is_unchecked(host: RecordingHost, context: PagletContext) -> None:
    host.results["remote_proxy"] = FakeProxy
    proxy = context.get_proxy("x", "http://beta:1")
    assert isinstance(proxy, FakeProxy)
    assert proxy.host_url == "http://beta:1"
    assert host.methods() == ["remote_proxy"]


def test_get_proxies_and_properties(host: RecordingHost, context: PagletContext) -> None:
    context.get_proxies()
    assert host.last("get_proxies") == {"state": ACTIVE}
    context.get_proxies(ACTIVE | INACTIVE)
    assert host.last("get_proxies") == {"state": 3}
    host.results["get_property"] = lambda key, default: f"{key}={default}"
    assert context.get_property("k", "d") == "k=d"
    context.set_property("k", None)
    assert host.last("set_property") == {"key": "k", "value": None}


def test_create_paglet_local_and_remote(host: RecordingHost, context: PagletContext) -> None:
    state = S(3)
    context.create_paglet(P, state, init="i")
    assert host.last("create") == {"agent_cls": P, "state": state, "init": "i", "agent_id": None}
    context.create_paglet(P, host_url="http://127.0.0.1:8765/")
    assert host.methods() == ["create", "create"]
    context.create_paglet(P, None, init=1, host_url="http://beta:1")
    assert host.last("create_remote") == {
        "target": "http://beta:1",
        "agent_cls": P,
        "state": None,
        "init": 1,
        "agent_id": None,
    }


def test_movement(host: RecordingHost, context: PagletContext) -> None:
    ticket = TransferTicket("http://beta:1")
    context.dispatch(AGENT, ticket)
    assert host.last("dispatch") == {"agent_id": AGENT, "target": ticket}
    context.clone(AGENT)
    assert host.last("clone") == {"agent_id": AGENT, "target": None}
    request = DeactivationRequest(source="self")
    context.deactivate(AGENT, request)
    assert host.last("deactivate") == {"agent_id": AGENT, "request": request}


def test_dispatch_to_and_clone_to_resolve_names_first(host: RecordingHost, context: PagletContext) -> None:
    host.results["resolve_host_url"] = lambda name_or_url: f"http://{name_or_url}:9"
    context.dispatch_to(AGENT, "beta")
    assert host.methods() == ["resolve_host_url", "dispatch"]
    assert host.last("dispatch")["target"] == "http://beta:9"
    context.clone_to(AGENT, "gamma")
    assert host.last("clone") == {"agent_id": AGENT, "target": "http://gamma:9"}


def test_mesh_queries(host: RecordingHost, context: PagletContext) -> None:
    context.available_hosts()
    assert host.last("available_hosts") == {"online_only": True, "include_self": True}
    context.available_hosts(online_only=False, include_self=False)
    assert host.last("available_hosts") == {"online_only": False, "include_self": False}
    context.host_status("beta")
    assert host.last("host_status") == {"name_or_url": "beta"}
    host.results["is_host_online"] = lambda name_or_url: name_or_url == "beta"
    assert context.is_host_online("beta") is True
    context.wait_for_host("beta", timeout=1.5)
    assert host.last("wait_for_host") == {"name_or_url": "beta", "timeout": 1.5, "interval": 0.25}


def test_send_fills_the_sender_and_uses_the_proxy(host: RecordingHost, context: PagletContext) -> None:
    proxy = FakeProxy(context.address, "b")
    host.results["get_proxy"] = lambda agent_id, include_inactive: proxy
    message = Message("ping")
    assert context.send("b", message) == {"echo": "ping"}
    assert proxy.sent == [message]
    assert message.sender == context.address
    signed = Message("ping", sender="someone")
    context.send("b", signed)
    assert signed.sender == "someone"


def test_send_to_a_foreign_host_and_to_nobody(host: RecordingHost, context: PagletContext) -> None:
    host.results["remote_proxy"] = FakeProxy
    assert context.send("b", Message("k"), host_url="http://beta:1") == {"echo": "k"}
    with pytest.raises(HostError, match="no such local paglet"):
        context.send("missing", Message("k"))


def test_multicast_and_message_conditions(host: RecordingHost, context: PagletContext) -> None:
    context.multicast("k", {"a": 1}, exclude={"x"})
    assert host.last("multicast_message") == {"kind": "k", "args": {"a": 1}, "exclude": {"x"}}
    host.results["wait_message"] = lambda agent_id, timeout: False
    assert context.wait_message(0.5) is False
    assert host.last("wait_message") == {"agent_id": AGENT, "timeout": 0.5}
    context.notify_message()
    context.notify_all_messages(agent_id="other")
    assert host.last("notify_message") == {"agent_id": AGENT}
    assert host.last("notify_all_messages") == {"agent_id": "other"}


def test_services(host: RecordingHost, context: PagletContext) -> None:
    context.advertise_service("svc", capabilities=["a"], scope=ServiceScope.MESH, ttl=5.0)
    assert host.last("advertise_service") == {
        "agent_id": AGENT,
        "name": "svc",
        "capabilities": ["a"],
        "metadata": None,
        "scope": ServiceScope.MESH,
        "ttl": 5.0,
    }
    context.unadvertise_service("svc")
    assert host.last("unadvertise_service") == {"name": "svc", "agent_id": AGENT}

    class Record:
        proxy = "proxy-ref"

    host.results["lookup_service"] = lambda name, capability, scope: Record()
    assert context.lookup_service("svc", capability="a") == "proxy-ref"
    host.results["lookup_service"] = None
    assert context.lookup_service("svc") is None
    context.lookup_services(scope=ServiceScope.MESH)
    assert host.last("lookup_services") == {"name": None, "capability": None, "scope": ServiceScope.MESH}


def test_agent_specific_calls_need_an_agent(host: RecordingHost) -> None:
    detached = PagletContext(host)  # type: ignore[arg-type]
    for call in (
        lambda: detached.advertise_service("s"),
        lambda: detached.work_dir(),
        lambda: detached.registered_files(),
        lambda: detached.resources(),
        lambda: detached.wait_message(0),
    ):
        with pytest.raises(HostError, match="requires an attached paglet"):
            call()
    detached.work_dir(agent_id="explicit")
    assert host.last("work_dir_for") == {"agent_id": "explicit", "create": True}


class FakeContract:
    name = "calc"
    version = "1"
    capabilities = ("add", "mul")

    def advertise_metadata(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        return {"paglets.service_contract": {"name": self.name}, **(extra or {})}

    def matches_record(self, record: Any) -> bool:
        return bool(record.get("ok"))

    def _handle_for(self, record: Any, source: Any) -> FakeHandle:
        return FakeHandle(self, record, source)


class FakeOperation:
    name = "add"


class FakeHandle:
    def __init__(self, contract: Any, record: Any, context: Any) -> None:
        self.contract, self.record, self.context = contract, record, context


class FakeLease:
    lease_id = "L1"
    released = False

    def release(self) -> None:
        self.released = True


def test_contracts(host: RecordingHost, context: PagletContext) -> None:
    contract = FakeContract()
    context.advertise_contract(contract, metadata={"x": 1})
    advertised = host.last("advertise_service")
    assert advertised["capabilities"] == ("add", "mul")
    assert advertised["metadata"] == {"paglets.service_contract": {"name": "calc"}, "x": 1}

    host.results["lookup_services"] = lambda name, capability, scope: [{"ok": False}, {"ok": True}]
    handles = context.lookup_contracts(contract, operation=FakeOperation())
    assert host.last("lookup_services")["capability"] == "add"
    assert [h.record for h in handles] == [{"ok": True}]
    assert handles[0].context is context
    assert context.lookup_contract(contract, operation="mul").record == {"ok": True}
    with pytest.raises(ServiceContractError):
        context.lookup_contracts(contract, operation="div")

    lease = FakeLease()
    registry = ResourceRegistry()
    host.results["lease_service_handle"] = lambda handle, ttl: lease
    host.results["resources_for"] = lambda agent_id: registry
    assert context.lease_contract(contract, ttl=5.0) is lease
    assert host.last("lease_service_handle")["ttl"] == 5.0
    assert registry.status() == {"service-lease:L1": True}
    registry.cleanup()
    assert lease.released

    host.results["lookup_services"] = lambda name, capability, scope: []
    with pytest.raises(ServiceNotFoundError, match="calc"):
        context.require_contract(contract, operation="add", scope=ServiceScope.MESH)


def test_storage_files_and_artifacts(host: RecordingHost, context: PagletContext, tmp_path: Path) -> None:
    registry = ResourceRegistry()
    host.results["resources_for"] = lambda agent_id: registry
    assert context.resources() is registry
    context.work_dir(create=False)
    assert host.last("work_dir_for") == {"agent_id": AGENT, "create": False}
    context.persistent_storage(quota_bytes=10)
    assert host.last("persistent_storage_for") == {"agent_id": AGENT, "quota_bytes": 10}
    context.register_file(tmp_path / "f", name="n", mode="move")
    assert host.last("register_file_for") == {
        "agent_id": AGENT,
        "path": tmp_path / "f",
        "name": "n",
        "mode": "move",
    }
    context.registered_files()
    assert host.last("registered_files_for") == {"agent_id": AGENT}
    context.unregister_file("n")
    assert host.last("unregister_file_for") == {"agent_id": AGENT, "name_or_ref": "n"}
    context.file_path("n")
    assert host.last("registered_file_path_for") == {"agent_id": AGENT, "name_or_ref": "n"}

    context.upload_artifact(tmp_path / "f", name="x")
    assert host.last("upload_artifact") == {
        "path": tmp_path / "f",
        "host_url": None,
        "owner_agent_id": AGENT,
        "name": "x",
        "compression": "",
        "expires_at": 0.0,
    }
    PagletContext(host).upload_artifact("p")  # type: ignore[arg-type]
    assert host.last("upload_artifact")["owner_agent_id"] == ""
    ref = ArtifactRef("http://beta:1", "0" * 32)
    context.download_artifact(ref, tmp_path / "out", move=True)
    assert host.last("download_artifact") == {"artifact": ref, "target": tmp_path / "out", "move": True}
    context.delete_artifact(ref)
    assert host.last("delete_artifact") == {"artifact": ref}


def test_the_recorder_refuses_methods_outside_the_protocol(host: RecordingHost) -> None:
    with pytest.raises(AttributeError):
        host.retract  # noqa: B018 - not part of HostFacade
    with pytest.raises(TypeError):
        host.dispatch("a", "b", "c")  # wrong arity for HostFacade.dispatch
