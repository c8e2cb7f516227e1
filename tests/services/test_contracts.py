"""Service contracts: operations, metadata, matching, routing, records and handles (unit level)."""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.agent import NOT_HANDLED, PagletContext
from paglets.core.errors import SerializationError, ServiceContractError, ServiceNotFoundError
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.remote.references import PagletProxyRef
from paglets.services.contracts import (
    CONTRACT_METADATA_KEY,
    EmptyPayload,
    ServiceContract,
    ServiceHandle,
    ServiceOperation,
    ServiceRecord,
)


class Unit(enum.Enum):
    CM = "cm"
    M = "m"


@dataclass
class AddRequest:
    a: int
    b: int


@dataclass
class AddReply:
    total: int


@dataclass
class Measure:
    value: float = 0.0
    unit: Unit = Unit.M
    tags: list[str] = field(default_factory=list)
    blob: bytes = b""
    nested: AddReply | None = None


@dataclass
class Status:
    ok: bool = True
    note: str = ""


class NotADataclass:
    pass


ADD = ServiceOperation("add", AddRequest, AddReply)
PING = ServiceOperation("ping")
CONVERT = ServiceOperation("convert", Measure, Measure)
STATUS = ServiceOperation("status", reply_type=Status)
CALC = ServiceContract("calc", (ADD, PING, CONVERT, STATUS), version="2")

HOST = "http://127.0.0.1:9001"


def record_for(contract: ServiceContract, **overrides: Any) -> ServiceRecord:
    values: dict[str, Any] = {
        "name": contract.name,
        "proxy": PagletProxyRef(HOST, "a" * 32),
        "capabilities": contract.capabilities,
        "metadata": contract.advertise_metadata({"owner": "tests"}),
        "scope": ServiceScope.MESH,
        "host_name": "alpha",
        "host_url": HOST,
        "advertised_at": 100.0,
    }
    values.update(overrides)
    return ServiceRecord(**values)


# --- operations -----------------------------------------------------------------------------------------


def test_operation_defaults_names_and_equality() -> None:
    assert PING.request_type is EmptyPayload
    assert PING.reply_type is EmptyPayload
    assert STATUS.request_type is EmptyPayload
    assert STATUS.reply_type is Status
    assert ADD.request_schema == f"{__name__}:AddRequest"
    assert ADD.reply_schema == f"{__name__}:AddReply"
    assert ServiceOperation(" add ", AddRequest, AddReply) == ADD
    assert hash(ServiceOperation("add", AddRequest, AddReply)) == hash(ADD)
    assert ServiceOperation("add", AddRequest, AddRequest) != ADD
    assert "add" in repr(ADD)
    assert "AddRequest" in repr(ADD)
    assert copy.deepcopy(ADD) == ADD
    assert copy.copy(ADD) == ADD


def test_operation_is_immutable() -> None:
    with pytest.raises(AttributeError):
        ADD.name = "sub"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del ADD._name


def test_subscripted_operation_constructs() -> None:
    op = ServiceOperation[AddRequest, AddReply]("add", AddRequest, AddReply)
    assert op == ADD


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("",), "non-empty"),
        (("   ",), "non-empty"),
        (("x" * 300,), "longer"),
        (("op", NotADataclass), "dataclass"),
        (("op", AddRequest, int), "dataclass"),
        (("op", Measure()), "dataclass"),
    ],
)
def test_operation_rejects_bad_definitions(args: tuple[Any, ...], needle: str) -> None:
    with pytest.raises(ServiceContractError, match=needle):
        ServiceOperation(*args)


def test_operation_rejects_types_other_processes_cannot_import() -> None:
    @dataclass
    class Local:
        x: int = 0

    with pytest.raises(ServiceContractError, match="not importable"):
        ServiceOperation("op", Local)


def test_operation_rejects_a_shadowed_type() -> None:
    @dataclass
    class Shadow:
        ok: bool = True

    Shadow.__qualname__ = "Status"  # claims the name of another module-level class
    with pytest.raises(ServiceContractError, match="another class"):
        ServiceOperation("op", Shadow)


def test_to_message_and_request_round_trip() -> None:
    message = ADD.to_message(AddRequest(2, 3))
    assert message.kind == "add"
    assert message.args == {"a": 2, "b": 3}
    assert ADD.decode_request(message) == AddRequest(2, 3)
    assert ADD.decode_request({"a": 5, "b": 6}) == AddRequest(5, 6)
    assert PING.to_message().args == {}
    assert PING.decode_request(PING.to_message()) == EmptyPayload()


def test_none_request_needs_a_default_instance() -> None:
    with pytest.raises(ServiceContractError, match="required fields"):
        ADD.to_message()
    assert CONVERT.encode_request(None)["value"] == 0.0


def test_wrong_payload_types_are_refused() -> None:
    with pytest.raises(ServiceContractError, match="must be a AddRequest"):
        ADD.encode_request(AddReply(1))  # type: ignore[arg-type]
    with pytest.raises(ServiceContractError, match="must be a AddReply"):
        ADD.encode_reply(AddRequest(1, 2))  # type: ignore[arg-type]
    with pytest.raises(ServiceContractError, match="wire dict"):
        ADD.decode_reply([1, 2])
    with pytest.raises(ServiceContractError, match="does not decode") as info:
        ADD.decode_request({"a": "not a number", "b": 2})
    assert isinstance(info.value.__cause__, SerializationError)


def test_reply_decoding_shortcuts() -> None:
    assert PING.decode_reply(None) == EmptyPayload()
    assert PING.decode_reply({}) == EmptyPayload()
    reply = AddReply(5)
    assert ADD.decode_reply(reply) is reply
    assert ADD.decode_reply({"total": 7}) == AddReply(7)
    with pytest.raises(ServiceContractError):
        ADD.decode_reply(None)


@settings(max_examples=60)
@given(
    value=st.floats(allow_nan=False, allow_infinity=False),
    unit=st.sampled_from(Unit),
    tags=st.lists(st.text(max_size=8), max_size=4),
    blob=st.binary(max_size=64),
    nested=st.none() | st.integers(-(2**63), 2**63 - 1).map(AddReply),
)
def test_typed_payloads_round_trip(
    value: float, unit: Unit, tags: list[str], blob: bytes, nested: AddReply | None
) -> None:
    payload = Measure(value, unit, tags, blob, nested)
    assert CONVERT.decode_request(CONVERT.to_message(payload)) == payload
    assert CONVERT.decode_reply(CONVERT.encode_reply(payload)) == payload


# --- contracts ------------------------------------------------------------------------------------------


def test_contract_capabilities_and_metadata() -> None:
    assert CALC.capabilities == ("add", "ping", "convert", "status")
    assert CALC.operation("add") is ADD
    assert CALC.operation("nope") is None
    assert CALC.metadata() == {
        "name": "calc",
        "version": "2",
        "operations": [
            {"name": "add", "request_type": ADD.request_schema, "reply_type": ADD.reply_schema},
            {"name": "ping", "request_type": PING.request_schema, "reply_type": PING.reply_schema},
            {"name": "convert", "request_type": CONVERT.request_schema, "reply_type": CONVERT.reply_schema},
            {"name": "status", "request_type": STATUS.request_schema, "reply_type": STATUS.reply_schema},
        ],
    }
    CALC.metadata()["name"] = "changed"  # a fresh copy every time
    assert CALC.metadata()["name"] == "calc"
    assert ServiceContract(" calc ", [ADD, PING, CONVERT, STATUS], " 2 ") == CALC  # type: ignore[arg-type]
    assert hash(ServiceContract("calc", (ADD, PING, CONVERT, STATUS), "2")) == hash(CALC)


def test_advertise_metadata_reserves_its_key() -> None:
    extra = {"region": "eu"}
    merged = CALC.advertise_metadata(extra)
    assert merged == {"region": "eu", CONTRACT_METADATA_KEY: CALC.metadata()}
    assert extra == {"region": "eu"}
    assert CALC.advertise_metadata() == {CONTRACT_METADATA_KEY: CALC.metadata()}
    with pytest.raises(ServiceContractError, match="reserved"):
        CALC.advertise_metadata({CONTRACT_METADATA_KEY: {}})


@pytest.mark.parametrize(
    ("name", "operations", "version", "needle"),
    [
        ("", (PING,), "1", "name"),
        ("svc", (PING,), " ", "version"),
        ("svc", (), "1", "at least one"),
        ("svc", (PING, ServiceOperation("ping", Status)), "1", "duplicate"),
        ("svc", ("ping",), "1", "not a ServiceOperation"),
        ("svc", "ping", "1", "sequence"),
        ("svc", tuple(ServiceOperation(f"op{i}") for i in range(257)), "1", "more than"),
    ],
)
def test_contract_rejects_bad_definitions(name: str, operations: Any, version: str, needle: str) -> None:
    with pytest.raises(ServiceContractError, match=needle):
        ServiceContract(name, operations, version)


def test_matching_requires_name_capabilities_and_metadata() -> None:
    record = record_for(CALC)
    assert CALC.matches_record(record)
    wire_twin = ServiceRecord.from_wire(record.to_wire())  # survives a JSON-shaped round trip
    assert CALC.matches_record(wire_twin)
    assert not CALC.matches_record(record_for(CALC, name="calc2"))
    assert not CALC.matches_record(record_for(CALC, capabilities=("ping", "add", "convert", "status")))
    assert not CALC.matches_record(record_for(CALC, metadata={}))
    newer = ServiceContract("calc", CALC.operations, version="3")
    assert not newer.matches_record(record)
    changed = ServiceContract(
        "calc", (ServiceOperation("add", AddRequest, Status), PING, CONVERT, STATUS), "2"
    )
    assert not changed.matches_record(record)


def test_route_decodes_calls_and_encodes() -> None:
    seen: list[Any] = []

    def add(request: AddRequest) -> AddReply:
        seen.append(request)
        return AddReply(request.a + request.b)

    handlers = {ADD: add, "ping": lambda request: None, STATUS: lambda request: Status(False, "busy")}
    assert CALC.route(ADD.to_message(AddRequest(4, 5)), handlers) == {"total": 9}
    assert seen == [AddRequest(4, 5)]
    assert CALC.route(PING.to_message(), handlers) == {}
    assert CALC.route(Message("status"), handlers) == {"ok": False, "note": "busy"}
    assert CALC.route(Message("other"), handlers, default=NOT_HANDLED) is NOT_HANDLED
    assert CALC.route(Message("other"), handlers, default=None) is None
    with pytest.raises(ServiceContractError, match="not an operation"):
        CALC.route(Message("other"), handlers)
    with pytest.raises(ServiceContractError, match="no handler"):
        CALC.route(CONVERT.to_message(Measure()), handlers)
    with pytest.raises(ServiceContractError, match="must be a AddReply"):
        CALC.route(ADD.to_message(AddRequest(1, 1)), {ADD: lambda request: 2})


def test_require_operation() -> None:
    assert CALC.require_operation(ADD) is ADD
    assert CALC.require_operation("ping") is PING
    with pytest.raises(ServiceContractError):
        CALC.require_operation(ServiceOperation("add", AddRequest, Status))
    with pytest.raises(ServiceContractError):
        CALC.require_operation("sub")


# --- records --------------------------------------------------------------------------------------------


def test_record_wire_round_trip_and_expiry() -> None:
    record = record_for(CALC, expires_at=150.0, metadata={"blob": b"\x00\x01", "n": 1})
    wire = record.to_wire()
    assert wire["proxy"] == {"host_url": HOST, "agent_id": "a" * 32}
    assert wire["scope"] == "mesh"
    assert wire["capabilities"] == list(CALC.capabilities)
    assert ServiceRecord.from_wire(wire) == record
    assert record.agent_id == "a" * 32
    assert record.is_expired(150.0)
    assert not record.is_expired(149.9)
    assert record.expired  # 150 s after the epoch is long past
    assert not record_for(CALC).expired


def test_record_from_wire_defaults() -> None:
    record = ServiceRecord.from_wire(
        {"name": "svc", "proxy": {"host_url": HOST, "agent_id": "x"}, "advertised_at": 3}
    )
    assert record.capabilities == ()
    assert record.metadata == {}
    assert record.scope is ServiceScope.LOCAL
    assert record.host_name == ""
    assert record.expires_at is None
    assert record.advertised_at == 3.0


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        {"name": "svc"},
        {"name": 3, "proxy": {"host_url": HOST, "agent_id": "x"}},
        {"name": "svc", "proxy": {"host_url": HOST}},
        {"name": "svc", "proxy": {"host_url": HOST, "agent_id": "x"}, "scope": "galaxy"},
        {"name": "svc", "proxy": {"host_url": HOST, "agent_id": "x"}, "capabilities": "abc"},
        {"name": "svc", "proxy": {"host_url": HOST, "agent_id": "x"}, "expires_at": "soon"},
        {"name": "svc", "proxy": {"host_url": HOST, "agent_id": "x"}, "metadata": [1]},
    ],
)
def test_record_from_wire_rejects_malformed(wire: Any) -> None:
    with pytest.raises(SerializationError, match="malformed service record"):
        ServiceRecord.from_wire(wire)


def test_record_constructor_checks() -> None:
    with pytest.raises(TypeError):
        ServiceRecord("svc", PagletProxyRef(HOST, "x"), scope="mesh")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ServiceRecord("svc", {"host_url": HOST, "agent_id": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ServiceRecord("svc", PagletProxyRef(HOST, "x"), capabilities="abc")  # type: ignore[arg-type]
    assert ServiceRecord("svc", PagletProxyRef(HOST, "x"), capabilities=["a"]).capabilities == ("a",)  # type: ignore[arg-type]
    record = ServiceRecord("svc", PagletProxyRef(HOST, "x"))
    assert record.matches("svc")
    assert record.matches(None, None, ServiceScope.LOCAL)
    assert not record.matches("svc", "cap")
    assert not record.matches(scope=ServiceScope.MESH)


# --- handles --------------------------------------------------------------------------------------------


class StubProxy:
    """Records what a handle sends and answers with canned replies."""

    def __init__(self, reply: Any = None) -> None:
        self.reply = reply
        self.sent: list[tuple[str, Message, dict[str, Any]]] = []

    def send(self, message: Message, **options: Any) -> Any:
        self.sent.append(("send", message, options))
        return self.reply

    def send_oneway(self, message: Message, **options: Any) -> None:
        self.sent.append(("oneway", message, options))


class StubSource:
    """A ``ProxySource``: what a handle asks a context for."""

    address = "http://127.0.0.1:9000"

    def __init__(self, proxy: StubProxy | None) -> None:
        self.proxy = proxy
        self.asked: list[tuple[str, str | None]] = []

    def get_proxy(self, agent_id: str, host_url: str | None = None) -> Any:
        self.asked.append((agent_id, host_url))
        return self.proxy


def test_handle_call_builds_the_message_and_decodes_the_reply() -> None:
    proxy = StubProxy({"total": 12})
    source = StubSource(proxy)
    handle = ServiceHandle(CALC, record_for(CALC), source)
    assert handle.agent_id == "a" * 32
    assert handle.host_url == HOST
    reply = handle.call(ADD, AddRequest(5, 7), timeout=2.5, no_delay=True)
    assert reply == AddReply(12)
    kind, message, options = proxy.sent[0]
    assert kind == "send"
    assert message.kind == "add"
    assert message.args == {"a": 5, "b": 7}
    assert message.sender == StubSource.address
    assert options == {"activate_if_inactive": True, "no_delay": True, "timeout": 2.5}
    proxy.reply = {"ok": True, "note": "fine"}
    assert handle.call("status") == Status(True, "fine")
    assert source.asked == [("a" * 32, HOST)]  # resolved once, then reused


def test_handle_send_oneway() -> None:
    proxy = StubProxy()
    handle = ServiceHandle(CALC, record_for(CALC), StubSource(proxy))
    assert handle.send_oneway(PING, activate_if_inactive=False) is None
    kind, message, options = proxy.sent[0]
    assert (kind, message.kind, message.args) == ("oneway", "ping", {})
    assert options == {"activate_if_inactive": False, "no_delay": False, "timeout": None}


def test_handle_errors() -> None:
    with pytest.raises(ServiceContractError, match="does not match"):
        ServiceHandle(CALC, record_for(CALC, metadata={}))
    handle = ServiceHandle(CALC, record_for(CALC), StubSource(StubProxy({"total": "NaN?"})))
    with pytest.raises(ServiceContractError):
        handle.call(ServiceOperation("add", AddRequest, Status), AddRequest(1, 2))
    with pytest.raises(ServiceContractError, match="does not decode"):
        handle.call(ADD, AddRequest(1, 2))
    gone = ServiceHandle(CALC, record_for(CALC), StubSource(None))
    with pytest.raises(ServiceNotFoundError, match="no longer"):
        gone.call(PING)
    odd = ServiceHandle(CALC, record_for(CALC), object())
    with pytest.raises(ServiceContractError, match="context_or_client"):
        odd.call(PING)


def test_handle_resolves_http_proxies_for_clients() -> None:
    client = HostClient(timeout=1.0)
    handle = ServiceHandle(CALC, record_for(CALC), client)
    proxy = handle.proxy()
    assert isinstance(proxy, PagletProxy)
    assert (proxy.host_url, proxy.agent_id, proxy.client) == (HOST, "a" * 32, client)
    assert proxy.route is None
    default = ServiceHandle(CALC, record_for(CALC)).proxy()
    assert isinstance(default, PagletProxy)
    assert default.client is None


class _Facade:
    """The two facade calls ``PagletContext.get_proxy`` makes."""

    name = "beta"
    address = "http://127.0.0.1:9000"

    def __init__(self) -> None:
        self.local: list[tuple[str, bool]] = []
        self.remote: list[tuple[str, str]] = []

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> Any:
        self.local.append((agent_id, include_inactive))
        return StubProxy({})

    def remote_proxy(self, host_url: str, agent_id: str) -> Any:
        self.remote.append((host_url, agent_id))
        return StubProxy({})


def test_handle_resolves_through_a_paglet_context() -> None:
    facade = _Facade()
    context = PagletContext(facade, "me")  # type: ignore[arg-type]
    ServiceHandle(CALC, record_for(CALC), context).call(PING)
    assert facade.remote == [(HOST, "a" * 32)]
    local = record_for(CALC, proxy=PagletProxyRef(facade.address, "b" * 32), host_url=facade.address)
    ServiceHandle(CALC, local, context).call(PING)
    assert facade.local == [("b" * 32, True)]


def test_handle_resolves_through_a_host() -> None:
    facade = _Facade()  # a Host offers the same remote_proxy
    ServiceHandle(CALC, record_for(CALC), facade).call(PING)
    assert facade.remote == [(HOST, "a" * 32)]
    assert facade.local == []
