"""The control table and its handlers, built with fakes (no ``Host``, no processes, no sockets).

The table must serve every request type of ``paglets.wire.control`` with a handler whose annotations
say the request type and the reply type the request declares (so the paglet process, which reads the
declared type, and the host agree); each handler does what its operation means, through the narrow
protocols it depends on.
"""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from paglets.artifacts import ArtifactRef, PagletFileRef
from paglets.core.context_events import ContextEventLog
from paglets.core.errors import HostError, InvalidAgentError, InvalidAgentIdError, SerializationError
from paglets.core.runtime_values import ServiceScope
from paglets.remote.mesh import HostRef
from paglets.remote.references import PagletProxyRef
from paglets.remote.transfer import TransferTicket
from paglets.runtime._agent_ops import AgentOps
from paglets.runtime._checkpoints import Checkpoints
from paglets.runtime._control import ControlTable
from paglets.runtime._paglet_ops import HostProperties, PagletOps
from paglets.services.contracts import ServiceRecord
from paglets.wire import control
from paglets.wire.control import (
    CONTROL_REQUEST_TYPES,
    ActivateAgent,
    AdvertiseService,
    AgentInfo,
    CloneAgent,
    CreateAgent,
    CreateRemote,
    DeactivateAgent,
    DeliverMessage,
    DispatchAgent,
    DisposeAgent,
    GetProxies,
    GetProxy,
    HealthReply,
    HostHealth,
    LeaseReply,
    ProxyRef,
    RetractAgent,
    StateSegment,
    StorageStatusRequest,
    TargetInfo,
    UploadArtifact,
    reply_type,
)
from paglets.wire.encoded import EncodedMessage
from paglets.wire.ipc import MessageWire, encode_message

ADDRESS = "http://127.0.0.1:8701"


# --- fakes ---------------------------------------------------------------------------------------------


class Calls:
    """Records what the handlers asked of their collaborators."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def add(self, what: str, *args: Any) -> None:
        self.log.append((what, args))

    def names(self) -> list[str]:
        return [what for what, _ in self.log]


class FakeDirectory:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.reachable_ids = {"a1"}

    async def info(self, agent_id: str) -> dict[str, Any]:
        return {"agent_id": agent_id, "active": True}

    async def state_info(self, agent_id: str) -> dict[str, Any]:
        return {"agent_id": agent_id, "state": {"count": 1}}

    async def list_agents(self, *, active: bool, inactive: bool, include_state: bool) -> list[dict[str, Any]]:
        return [{"agent_id": "a1"}] if active else []

    def health(self) -> HealthReply:
        return HealthReply("alpha", ADDRESS, 1, 0, "v1", [], [], {})

    def reachable(self, agent_id: str, *, include_inactive: bool) -> bool:
        return agent_id in self.reachable_ids

    def agent_ids(self, state: int) -> list[str]:
        return ["a1", "a2"] if state == 3 else ["a1"]


class FakeRouter:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def deliver(
        self,
        agent_id: str,
        message: EncodedMessage,
        *,
        oneway: bool,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> object:
        self.calls.add("deliver", agent_id, message, oneway, timeout)
        return {"handled": message.kind}


class FakeCreation:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def create(self, creation: CreateAgent) -> ProxyRef:
        self.calls.add("create", creation)
        return ProxyRef(ADDRESS, creation.agent_id or "new")

    async def create_remote(self, url: str, creation: CreateAgent) -> ProxyRef:
        self.calls.add("create_remote", url, creation)
        return ProxyRef(url, "remote")


class FakeLifecycle:
    def __init__(self, calls: Calls, stored: set[str]) -> None:
        self.calls = calls
        self.stored = stored

    async def dispose(self, agent_id: str) -> bool:
        self.calls.add("dispose-record", agent_id)
        return agent_id in self.stored

    async def deactivate(self, agent_id: str, request: Any, **kwargs: Any) -> ProxyRef:
        self.calls.add("deactivate", agent_id, request, kwargs)
        return ProxyRef(ADDRESS, agent_id)

    async def activate(self, agent_id: str) -> ProxyRef:
        self.calls.add("activate", agent_id)
        return ProxyRef(ADDRESS, agent_id)

    def activating(self, agent_id: str) -> bool:
        return False

    def summary(self, agent_id: str) -> object | None:
        return object() if agent_id in self.stored else None


class FakeActive:
    def __init__(self, calls: Calls, live: set[str]) -> None:
        self.calls = calls
        self.live = live

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self.live

    async def dispose(self, agent_id: str) -> None:
        self.calls.add("dispose-active", agent_id)


class FakeLeftovers:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def forget_files(self, agent_id: str) -> None:
        self.calls.add("forget-files", agent_id)

    async def delete_artifacts(self, agent_id: str) -> None:
        self.calls.add("delete-artifacts", agent_id)


class FakeMover:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def move_agent(self, agent_id: str, target: Any, kind: str) -> ProxyRef:
        self.calls.add("move", agent_id, target, kind)
        return ProxyRef("http://127.0.0.1:8702", agent_id)

    async def preflight_self(self, agent_id: str, ticket: TransferTicket) -> TargetInfo:
        self.calls.add("preflight", agent_id, ticket)
        return TargetInfo("beta", "http://127.0.0.1:8702")

    async def move_self(
        self, agent_id: str, ticket: Any, kind: str, clone_id: Any, snapshot: Any
    ) -> ProxyRef:
        self.calls.add("move-self", agent_id, kind, clone_id, snapshot)
        return ProxyRef("http://127.0.0.1:8702", clone_id or agent_id)


class FakeLeases:
    async def acquire_lease(self, agent_id: str, service_name: str, ttl: float) -> LeaseReply:
        return LeaseReply("lease-1", 100.0 + ttl)

    def release_lease(self, lease_id: str) -> bool:
        return lease_id == "lease-1"


class FakeCaller:
    """A paglet process's controller, as the handlers see it."""

    def __init__(self, agent_id: str = "a1", status: str = "ready") -> None:
        self.agent_id = agent_id
        self.agent_class = "tests:Counter"
        self.status = status
        self.held_services: list[ServiceRecord] = []
        self.opened: list[StateSegment] = []

    def sent_state(self, ref: StateSegment) -> Any:
        self.opened.append(ref)
        return f"snapshot-{ref.segment}"


class FakeMesh:
    def hosts(self, *, online_only: bool, include_self: bool) -> list[HostRef]:
        return [HostRef("beta", "http://127.0.0.1:8702", "v1", True, 1.0, 0, 0, tags=("gpu",))]

    def lookup(self, name_or_url: str) -> HostRef | None:
        return None

    def is_online(self, name_or_url: str) -> bool:
        return name_or_url == "beta"

    async def wait_for_host_async(self, name_or_url: str, *, timeout: float) -> HostRef:
        return self.hosts(online_only=True, include_self=False)[0]


class FakeStorages:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.asked: list[tuple[str, int | None]] = []

    def storage(self, agent_class: str, quota_bytes: int | None = None) -> Any:
        from paglets.persistence.storage import ManagedStorage

        self.asked.append((agent_class, quota_bytes))
        return ManagedStorage(self.root / "s", quota_bytes=quota_bytes)


class FakeArtifacts:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create_from_file_async(self, path: Any, **kwargs: Any) -> ArtifactRef:
        self.created.append({"path": path, **kwargs})
        return ArtifactRef(
            ADDRESS, "f" * 32, name=kwargs.get("name") or "", owner_agent_id=kwargs["owner_agent_id"]
        )

    def metadata(self, artifact_id: str) -> ArtifactRef:
        return ArtifactRef(ADDRESS, artifact_id)

    def blob_path(self, artifact_id: str) -> Path:
        return Path("/blobs") / artifact_id

    async def delete_async(self, artifact_id: str) -> bool:
        return True


class FakeServices:
    def __init__(self) -> None:
        self.held: list[Any] = []

    def advertise(
        self, agent_id: str, name: str, *, held: list[ServiceRecord] | None = None, **kw: Any
    ) -> ServiceRecord:
        record = ServiceRecord(
            name, PagletProxyRef(ADDRESS, agent_id), scope=ServiceScope(kw.get("scope", "local"))
        )
        self.held.append(held)
        return record

    def unadvertise(self, name: str, *, agent_id: str | None = None, held: Any = None) -> list[ServiceRecord]:
        return []

    async def lookup(self, name: str | None = None, **kw: Any) -> list[ServiceRecord]:
        return []


def build(
    tmp_path: Path, *, live: frozenset[str] = frozenset({"a1"}), stored: frozenset[str] = frozenset()
) -> tuple[ControlTable, Calls, dict[str, Any]]:
    calls = Calls()
    fakes: dict[str, Any] = {
        "storages": FakeStorages(tmp_path),
        "artifacts": FakeArtifacts(),
        "services": FakeServices(),
        "prepared": set(),
    }
    table = ControlTable()
    mover = FakeMover(calls)
    lifecycle = FakeLifecycle(calls, set(stored))
    AgentOps(
        host_name="alpha",
        address=lambda: ADDRESS,
        directory=FakeDirectory(calls),
        messages=FakeRouter(calls),
        creation=FakeCreation(calls),
        lifecycle=lifecycle,
        active=FakeActive(calls, set(live)),
        leftovers=FakeLeftovers(calls),
        mover=mover,
        leases=FakeLeases(),
        resolve=lambda name: {"beta": "http://127.0.0.1:8702"}.get(name, name),
    ).register(table)
    PagletOps(
        address=lambda: ADDRESS,
        code_version="v1",
        resolve=lambda name: name,
        directory=FakeDirectory(calls),
        properties=HostProperties(),
        mesh=FakeMesh(),
        mover=mover,
        deactivation=lifecycle,
        storages=fakes["storages"],
        files=None,  # type: ignore[arg-type]  # not used by these tests
        artifacts=fakes["artifacts"],
        services=fakes["services"],
        is_prepared=lambda caller: caller.agent_id in fakes["prepared"],
    ).register(table)
    Checkpoints(
        name="alpha",
        root=tmp_path / "checkpoints",
        default=None,
        agents=SimpleNamespace(controllers={}),  # type: ignore[arg-type]  # no paglet runs here
        files=None,  # type: ignore[arg-type]  # not used by these tests
        is_resident=lambda agent_id: False,
        events=ContextEventLog(host_name="alpha", host_address=ADDRESS),
        spawn=lambda coro: coro.close(),
    ).register(table, inactive=lambda agent_id: agent_id in stored)
    return table, calls, fakes


def run(table: ControlTable, request: Any, caller: Any = None) -> Any:
    return asyncio.run(table.call(request, caller))


# --- the table -------------------------------------------------------------------------------------------


def test_a_host_serves_every_request_type_with_a_handler_of_its_reply_type(tmp_path: Path) -> None:
    table, _, _ = build(tmp_path)
    assert table.missing() == []
    for cls in CONTROL_REQUEST_TYPES:
        handler = table.handler(cls)
        assert handler is not None
        hints = typing.get_type_hints(handler)
        assert hints["request"] is cls, handler
        declared = reply_type(cls)
        returned = hints["return"]
        if declared is Any:
            assert returned in (Any, object), handler
        else:
            assert returned == declared or returned == (type(None) if declared is None else declared), handler


def test_a_type_has_one_handler_and_unknown_ones_are_refused() -> None:
    table = ControlTable()

    async def info(request: AgentInfo, caller: Any) -> dict[str, Any]:
        return {}

    table.on(AgentInfo, info)
    with pytest.raises(ValueError, match="has a handler already"):
        table.on(AgentInfo, info)
    with pytest.raises(HostError, match="does not offer HostHealth"):
        asyncio.run(table.call(HostHealth()))
    assert "HostHealth" in table.missing()


# --- operations any caller may ask --------------------------------------------------------------------------


def test_dispose_goes_to_the_record_or_the_active_paglet_then_its_leftovers(tmp_path: Path) -> None:
    table, calls, _ = build(tmp_path, stored=frozenset({"sleeper"}))
    assert run(table, DisposeAgent("sleeper")) == control.OkReply()
    assert calls.names() == ["dispose-record", "forget-files", "delete-artifacts"]
    calls.log.clear()
    run(table, DisposeAgent("a1"))
    assert calls.names() == ["dispose-record", "dispose-active", "forget-files", "delete-artifacts"]


def test_activating_an_active_paglet_is_refused_as_in_2_0(tmp_path: Path) -> None:
    table, _calls, _ = build(tmp_path, live=frozenset({"a1"}))
    with pytest.raises(InvalidAgentError, match="already active"):
        run(table, ActivateAgent("a1"))
    assert run(table, ActivateAgent("sleeper")).proxy == ProxyRef(ADDRESS, "sleeper")


def test_moves_take_a_ticket_over_a_target_and_need_one_unless_cloning(tmp_path: Path) -> None:
    table, calls, _ = build(tmp_path)
    ticket = TransferTicket.from_target("http://127.0.0.1:8702").to_wire()
    run(table, DispatchAgent("a1", target="ignored", ticket=ticket))
    ((what, (agent_id, target, kind)),) = calls.log
    assert (what, agent_id, kind) == ("move", "a1", "dispatch")
    assert isinstance(target, TransferTicket)
    run(table, CloneAgent("a1"))
    assert calls.log[-1][1] == ("a1", None, "clone")
    with pytest.raises(HostError, match="retract needs a target"):
        run(table, RetractAgent("a1"))
    reply = run(table, DeactivateAgent("a1", {"reason": "nap"}))
    assert reply == control.DeactivatedReply(ProxyRef(ADDRESS, "a1"))
    assert calls.log[-1][1][1].reason == "nap"


def test_a_message_from_a_paglet_is_checked_and_filled_in(tmp_path: Path) -> None:
    table, calls, _ = build(tmp_path)
    good = msgspec.Raw(encode_message(MessageWire("add", {"n": 1}, message_id="m1", timestamp=5.0)))
    assert run(table, DeliverMessage("a1", good, deadline=3.0), FakeCaller()) == {"handled": "add"}
    _, (agent_id, message, oneway, timeout) = calls.log[-1]
    assert (agent_id, oneway, timeout) == ("a1", False, 3.0)
    assert message.decode().sender == ADDRESS  # an empty sender is the host
    bad = msgspec.Raw(encode_message(MessageWire("add", args=[1])))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="invalid message: field 'args'"):
        run(table, DeliverMessage("a1", bad), FakeCaller())


def test_a_message_an_http_route_checked_is_not_decoded_again(tmp_path: Path) -> None:
    table, calls, _ = build(tmp_path)
    encoded = EncodedMessage.of(MessageWire("add", {"n": 1}, sender="x", message_id="m2", timestamp=1.0))
    run(table, DeliverMessage("a1", encoded.body, oneway=True))
    assert calls.log[-1][1][1] == encoded


def test_creations_check_the_agent_id_and_resolve_the_target(tmp_path: Path) -> None:
    table, calls, _ = build(tmp_path)
    with pytest.raises(InvalidAgentIdError):
        run(table, CreateAgent("m:C", "m:S", agent_id="../x"))
    creation = CreateAgent("m:C", "m:S", agent_id="c0ffee")
    assert run(table, creation) == ProxyRef(ADDRESS, "c0ffee")
    assert run(table, CreateRemote("beta", creation)) == ProxyRef("http://127.0.0.1:8702", "remote")
    assert calls.log[-1] == ("create_remote", ("http://127.0.0.1:8702", creation))


def test_queries_and_leases(tmp_path: Path) -> None:
    table, _, _ = build(tmp_path)
    assert run(table, AgentInfo("a1")) == {"agent_id": "a1", "active": True}
    assert run(table, HostHealth()).name == "alpha"
    assert run(table, control.ListAgents()) == [{"agent_id": "a1"}]
    assert run(table, control.AcquireLease("a1", "echo", 10.0)) == LeaseReply("lease-1", 110.0)
    assert run(table, control.ReleaseLease("nope")) == control.ReleasedReply(False)
    with pytest.raises(InvalidAgentIdError):
        run(table, control.AcquireLease("", "echo"))


# --- host calls of a paglet process --------------------------------------------------------------------


def test_operations_on_the_calling_paglet_need_a_paglet(tmp_path: Path) -> None:
    table, _, _ = build(tmp_path)
    for request in (
        StorageStatusRequest(),
        control.RegisteredFiles(),
        control.MoveSelf("dispatch", {"destination": "beta"}),
        control.DeactivateSelf({}, {}),
        UploadArtifact("/tmp/x"),
        control.MovePreflight("clone", {"destination": "beta"}),
    ):
        with pytest.raises(HostError, match=f"only a paglet process may ask {type(request).__name__}"):
            run(table, request)


def test_self_moves_use_the_callers_identity_and_sent_state(tmp_path: Path) -> None:
    table, calls, _ = build(tmp_path)
    caller = FakeCaller("a1")
    ticket = TransferTicket.from_target("http://127.0.0.1:8702").to_wire()
    assert run(table, control.MovePreflight("dispatch", ticket), caller).name == "beta"
    where = run(table, control.MoveSelf("clone", ticket, "c2", StateSegment(7, 10)), caller)
    assert where == ProxyRef("http://127.0.0.1:8702", "c2")
    assert calls.log[-1] == ("move-self", ("a1", "clone", "c2", "snapshot-7"))
    run(table, control.DeactivateSelf({"reason": "x"}, {"activate_on_message": False}), caller)
    _, (agent_id, request, kwargs) = calls.log[-1]
    assert (agent_id, request.reason, kwargs["decided_policy"].activate_on_message) == ("a1", "x", False)


def test_storage_is_the_callers_class_and_proxies_are_this_host(tmp_path: Path) -> None:
    table, _, fakes = build(tmp_path)
    status = run(table, StorageStatusRequest(quota_bytes=1000), FakeCaller())
    assert status.quota_bytes == 1000
    assert fakes["storages"].asked == [("tests:Counter", 1000)]
    assert run(table, GetProxy("a1")) == ProxyRef(ADDRESS, "a1")
    assert run(table, GetProxy("nobody")) is None
    assert run(table, GetProxies(3)) == [ProxyRef(ADDRESS, "a1"), ProxyRef(ADDRESS, "a2")]
    run(table, control.SetProperty("k", [1]))
    assert run(table, control.GetProperty("k")) == [1]
    assert run(table, control.GetProperty("other", default="d")) == "d"
    assert run(table, control.AvailableHosts())[0].tags == ["gpu"]


def test_uploads_need_an_absolute_path_and_belong_to_the_caller(tmp_path: Path) -> None:
    table, _, fakes = build(tmp_path)
    with pytest.raises(HostError, match="absolute path"):
        run(table, UploadArtifact("relative.bin"), FakeCaller())
    ref = run(table, UploadArtifact("/srv/x.bin", name="x"), FakeCaller("a1"))
    assert ref.owner_agent_id == "a1"
    run(table, UploadArtifact("/srv/y.bin", owner_agent_id=""), FakeCaller("a1"))
    assert fakes["artifacts"].created[-1]["owner_agent_id"] == ""
    located = run(table, control.LocateArtifact("e" * 32))
    assert located.path == str(Path("/blobs") / ("e" * 32))


def test_a_prepared_paglet_advertises_into_its_held_list(tmp_path: Path) -> None:
    table, _, fakes = build(tmp_path)
    caller = FakeCaller("arriving", status="starting")
    fakes["prepared"].add("arriving")
    run(table, AdvertiseService("echo"), caller)
    assert fakes["services"].held[-1] is caller.held_services
    run(table, AdvertiseService("echo", agent_id="other"), caller)
    assert fakes["services"].held[-1] is None  # another paglet's record is never held


def test_files_of_the_caller(tmp_path: Path) -> None:
    table, _, _ = build(tmp_path)
    with pytest.raises(HostError):
        run(table, control.UnregisterFile("x"))
    _ = PagletFileRef  # the reply type of RegisterFile (converted by paglets.runtime._wireforms)
